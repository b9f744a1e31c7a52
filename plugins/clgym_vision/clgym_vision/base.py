"""What every image benchmark here shares: the data options and the uint8 fast path."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from clgym_core.benchmark import Benchmark, BenchmarkParams
from clgym_core.data import TaskData
from clgym_vision.sources import ImageDataset
from clgym_vision.transforms import ToFloat

Normalization = Literal["standardize", "scale"]


class VisionParams(BenchmarkParams):
    """Options of every image benchmark: where the files are and how pixels become inputs."""

    root: str | None = Field(
        None, description="Dataset root folder (default: $CLGYM_DATA, then ~/.cache/clgym/data)."
    )
    download: bool = Field(True, description="Download the dataset (torchvision) when its files are missing.")
    normalization: Normalization = Field(
        "standardize",
        description="standardize: (pixel/255 - mean)/std per channel, as CL-Gym; scale: pixel/255 in [0, 1].",
    )


class VisionBenchmark(Benchmark):
    """Base of the image benchmarks: loads ``dataset`` once as uint8 tensors, converts per batch.

    Subclasses implement :meth:`build_task` from ``self.images(split)`` and
    ``self.labels(split)`` and wrap results with :meth:`task_data`.
    """

    Params: ClassVar[type[VisionParams]] = VisionParams
    dataset: ClassVar[ImageDataset]

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        p = self.params
        # One object shared by every task, so tasks (joint training, memories) can be concatenated.
        self.transform = (
            ToFloat(self.dataset.mean, self.dataset.std) if p.normalization == "standardize" else ToFloat()
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.dataset.shape

    def prepare_datasets(self) -> None:
        train_x, train_y, test_x, test_y = self.dataset.load(self.params.root, self.params.download)
        self._data = {"train": (train_x, train_y), "test": (test_x, test_y)}

    def images(self, split: str) -> torch.Tensor:
        self.ensure_prepared()
        return self._data[split][0]

    def labels(self, split: str) -> torch.Tensor:
        self.ensure_prepared()
        return self._data[split][1]

    def task_data(self, images: torch.Tensor, targets: torch.Tensor, task: int) -> TaskData:
        return TaskData.for_task(images, targets, task, self.transform)
