"""A tiny synthetic benchmark for tests: Gaussian blobs whose labels change from task to task.

Fast enough to train in well under a second on a CPU, and built so that
sequential training forgets: each task draws its own class centres, and the
same region of input space can carry different labels in different tasks.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from pydantic import Field, field_validator

from clgym_core.benchmark import Benchmark, BenchmarkParams, Split
from clgym_core.data import TaskData


class SyntheticBlobsParams(BenchmarkParams):
    num_tasks: int = Field(3, ge=1, description="Number of tasks.")
    input_size: int = Field(8, ge=1, description="Input dimension.")
    classes_per_task: int = Field(2, ge=2, description="Classes in every task.")
    train_examples: int = Field(96, ge=4, description="Training examples per task.")
    test_examples: int = Field(48, ge=2, description="Test examples per task.")
    spread: float = Field(0.5, gt=0, description="Standard deviation of every blob.")
    heads: Literal["single", "multi"] = Field("single", description="One shared head or one head per task.")
    input_shape: Optional[tuple[int, ...]] = Field(
        None, description="Shape of one input, e.g. [3, 8, 8] for image backbones (overrides input_size)."
    )

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, value: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
        if value is not None and (not value or any(d < 1 for d in value)):
            raise ValueError("every dimension must be a positive integer")
        return value


class SyntheticBlobs(Benchmark):
    """Gaussian blobs with task-specific centres (a test benchmark; nothing to download)."""

    name = "synthetic_blobs"
    Params = SyntheticBlobsParams
    scenario = "new_instances"

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = self.params.input_shape
        return tuple(shape) if shape is not None else (self.params.input_size,)

    @property
    def head_size(self) -> int:
        return self.params.classes_per_task

    @property
    def num_heads(self) -> int:
        return self.num_tasks if self.params.heads == "multi" else 1

    def prepare_datasets(self) -> None:
        p = self.params
        gen = self.generator("centres")
        size = math.prod(self.input_shape)
        self._centres = 2.0 * torch.randn(p.num_tasks, p.classes_per_task, size, generator=gen)

    def build_task(self, task: int, split: Split) -> TaskData:
        p = self.params
        n = p.train_examples if split == "train" else p.test_examples
        gen = self.generator(f"examples/{split}", task)
        targets = torch.arange(n) % p.classes_per_task
        size = self._centres.shape[-1]
        inputs = self._centres[task - 1, targets] + p.spread * torch.randn(n, size, generator=gen)
        return TaskData.for_task(inputs.view(n, *self.input_shape), targets, task)
