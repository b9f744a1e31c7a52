"""Whole-dataset image transforms computed once per task, and the per-batch conversion to floats.

Images stay ``uint8`` from file to batch: a task's rotation or permutation is
applied once to the whole tensor when the task is built, and only the batch the
model is about to see is turned into floats, on the device it already lives on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

Interpolation = Literal["bilinear", "nearest"]
# Rotation runs through grid_sample in float32, a chunk of images at a time: 1024 keeps the scratch
# (about 10 MB) small and in cache; on MNIST it ran faster than chunks of 4096 or 8192 as well.
_CHUNK = 1024


def rotation_grid(height: int, width: int, degrees: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``grid_sample`` grid ``[1, H, W, 2]`` of a counter-clockwise rotation about the image centre.

    The same grid, computed the same way, as torchvision's tensor ``rotate``
    (``_get_inverse_affine_matrix`` with angle ``-degrees``, then ``_affine_grid``),
    so results match it bit for bit; written out here so that loading a rotated
    benchmark does not import torchvision (about half a second per process).
    """
    r = math.radians(-degrees)
    theta = torch.tensor(
        [math.cos(r), math.sin(r), 0.0, -math.sin(r), math.cos(r), 0.0], dtype=torch.float32, device=device
    ).reshape(1, 2, 3)
    base = torch.empty(1, height, width, 3, dtype=torch.float32, device=device)
    base[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=device))
    base[..., 1].copy_(
        torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=device).unsqueeze_(-1)
    )
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div_(torch.tensor([0.5 * width, 0.5 * height], device=device))
    return base.view(1, height * width, 3).bmm(scaled).view(1, height, width, 2)


def rotate_images(images: torch.Tensor, degrees: float, interpolation: Interpolation = "bilinear") -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` (uint8) rotated counter-clockwise by ``degrees`` about their centres.

    Equal to torchvision's ``rotate(image, degrees, interpolation)`` of each
    image (zero fill, no expansion, rounded back to uint8), in a few batched
    ``grid_sample`` calls with one shared grid. Multiples of 90 degrees are exact
    transposes, as in torchvision. The input is returned as is for 0 degrees.
    """
    angle = float(degrees) % 360
    n, c, h, w = images.shape
    if angle == 0:
        return images
    if angle == 180:
        return torch.rot90(images, k=2, dims=(-2, -1)).contiguous()
    if h == w and angle in (90.0, 270.0):
        # rot90 gives a transposed view: contiguous rows keep every later batch gather fast.
        return torch.rot90(images, k=1 if angle == 90 else 3, dims=(-2, -1)).contiguous()
    grid = rotation_grid(h, w, angle, images.device)
    out = torch.empty_like(images)
    for start in range(0, n, _CHUNK):
        chunk = images[start:start + _CHUNK]
        floats = chunk if chunk.is_floating_point() else chunk.to(torch.float32)
        rotated = F.grid_sample(
            floats, grid.expand(chunk.shape[0], -1, -1, -1), mode=interpolation, padding_mode="zeros",
            align_corners=False,
        )
        out[start:start + _CHUNK] = rotated if chunk.is_floating_point() else rotated.round_()
        del floats, rotated
    if images.device.type == "cpu":
        release_freed_memory()
    return out


def _malloc_trim() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to do
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand memory that the C allocator holds but no longer uses back to the system (glibc only).

    Rotating a dataset frees tens of megabytes of float scratch per chunk; glibc
    keeps much of it in its heap, where it counts as resident memory and is not
    always reused for the next task's tensors. Without this, 20-task Rotated
    MNIST held up to several hundred megabytes more than its data.
    """
    if _TRIM is not None:
        _TRIM(0)


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """``images`` ``[N, C, H, W]`` with the pixels of every channel reordered: ``out.flat[i] = in.flat[perm[i]]``."""
    n, c, h, w = images.shape
    flat = images.reshape(n, c, h * w)
    return flat.index_select(2, permutation.to(images.device)).view(n, c, h, w)


class ToFloat:
    """Turns a batch of ``uint8`` images into ``float32`` model inputs on the batch's device.

    ``scale``: pixels / 255, in [0, 1]. ``standardize``: then minus the
    dataset's mean and divided by its standard deviation, per channel (CL-Gym's
    ``ToTensor`` + ``Normalize``), folded into one multiply-add: a single kernel
    that reads the bytes and writes the floats, no intermediate copies.
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
        self._scalar = len(set(mul)) == 1 and len(set(add)) == 1
        self._mul, self._add = mul, add
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mul, add = self._constants(images.device)
        if self._scalar:
            # add + alpha * images, promoted to float32 inside the one kernel.
            return torch.add(add, images, alpha=self._mul[0])
        return torch.addcmul(add, images, mul)

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            shape = () if self._scalar else (len(self._mul), 1, 1)
            mul = self._mul[:1] if self._scalar else self._mul
            add = self._add[:1] if self._scalar else self._add
            self._on_device[device] = (
                torch.tensor(mul, dtype=torch.float32, device=device).view(shape),
                torch.tensor(add, dtype=torch.float32, device=device).view(shape),
            )
        return self._on_device[device]

    def __repr__(self) -> str:
        return f"ToFloat(mean={self.mean}, std={self.std})"
