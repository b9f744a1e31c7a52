"""Split benchmarks: classes dealt to tasks, task- and class-incremental targets, class orders."""

from __future__ import annotations

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_vision.split import SplitCIFAR10, SplitCIFAR100, SplitFashionMNIST, SplitMNIST


def _original_rows(data, arrays, split="train"):
    """Indices of the stored examples in the written file (pixels 1 and 2 encode the index)."""
    flat = data.inputs.reshape(len(data), -1).long()
    return flat[:, 1] + 256 * flat[:, 2]


def test_split_mnist_task_incremental(mnist_root):
    root, arrays = mnist_root
    labels = torch.from_numpy(arrays["train_y"]).long()
    benchmark = SplitMNIST(root=str(root))
    assert (benchmark.num_tasks, benchmark.num_heads, benchmark.head_size) == (5, 5, 2)
    assert benchmark.scenario == "new_classes" and benchmark.task_incremental
    seen = []
    for task in range(1, 6):
        train = benchmark.load_train(task)
        rows = _original_rows(train, arrays)
        classes = [2 * task - 2, 2 * task - 1]
        # Exactly the examples of this task's two digits, in file order, targets 0/1 within the task.
        expected_rows = torch.nonzero(torch.isin(labels, torch.tensor(classes))).flatten()
        assert torch.equal(rows, expected_rows)
        assert torch.equal(train.targets, labels[rows] - classes[0])
        assert set(train.targets.tolist()) == {0, 1}
        assert torch.all(train.task_ids == task)
        assert torch.equal(train.inputs[:, 0], torch.from_numpy(arrays["train_x"])[rows])
        seen.append(rows)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(200))  # every example in exactly one task


def test_split_mnist_class_incremental_global_labels(mnist_root):
    root, arrays = mnist_root
    benchmark = SplitMNIST(root=str(root), scenario="class_incremental")
    assert (benchmark.num_heads, benchmark.head_size, benchmark.num_classes) == (1, 10, 10)
    test = benchmark.load_test(3)
    assert set(test.targets.tolist()) == {4, 5}
    rows = _original_rows(test, arrays)
    assert torch.equal(test.targets, torch.from_numpy(arrays["test_y"]).long()[rows])


def test_class_order_given(mnist_root):
    root, arrays = mnist_root
    order = [9, 3, 0, 7, 1, 2, 4, 5, 6, 8]
    inc = SplitMNIST(root=str(root), class_order=order, scenario="class_incremental")
    task = SplitMNIST(root=str(root), class_order=order)
    assert inc.task_classes(1) == [9, 3] and inc.task_classes(2) == [0, 7]
    data = inc.load_train(1)
    original = torch.from_numpy(arrays["train_y"]).long()[_original_rows(data, arrays)]
    # Class-incremental targets are positions in the order: 9 -> 0, 3 -> 1.
    assert torch.equal(data.targets, torch.where(original == 9, 0, 1))
    data2 = task.load_train(2)
    original2 = torch.from_numpy(arrays["train_y"]).long()[_original_rows(data2, arrays)]
    assert torch.equal(data2.targets, torch.where(original2 == 0, 0, 1))
    partial = SplitMNIST(root=str(root), num_tasks=2, class_order=[9, 8, 7, 6])
    assert partial.class_order[:4] == [9, 8, 7, 6] and sorted(partial.class_order) == list(range(10))


def test_shuffled_class_order_follows_the_seed(mnist_root):
    root, _ = mnist_root
    orders = {s: SplitMNIST(root=str(root), shuffle_classes=True, seed=s).class_order for s in range(6)}
    assert all(sorted(o) == list(range(10)) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) > 1  # the seed matters
    assert SplitMNIST(root=str(root), shuffle_classes=True, seed=3).class_order == orders[3]
    assert SplitMNIST(root=str(root)).class_order == list(range(10))


def test_fewer_tasks_and_class_incremental_head(mnist_root):
    root, _ = mnist_root
    benchmark = SplitMNIST(root=str(root), num_tasks=3, scenario="class_incremental")
    assert benchmark.head_size == 6  # one head over the classes of the sequence
    assert max(benchmark.load_test(3).targets.tolist()) == 5


@pytest.mark.parametrize(
    "params, message",
    [
        ({"num_tasks": 6}, "exceeds the 10 classes"),
        ({"class_order": [0, 1, 2, 3, 4, 5, 6, 7, 8, 8]}, "appears twice"),
        ({"class_order": [0, 1, 2, 3, 10, 5, 6, 7, 8, 9]}, "outside 0..9"),
        ({"class_order": [0, 1, 2]}, "3 classes given, 10 needed"),
        ({"class_order": list(range(10)), "shuffle_classes": True}, "not both"),
        ({"scenario": "domain_incremental"}, "split_mnist.params.scenario"),
    ],
)
def test_bad_split_params(params, message):
    with pytest.raises(SpecError, match=message):
        SplitMNIST(**params)


def test_split_cifar10_from_pickles(tmp_path, write_cifar):
    arrays = write_cifar(tmp_path, classes=10)
    benchmark = SplitCIFAR10(root=str(tmp_path), download=False)
    assert benchmark.input_shape == (3, 32, 32) and (benchmark.num_tasks, benchmark.head_size) == (5, 2)
    train = benchmark.load_train(2)
    labels = torch.from_numpy(arrays["train_y"]).long()
    rows = torch.nonzero(torch.isin(labels, torch.tensor([2, 3]))).flatten()
    assert torch.equal(train.inputs, torch.from_numpy(arrays["train_x"])[rows])
    assert torch.equal(train.targets, labels[rows] - 2)
    batch = train.batch(slice(0, 4))
    assert batch.inputs.shape == (4, 3, 32, 32) and batch.inputs.dtype == torch.float32
    assert abs(float(batch.inputs.mean())) < 1.5  # standardised, not raw pixels


def test_split_cifar100_defaults(tmp_path, write_cifar):
    arrays = write_cifar(tmp_path, classes=100, n_train=300, n_test=100)
    benchmark = SplitCIFAR100(root=str(tmp_path), download=False)
    assert (benchmark.num_tasks, benchmark.num_heads, benchmark.head_size) == (20, 20, 5)
    labels = torch.from_numpy(arrays["test_y"]).long()
    test = benchmark.load_test(20)
    expected = labels[torch.isin(labels, torch.arange(95, 100))] - 95
    assert torch.equal(test.targets, expected) and len(test) == 5
    with pytest.raises(SpecError, match="exceeds the 100 classes"):
        SplitCIFAR100(num_tasks=21)
    assert SplitCIFAR100(scenario="class_incremental").head_size == 100


def test_split_fashion(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, "FashionMNIST/raw")
    benchmark = SplitFashionMNIST(root=str(tmp_path))
    assert set(benchmark.load_train(5).targets.tolist()) == {0, 1}
    assert benchmark.transform.mean == (0.2860,)
