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


def default_memory_size(benchmark: Benchmark, memory_size: int | None) -> int:
    """``memory_size``, else ``per_task_memory_examples x num_tasks``, else one example per class per task."""
    if memory_size is not None:
        return int(memory_size)
    per_task = getattr(benchmark.params, "per_task_memory_examples", None)
    return int((per_task or benchmark.head_size) * benchmark.num_tasks)


def class_keys(targets: torch.Tensor, task_ids: torch.Tensor, benchmark: Benchmark) -> torch.Tensor:
    """One integer per example naming its class as the network sees it: the label with one
    head, ``(task - 1) x head_size + label`` with one head per task (the classes of each head differ)."""
    targets = targets.long()
    if benchmark.num_heads == 1:
        return targets
    return (task_ids.long() - 1) * benchmark.head_size + targets


def num_class_keys(benchmark: Benchmark) -> int:
    """How many values :func:`class_keys` can take."""
    return benchmark.head_size * benchmark.num_heads
