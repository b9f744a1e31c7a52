"""Binary classification of 2D Gaussian clusters, one pair of clusters per task."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from clgym_core.benchmark import Benchmark, BenchmarkParams, Split
from clgym_core.component import Params
from clgym_core.data import TaskData


class Toy2DParams(BenchmarkParams):
    num_tasks: Literal[2, 4] = Field(2, description="Number of tasks: 2 or 4 (one row of clusters each).")
    cluster_size: int = Field(100, ge=1, description="Training examples per cluster (two clusters, one per class).")
    test_cluster_size: int = Field(100, ge=1, description="Test examples per cluster.")
    cluster_std: float = Field(0.2, gt=0, description="Standard deviation of each Gaussian cluster (both axes).")
    class_distance: float = Field(2.0, gt=0, description="Horizontal distance between a task's two cluster centres.")
    task_gap: float = Field(1.5, gt=0, description="Vertical distance between the cluster rows of consecutive tasks.")


class Toy2DClassification(Benchmark):
    """Binary 2D Gaussian clusters, 2 or 4 tasks whose labels flip from task to task.

    CL-Gym (Mirzadeh & Ghasemzadeh 2021, Sec. 3.1) uses toy 2D classification to
    show catastrophic forgetting at a fraction of MNIST's cost. Its toy places
    each task's two clusters on one ray, so a later task flips at most one of an
    earlier task's clusters. This version is deliberately harder to keep: task
    ``t`` has a cluster at ``x = -class_distance/2`` and one at ``+class_distance/2``,
    both on the row ``y_t`` (rows ``task_gap`` apart, centred on 0), and the
    side of class 0 alternates (left for odd tasks, right for even ones). Each
    task alone is separable by the line ``x = 0``; a model that just follows
    the newest task flips both clusters of the previous one, while the union of
    all tasks (a 2 x T checkerboard of clusters) is learnable by a small MLP.
    New-instances scenario: one head of two classes shared by all tasks.
    Data come from the benchmark's seeded generators (``seed``): the same seed
    gives the same points, and the train and test points are independent draws.
    """

    name = "toy_2d_classification"
    Params: ClassVar[type[Params]] = Toy2DParams
    problem = "classification"
    scenario = "new_instances"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def head_size(self) -> int:
        return 2

    def centers(self, task: int) -> torch.Tensor:
        """Cluster centres of ``task``: row ``c`` is the centre of class ``c``."""
        p = self.params
        task = self.check_task(task)
        y = (task - (self.num_tasks + 1) / 2) * p.task_gap
        half = p.class_distance / 2
        left_is_zero = task % 2 == 1
        xs = (-half, half) if left_is_zero else (half, -half)
        return torch.tensor([[xs[0], y], [xs[1], y]], dtype=torch.float32)

    def prepare_datasets(self) -> None:
        """Nothing to read: each task is generated when first loaded."""

    def build_task(self, task: int, split: Split) -> TaskData:
        p = self.params
        per_cluster = p.cluster_size if split == "train" else p.test_cluster_size
        generator = self.generator(f"points/{split}", task)
        targets = torch.arange(2).repeat_interleave(per_cluster)
        noise = torch.randn(2 * per_cluster, 2, generator=generator) * p.cluster_std
        inputs = self.centers(task)[targets] + noise
        return TaskData.for_task(inputs, targets, task)
