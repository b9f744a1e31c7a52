"""Tensor task data, seeded batching, sampling without replacement, and the benchmark loading options."""

from __future__ import annotations

import pytest
import torch

from clgym_core.data import Batch, TaskData, balanced_sample_indices, iterate_batches, sample_indices
from clgym_core.errors import DataError
from clgym_core.testing import SyntheticBlobs


def make_data(n: int = 10) -> TaskData:
    return TaskData.for_task(torch.arange(n, dtype=torch.uint8).view(n, 1), torch.arange(n) % 3, task=2,
                             transform=lambda x: x.float() / 255)


def test_batches_cover_every_example_once_and_apply_the_transform() -> None:
    data = make_data(10)
    batches = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b.targets) for b in batches] == [4, 4, 2]
    seen = torch.cat([b.inputs for b in batches]).flatten() * 255
    assert sorted(seen.round().long().tolist()) == list(range(10))
    assert batches[0].inputs.dtype == torch.float32
    assert all(torch.equal(b.task_ids, torch.full_like(b.targets, 2)) for b in batches)
    # The same generator seed gives the same order; another seed another.
    again = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    other = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert all(torch.equal(a.targets, b.targets) for a, b in zip(batches, again))
    assert not all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, other))
    # Without shuffling, batches are contiguous slices in order.
    assert list(data.batches(4))[1].inputs.flatten().mul(255).round().long().tolist() == [4, 5, 6, 7]


def test_length_mismatch_and_concat_rules() -> None:
    with pytest.raises(ValueError, match="disagree on length"):
        TaskData(torch.zeros(3, 1), torch.zeros(2), torch.zeros(3))
    a, b = make_data(4), make_data(5)
    with pytest.raises(ValueError, match="different transforms"):
        TaskData.concat([a, b])  # two lambdas are different transforms
    joined = TaskData.concat([a, TaskData(b.inputs, b.targets, b.task_ids, a.transform)])
    assert len(joined) == 9


def test_plain_dataset_fallback_yields_batches() -> None:
    dataset = [(torch.tensor([float(i)]), i % 2, 1) for i in range(5)]

    class ListDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            return dataset[i]

    batches = list(iterate_batches(ListDataset(), batch_size=2))
    assert isinstance(batches[0], Batch) and batches[0].inputs.shape == (2, 1)
    assert torch.cat([b.targets for b in batches]).tolist() == [0, 1, 0, 1, 0]


def test_sample_indices_are_distinct() -> None:
    idx = sample_indices(20, 20, torch.Generator().manual_seed(0))
    assert sorted(idx.tolist()) == list(range(20))
    with pytest.raises(DataError, match="cannot draw 21 distinct examples from 20"):
        sample_indices(20, 21, torch.Generator())


