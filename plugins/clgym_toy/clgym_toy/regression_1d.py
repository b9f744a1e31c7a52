"""1D regression, one function on its own input interval per task."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field

from clgym_core.benchmark import Benchmark, BenchmarkParams, Split
from clgym_core.component import Params
from clgym_core.data import TaskData


class RegressionTask(NamedTuple):
    low: float
    high: float
    function: Callable[[torch.Tensor], torch.Tensor]
    formula: str


# Tasks 1-3: von Oswald et al. 2020 ("Continual learning with hypernetworks", ICLR), the
# polynomial tasks CL-Gym's toy uses. Tasks 4-5 are ours, chosen like those: each on its
# own interval (gaps of 1 between intervals) with outputs in [-1, 1].
TASKS: tuple[RegressionTask, ...] = (
    RegressionTask(-4.0, -2.0, lambda x: x + 3.0, "x + 3"),
    RegressionTask(-1.0, 1.0, lambda x: 2.0 * x**2 - 1.0, "2x^2 - 1"),
    RegressionTask(2.0, 4.0, lambda x: (x - 3.0) ** 3, "(x - 3)^3"),
    RegressionTask(5.0, 7.0, lambda x: torch.sin(math.pi * (x - 6.0)), "sin(pi (x - 6))"),
    RegressionTask(8.0, 10.0, lambda x: 1.0 - 2.0 * (x - 9.0).abs(), "1 - 2|x - 9|"),
)


class Toy1DParams(BenchmarkParams):
    num_tasks: int = Field(3, ge=2, le=len(TASKS), description="Number of tasks, 2 to 5 (see the class docstring).")
    examples_per_task: int = Field(100, ge=1, description="Training examples per task.")
    test_examples_per_task: int = Field(100, ge=1, description="Test examples per task.")
    noise_std: float = Field(0.05, ge=0, description="Standard deviation of the Gaussian noise added to targets.")


class Toy1DRegression(Benchmark):
    """1D regression, 2 to 5 tasks on their own input intervals (von Oswald et al. 2020); MSE losses.

    Task ``t`` draws ``x`` uniformly from its interval and ``y = f_t(x) + noise``:
    ``x + 3`` on [-4, -2], ``2x^2 - 1`` on [-1, 1], ``(x - 3)^3`` on [2, 4] (the
    three tasks of von Oswald et al. 2020, Sec. 4.1, as in CL-Gym's toy), then
    ``sin(pi (x - 6))`` on [5, 7] and ``1 - 2|x - 9|`` on [8, 10]. A single
    scalar head is shared by all tasks, so nothing but the input tells tasks
    apart. The test split is an independent draw from the same distribution
    (noise included). Points come from the benchmark's seeded generators.
    """

    name = "toy_1d_regression"
    Params: ClassVar[type[Params]] = Toy1DParams
    problem = "regression"
    scenario = "new_instances"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,)

    @property
    def head_size(self) -> int:
        return 1

    @staticmethod
    def task_definition(task: int) -> RegressionTask:
        """Interval, function and formula of ``task`` (1-based)."""
        return TASKS[task - 1]

    def prepare_datasets(self) -> None:
        """Nothing to read: each task is generated when first loaded."""

    def build_task(self, task: int, split: Split) -> TaskData:
        p = self.params
        spec = TASKS[self.check_task(task) - 1]
        n = p.examples_per_task if split == "train" else p.test_examples_per_task
        generator = self.generator(f"points/{split}", task)
        x = spec.low + (spec.high - spec.low) * torch.rand(n, 1, generator=generator)
        y = spec.function(x[:, 0]) + p.noise_std * torch.randn(n, generator=generator)
        return TaskData.for_task(x, y, task)
