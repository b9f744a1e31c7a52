"""New-class benchmarks: the classes of a dataset dealt out to tasks, a few classes per task.

Task ``t`` holds the classes ``order[(t-1)k : tk]`` (``k = classes_per_task``).
``task_incremental`` (multi-head): targets are a class's position within its task,
``0..k-1``, and the backbone has one ``k``-way head per task, picked by task id.
``class_incremental`` (single head): targets are a class's position in the order,
``0..T*k-1``, and one head covers every class of the sequence.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from clgym_core.benchmark import Split
from clgym_core.data import TaskData
from clgym_core.errors import DataError
from clgym_vision.base import VisionBenchmark, VisionParams
from clgym_vision.sources import CIFAR10, CIFAR100, FASHION_MNIST, MNIST

SplitScenario = Literal["task_incremental", "class_incremental"]


class SplitParams(VisionParams):
    """Options of the split benchmarks (the dataset's class count is ``total_classes``)."""

    total_classes: ClassVar[int] = 10

    classes_per_task: int = Field(2, ge=1, description="Classes in each task.")
    scenario: SplitScenario = Field(
        "task_incremental",
        description="task_incremental: a head per task, targets 0..k-1; class_incremental: one head of all classes.",
    )
    class_order: list[int] | None = Field(
        None, description="Dataset class ids in the order they are dealt to tasks (default: 0, 1, 2, ...)."
    )
    shuffle_classes: bool = Field(False, description="Deal the classes in an order drawn from the seed.")

    @model_validator(mode="after")
    def _check_classes(self) -> SplitParams:
        needed = self.num_tasks * self.classes_per_task
        if needed > self.total_classes:
            raise ValueError(
                f"num_tasks * classes_per_task = {needed} exceeds the {self.total_classes} classes of the dataset"
            )
        if self.class_order is not None:
            if self.shuffle_classes:
                raise ValueError("set class_order or shuffle_classes, not both")
            bad = [c for c in self.class_order if not 0 <= c < self.total_classes]
            if bad:
                raise ValueError(f"class_order: ids {bad} are outside 0..{self.total_classes - 1}")
            if len(set(self.class_order)) != len(self.class_order):
                raise ValueError("class_order: a class appears twice")
            if len(self.class_order) < needed:
                raise ValueError(
                    f"class_order: {len(self.class_order)} classes given, {needed} needed "
                    "(num_tasks * classes_per_task)"
                )
        return self


class SplitMNIST(VisionBenchmark):
    """Split MNIST: five tasks of two digits each (0/1, 2/3, ...), task- or class-incremental.

    Zenke et al. (2017); CL-Gym's split benchmarks. Classes are dealt to tasks in
    ``class_order`` (or an order drawn from ``seed`` with ``shuffle_classes``).
    Unlike CL-Gym, which kept the dataset's labels, task-incremental targets are
    positions within the task so that a ``classes_per_task``-way head per task
    suffices; class-incremental targets are positions in the class order.
    """

    name = "split_mnist"
    Params: ClassVar[type[SplitParams]] = SplitParams
    dataset = MNIST
    scenario = "new_classes"

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._order: list[int] | None = None

    # ---- description ---------------------------------------------------------------------------
    @property
    def classes_per_task(self) -> int:
        return int(self.params.classes_per_task)

    @property
    def num_heads(self) -> int:
        return self.num_tasks if self.params.scenario == "task_incremental" else 1

    @property
    def head_size(self) -> int:
        k = self.classes_per_task
        return k if self.params.scenario == "task_incremental" else k * self.num_tasks

    @property
    def class_order(self) -> list[int]:
        """Every dataset class in the order it is dealt to tasks (only the first ``T * k`` are used)."""
        if self._order is None:
            total = self.dataset.num_classes
            if self.params.class_order is not None:
                given = list(self.params.class_order)
                seen = set(given)
                self._order = given + [c for c in range(total) if c not in seen]
            elif self.params.shuffle_classes:
                self._order = torch.randperm(total, generator=self.generator("class_order")).tolist()
            else:
                self._order = list(range(total))
        return self._order

    def task_classes(self, task: int) -> list[int]:
        """The dataset class ids of ``task``, in target order."""
        k = self.classes_per_task
        start = (self.check_task(task) - 1) * k
        return self.class_order[start:start + k]

    # ---- data ------------------------------------------------------------------------------------
    def build_task(self, task: int, split: Split) -> TaskData:
        labels = self.labels(split)
        classes = torch.tensor(self.task_classes(task))
        rows = torch.nonzero(torch.isin(labels, classes)).flatten()
        if rows.numel() == 0:
            raise DataError(f"{self.name}: no {split} examples of classes {classes.tolist()} (task {task})")
        # position[c] = where class c comes in the order; targets follow the scenario.
        position = torch.full((self.dataset.num_classes,), -1, dtype=torch.long)
        position[torch.tensor(self.class_order)] = torch.arange(self.dataset.num_classes)
        targets = position[labels[rows]]
        if self.params.scenario == "task_incremental":
            targets = targets - (task - 1) * self.classes_per_task
        return self.task_data(self.images(split)[rows], targets, task)


class SplitFashionMNIST(SplitMNIST):
    """Split Fashion-MNIST: five tasks of two clothing classes each, task- or class-incremental."""

    name = "split_fashion_mnist"
    dataset = FASHION_MNIST


class SplitCIFAR10(SplitMNIST):
    """Split CIFAR-10: five tasks of two classes each, task- or class-incremental.

    As used by CL-Gym and the A-GEM / ER / Stable SGD line of work (usually
    task-incremental, with a reduced ResNet-18). Same target convention as Split MNIST.
    """

    name = "split_cifar10"
    dataset = CIFAR10


class SplitCIFAR100Params(SplitParams):
    total_classes: ClassVar[int] = 100

    num_tasks: int = Field(20, ge=1, description="Number of tasks in the sequence.")
    classes_per_task: int = Field(5, ge=1, description="Classes in each task.")


class SplitCIFAR100(SplitMNIST):
    """Split CIFAR-100: twenty tasks of five classes each, task- or class-incremental.

    The benchmark of GEM, A-GEM, ER-Ring, Stable SGD and MC-SGD (CL-Gym's
    ``SplitCIFAR100``): fine labels, classes dealt in order (or shuffled from the seed).
    """

    name = "split_cifar100"
    Params: ClassVar[type[SplitCIFAR100Params]] = SplitCIFAR100Params
    dataset = CIFAR100