def test_balanced_sampling_spreads_over_classes_without_replacement() -> None:
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 4)
    idx = balanced_sample_indices(targets, 12, torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 12
    counts = torch.bincount(targets[idx], minlength=3).tolist()
    assert counts == [4, 4, 4]
    # A class with too few examples gives all it has; the others make up the shortfall.
    idx = balanced_sample_indices(targets, 30, torch.Generator().manual_seed(0))
    counts = torch.bincount(targets[idx], minlength=3).tolist()
    assert counts[2] == 4 and sum(counts) == 30 and abs(counts[0] - counts[1]) <= 1
    # Remainders go to distinct classes: 7 over 3 classes is 3/2/2 in some order.
    idx = balanced_sample_indices(targets, 7, torch.Generator().manual_seed(3))
    assert sorted(torch.bincount(targets[idx], minlength=3).tolist()) == [2, 2, 3]


def test_memory_is_class_balanced_distinct_and_from_training_data() -> None:
    bench = SyntheticBlobs(num_tasks=3, per_task_memory_examples=10, train_examples=40, test_examples=20)
    for task in (1, 2, 3):
        memory = bench.load_memory(task)
        train, test = bench.load(task)
        assert len(memory) == 10
        assert torch.bincount(memory.targets).tolist() == [5, 5]
        assert torch.all(memory.task_ids == task)
        # Every memory row is a training row, and no row is drawn twice.
        matches = (memory.inputs[:, None, :] == train.inputs[None, :, :]).all(-1)
        assert torch.all(matches.sum(1) == 1)
        assert len(torch.unique(matches.float().argmax(1))) == 10
        assert not (memory.inputs[:, None, :] == test.inputs[None, :, :]).all(-1).any()
    joint_memory = bench.load_memory_joint(2)
    assert joint_memory.task_ids.tolist() == [1] * 10 + [2] * 10
    # Memory of task 3 does not depend on what was loaded before (independent seeded streams).
    fresh = SyntheticBlobs(num_tasks=3, per_task_memory_examples=10, train_examples=40, test_examples=20)
    assert torch.equal(fresh.load_memory(3).inputs, bench.load_memory(3).inputs)


def test_joint_subset_and_per_task_examples() -> None:
    bench = SyntheticBlobs(num_tasks=3, train_examples=40, per_task_examples=30, per_task_joint_examples=12,
                           per_task_subset_examples=6)
    assert len(bench.load_train(1)) == 30
    joint = bench.load_joint(3)
    assert joint.task_ids.tolist() == [1] * 12 + [2] * 12 + [3] * 12
    subset = bench.load_subset(2)
    assert len(subset) == 6 and torch.all(subset.task_ids == 2)
    plain = SyntheticBlobs(num_tasks=2, train_examples=40)
    assert len(plain.load_joint(2)) == 80


def test_loading_errors_are_clear() -> None:
    bench = SyntheticBlobs(num_tasks=2)
    with pytest.raises(DataError, match="set benchmark.params.per_task_memory_examples"):
        bench.load_memory(1)
    with pytest.raises(DataError, match="per_task_subset_examples"):
        bench.load_subset(1)
    with pytest.raises(DataError, match="task 3 is out of range 1..2"):
        bench.load(3)


def test_generation_is_seeded() -> None:
    a = SyntheticBlobs(seed=1).load_test(1)
    b = SyntheticBlobs(seed=1).load_test(1)
    c = SyntheticBlobs(seed=2).load_test(1)
    assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)


def test_training_data_is_released_after_each_task_and_rebuilt_identically() -> None:
    from clgym_core.algorithm import Algorithm
    from clgym_core.backbone import MLP
    from clgym_core.trainer import ContinualTrainer

    bench = SyntheticBlobs(num_tasks=3, per_task_memory_examples=4, per_task_examples=40)
    before = bench.load_train(2).inputs.clone()
    memory = bench.load_memory(1)
    ContinualTrainer(Algorithm(MLP(input_size=8, output_size=2), bench), device="cpu").fit()
    assert not [key for key in bench._cache if key[0] in ("train", "train_subset")]
    assert bench.load_memory(1) is memory  # memories and test splits stay cached
    assert torch.equal(bench.load_train(2).inputs, before)  # rebuilt on demand, identically


def test_memory_of_a_plain_dataset_subset_stays_class_balanced() -> None:
    from clgym_core.benchmark import Benchmark

    class ListDataset(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            self.targets = [0] * (n - n // 5) + [1] * (n // 5)  # imbalanced: 80% class 0

        def __len__(self) -> int:
            return len(self.targets)

        def __getitem__(self, i):
            return torch.tensor([float(i)]), self.targets[i], 1

    class PlainDatasets(Benchmark):
        name = "plain_datasets"

        @property
        def input_shape(self):
            return (1,)

        @property
        def head_size(self):
            return 2

        def prepare_datasets(self) -> None:
            pass

        def build_task(self, task, split):
            return ListDataset(100)

    bench = PlainDatasets(num_tasks=1, per_task_examples=50, per_task_memory_examples=10)
    memory = bench.load_memory(1)
    labels = [memory[i][1] for i in range(len(memory))]
    assert len(labels) == 10 and labels.count(0) == labels.count(1) == 5
