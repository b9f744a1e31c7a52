"""Whole-dataset image transforms computed once per task, and the per-batch conversion to floats.

Images stay ``uint8`` from file to batch: a task's rotation or permutation is
applied once to the whole tensor when the task is built, and only the batch the
model is about to see is turned into floats, on the device it already lives on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

Interpolation = Literal["bilinear", "nearest"]
_MODES = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}
# Rotation goes through grid_sample in float32: chunks keep the temporaries small (and run faster
# than one huge call, being kinder to the caches).
_CHUNK = 8192


def rotate_images(images: torch.Tensor, degrees: float, interpolation: Interpolation = "bilinear") -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` rotated counter-clockwise by ``degrees`` about their centres.

    Exactly torchvision's tensor rotation of each image (same grid, zero fill,
    no expansion, rounded back to ``uint8``), done in a few batched calls.
    """
    if degrees % 360 == 0:
        return images
    mode = _MODES[interpolation]
    return torch.cat([TF.rotate(chunk, float(degrees), interpolation=mode) for chunk in images.split(_CHUNK)])


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` with the pixels of every channel reordered: ``out.flat[i] = in.flat[perm[i]]``."""
    n, c, h, w = images.shape
    flat = images.reshape(n, c, h * w)
    return flat.index_select(2, permutation.to(images.device)).view(n, c, h, w)


class ToFloat:
    """Turns a batch of ``uint8`` images into ``float32`` model inputs on the batch's device.

    ``scale``: pixels / 255, in [0, 1]. ``standardize``: then minus the
    dataset's mean and divided by its standard deviation, per channel (CL-Gym's
    ``ToTensor`` + ``Normalize``), folded into one multiply-add.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None:
            mul, add = [1.0 / 255.0], [0.0]
        else:
            mul = [1.0 / (255.0 * s) for s in std]  # type: ignore[union-attr]
            add = [-m / s for m, s in zip(mean, std)]  # type: ignore[arg-type]
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self._scalar = len(mul) == 1 or (len(set(mul)) == 1 and len(set(add)) == 1)
        self._mul, self._add = mul, add
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = images.to(torch.float32)
        if self._scalar:
            out.mul_(self._mul[0])
            return out.add_(self._add[0]) if self._add[0] else out
        mul, add = self._constants(out.device)
        return out.mul_(mul).add_(add)

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            shape = (len(self._mul), 1, 1)
            self._on_device[device] = (
                torch.tensor(self._mul, device=device).view(shape),
                torch.tensor(self._add, device=device).view(shape),
            )
        return self._on_device[device]

    def __repr__(self) -> str:
        return f"ToFloat(mean={self.mean}, std={self.std})"
