"""Memory helpers draw through the benchmark's one sampling rule (class-balanced, also for Datasets)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from clgym_algos.memory import draw_train_examples
from clgym_core.benchmark import Benchmark, BenchmarkParams


class _Imbalanced(Benchmark):
    """Plain-Dataset tasks where class 0 holds 90 % of the examples."""

    name = "imbalanced_dataset"
    Params = BenchmarkParams

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def head_size(self) -> int:
        return 2

    def prepare_datasets(self) -> None:
        pass

    def build_task(self, task: int, split: str) -> TensorDataset:
        targets = torch.cat([torch.zeros(180, dtype=torch.long), torch.ones(20, dtype=torch.long)])
        dataset = TensorDataset(torch.randn(200, 2), targets, torch.full((200,), task))
        dataset.targets = targets  # what torchvision datasets expose
        return dataset


def test_draw_from_subset_of_dataset_is_class_balanced() -> None:
    # per_task_examples turns the task into a Subset: its targets are the parent's at the subset's rows.
    bench = _Imbalanced(num_tasks=1, per_task_examples=100, seed=3)
    drawn = draw_train_examples(bench, 1, 10, "test")
    counts = torch.bincount(drawn.targets, minlength=2)
    assert counts.tolist() == [5, 5]


def test_draw_matches_benchmark_draw() -> None:
    bench = _Imbalanced(num_tasks=1, seed=1)
    drawn = draw_train_examples(bench, 1, 8, "memory")
    again = bench.draw_train_examples(1, 8, "memory")
    first = torch.stack([again[i][1] for i in range(len(again))])
    assert torch.equal(drawn.targets, first)
