"""New-instance benchmarks: every task has all ten classes, seen through a different input transform.

Rotated and Permuted MNIST (and the same on Fashion-MNIST) share one 10-way head.
A task's transform is applied once to the whole uint8 train and test tensors when
the task is first loaded (the core caches the result), never per sample or per epoch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator

from clgym_core.benchmark import Split
from clgym_core.data import TaskData
from clgym_vision.base import VisionBenchmark, VisionParams
from clgym_vision.sources import FASHION_MNIST, MNIST
from clgym_vision.transforms import Interpolation, permute_pixels, rotate_images


class RotatedParams(VisionParams):
    per_task_rotation_degrees: float | None = Field(
        None, description="Task t is rotated by (t-1) times this many degrees (default 180 / num_tasks)."
    )
    interpolation: Interpolation = Field(
        "bilinear", description="Pixel interpolation of the rotation (CL-Gym: bilinear)."
    )
    task_angles: list[float] | None = Field(
        None,
        description="Rotation of each task in degrees, one per task (e.g. the DER paper's random angles); "
        "replaces the (t-1) x per_task_rotation_degrees rule.",
    )

    @model_validator(mode="after")
    def _check_angles(self) -> RotatedParams:
        if self.task_angles is not None:
            if self.per_task_rotation_degrees is not None:
                raise ValueError("set task_angles or per_task_rotation_degrees, not both")
            if len(self.task_angles) != self.num_tasks:
                raise ValueError(f"task_angles: {len(self.task_angles)} angles given, num_tasks is {self.num_tasks}")
        return self


class RotatedMNIST(VisionBenchmark):
    """Rotated MNIST: task t shows every digit rotated by (t-1) * per_task_rotation_degrees.

    CL-Gym (Mirzadeh & Ghasemzadeh 2021), after Lopez-Paz & Ranzato (GEM, 2017)
    and Mirzadeh et al. (Stable SGD, 2020): a new-instances scenario with one
    10-way head; rotations are counter-clockwise about the image centre, zero fill,
    bilinear by default like CL-Gym, then standardised with MNIST's mean and std.
    Where we differ: CL-Gym rotated every PIL image on every access; here each
    task's images are rotated once, as one uint8 tensor, with exactly torchvision's
    tensor ``rotate`` (bit for bit). With bilinear interpolation that is not PIL's
    result (PIL samples differently: many edge pixels differ by a few levels,
    some by more); with ``interpolation: nearest`` the two agree exactly.
    """

    name = "rotated_mnist"
    Params: ClassVar[type[RotatedParams]] = RotatedParams
    dataset = MNIST
    scenario = "new_instances"

    @property
    def head_size(self) -> int:
        return self.dataset.num_classes

    @property
    def rotation_degrees(self) -> float:
        step = self.params.per_task_rotation_degrees
        return float(step) if step is not None else 180.0 / self.num_tasks

    def task_angle(self, task: int) -> float:
        """Rotation of ``task`` in degrees: ``task_angles[task - 1]`` when given, else ``(task - 1) x rotation_degrees``."""
        if self.params.task_angles is not None:
            return float(self.params.task_angles[self.check_task(task) - 1])
        return (self.check_task(task) - 1) * self.rotation_degrees

    def build_task(self, task: int, split: Split) -> TaskData:
        images = rotate_images(self.images(split), self.task_angle(task), self.params.interpolation)
        return self.task_data(images, self.labels(split), task)


class RotatedFashionMNIST(RotatedMNIST):
    """Rotated Fashion-MNIST: Rotated MNIST's tasks on Fashion-MNIST (Xiao et al. 2017) images."""

    name = "rotated_fashion_mnist"
    dataset = FASHION_MNIST


class PermutedMNIST(VisionBenchmark):
    """Permuted MNIST: task 1 is MNIST, each later task a fixed random permutation of the pixels.

    Goodfellow et al. (2013), Kirkpatrick et al. (EWC, 2017); CL-Gym's version:
    task 1 is the identity, tasks 2..T draw their permutation from the benchmark's
    seed (``seed``), so the same seed gives the same tasks in every run; one
    10-way head. Each permutation is applied once to the whole train and test
    tensors of its task.
    """

    name = "permuted_mnist"
    Params: ClassVar[type[VisionParams]] = VisionParams
    dataset = MNIST
    scenario = "new_instances"

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._permutations: dict[int, torch.Tensor] = {}

    @property
    def head_size(self) -> int:
        return self.dataset.num_classes

    def permutation(self, task: int) -> torch.Tensor:
        """The pixel order of ``task`` (identity for task 1), over the ``H * W`` pixels of a channel."""
        task = self.check_task(task)
        if task not in self._permutations:
            _, h, w = self.dataset.shape
            if task == 1:
                self._permutations[task] = torch.arange(h * w)
            else:
                self._permutations[task] = torch.randperm(h * w, generator=self.generator("permutation", task))
        return self._permutations[task]

    def build_task(self, task: int, split: Split) -> TaskData:
        images = self.images(split)
        if task > 1:
            images = permute_pixels(images, self.permutation(task))
        return self.task_data(images, self.labels(split), task)


class PermutedFashionMNIST(PermutedMNIST):
    """Permuted Fashion-MNIST: Permuted MNIST's tasks on Fashion-MNIST (Xiao et al. 2017) images."""

    name = "permuted_fashion_mnist"
    dataset = FASHION_MNIST
