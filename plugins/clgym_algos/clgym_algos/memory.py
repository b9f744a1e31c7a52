"""Small helpers to hold episodic data as tensors on the run's device and draw from it."""

from __future__ import annotations

import torch

from clgym_core.benchmark import Benchmark
from clgym_core.data import DataSource, TaskData, iterate_batches
from clgym_core.errors import DataError


def as_task_data(data: DataSource) -> TaskData:
    """``data`` as tensors; a ``Dataset`` (only small ones: memories, subsets) is read in one pass."""
    if isinstance(data, TaskData):
        return data
    n = len(data)  # type: ignore[arg-type]
    if n == 0:
        raise DataError("cannot hold an empty dataset as episodic data")
    batch = next(iter(iterate_batches(data, batch_size=n)))
    return TaskData(batch.inputs, batch.targets, batch.task_ids.long())


def draw_train_examples(benchmark: Benchmark, task: int, k: int, purpose: str) -> TaskData:
    """``k`` distinct training examples of ``task`` as tensors, drawn by the benchmark's one sampling rule."""
    return as_task_data(benchmark.draw_train_examples(task, k, purpose))


def random_rows(n: int, k: int, device: torch.device) -> torch.Tensor:
    """``min(k, n)`` distinct indices below ``n``, drawn on ``device`` from the global (trainer-seeded) RNG."""
    if k >= n:
        return torch.arange(n, device=device)
    return torch.randperm(n, device=device)[:k]
