"""The paper's loading options on these benchmarks: subsets, memory, joint; without replacement, train only."""

from __future__ import annotations

from collections import Counter

import torch

from clgym_vision.instances import PermutedMNIST, RotatedMNIST
from clgym_vision.split import SplitMNIST

TRAIN_CODE = 1  # pixel 0 of every synthetic training image (tests hold 2)


def _ids(data):
    flat = data.inputs.reshape(len(data), -1).long()
    return flat[:, 0], flat[:, 1] + 256 * flat[:, 2]


def test_memory_is_balanced_distinct_and_from_train(mnist_root):
    root, arrays = mnist_root
    benchmark = PermutedMNIST(root=str(root), num_tasks=2, per_task_memory_examples=30, seed=4)
    memory = benchmark.load_memory(1)  # task 1 is the identity, so pixels still carry their origin
    codes, rows = _ids(memory)
    assert len(memory) == 30
    assert torch.all(codes == TRAIN_CODE)  # from the training file, never the test file
    assert len(set(rows.tolist())) == 30  # no duplicates
    counts = Counter(memory.targets.tolist())
    assert sorted(counts) == list(range(10)) and set(counts.values()) == {3}  # 30 over 10 classes
    # Each stored example is the training example it claims to be.
    train_x = torch.from_numpy(arrays["train_x"])
    assert torch.equal(memory.inputs[:, 0], train_x[rows])
    assert torch.equal(memory.targets, torch.from_numpy(arrays["train_y"]).long()[rows])


def test_memory_of_a_split_task_and_joint_memory(mnist_root):
    root, _ = mnist_root
    benchmark = SplitMNIST(root=str(root), per_task_memory_examples=9)
    memory = benchmark.load_memory(3)
    counts = Counter(memory.targets.tolist())
    assert sorted(counts.values()) == [4, 5]  # 9 over 2 classes: as even as possible
    codes, rows = _ids(memory)
    assert torch.all(codes == TRAIN_CODE) and len(set(rows.tolist())) == 9
    joint = benchmark.load_memory_joint(3)
    assert len(joint) == 27 and sorted(set(joint.task_ids.tolist())) == [1, 2, 3]
    assert joint.transform is memory.transform  # concatenation needs one shared transform


def test_memory_of_rotated_tasks_is_rotated_training_data(mnist_root):
    root, _ = mnist_root
    benchmark = RotatedMNIST(root=str(root), num_tasks=3, per_task_memory_examples=20)
    memory = benchmark.load_memory(3)
    train = benchmark.load_train(3)
    # Every memory image is one of task 3's (rotated) training images.
    matches = (memory.inputs.view(20, 1, -1) == train.inputs.view(1, len(train), -1)).all(dim=2)
    assert torch.all(matches.sum(dim=1) >= 1)
    assert torch.all(memory.task_ids == 3)


def test_per_task_examples_and_subsets_without_replacement(mnist_root):
    root, _ = mnist_root
    benchmark = PermutedMNIST(
        root=str(root), num_tasks=2, per_task_examples=120, per_task_subset_examples=40, per_task_joint_examples=50,
        seed=1,
    )
    train = benchmark.load_train(1)
    _, rows = _ids(train)
    assert len(train) == 120 and len(set(rows.tolist())) == 120
    subset = benchmark.load_subset(1)
    _, sub_rows = _ids(subset)
    assert len(subset) == 40 and set(sub_rows.tolist()) <= set(rows.tolist())
    assert len(benchmark.load_joint(2)) == 100
    # The test set is never subsampled.
    assert len(benchmark.load_test(1)) == 100
    # Same seed, same choices.
    again = PermutedMNIST(root=str(root), num_tasks=2, per_task_examples=120, seed=1)
    assert torch.equal(_ids(again.load_train(1))[1], rows)
