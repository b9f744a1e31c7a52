"""Batched rotation equals torchvision's per-image rotation; permutation and float conversion are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF1
from torchvision.transforms.v2 import functional as TF

from clgym_vision.transforms import ToFloat, permute_pixels, rotate_images

ANGLES = [10.0, 36.0, 45.0, 90.0, 135.0, 180.0, 270.0, 350.0, -20.0, 33.3, 400.0]


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    # Smooth-ish random images so interpolation matters, plus odd sizes to catch H/W mix-ups.
    square = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g)
    wide = torch.randint(0, 256, (12, 3, 20, 26), dtype=torch.uint8, generator=g)
    return square, wide


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_batched_rotation_equals_torchvision_per_image(images, mode):
    for batch in images:
        for angle in ANGLES:
            ours = rotate_images(batch, angle, mode)
            expected = torch.stack([TF.rotate(img, angle, interpolation=InterpolationMode(mode)) for img in batch])
            assert ours.dtype == torch.uint8 and ours.shape == batch.shape
            assert torch.equal(ours, expected), (mode, angle, tuple(batch.shape))


def test_rotation_is_counter_clockwise_and_not_trivial(images):
    square, _ = images
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[0, 0, 2, 14] = 255  # a dot at the top centre
    turned = rotate_images(image, 90, "nearest")
    assert turned[0, 0, 13, 2] == 255 or turned[0, 0, 14, 2] == 255  # now on the left: counter-clockwise
    assert not torch.equal(rotate_images(square, 36.0), square)
    assert rotate_images(square, 0.0) is square  # task 1 of rotated MNIST shares the original tensor


def test_nearest_rotation_matches_pil(images):
    """With nearest interpolation the whole-tensor rotation equals PIL's (CL-Gym's per-sample path)."""
    square, _ = images
    ours = rotate_images(square, 36.0, "nearest")
    for i in range(square.shape[0]):
        pil = TF1.rotate(Image.fromarray(square[i, 0].numpy()), 36.0, interpolation=InterpolationMode.NEAREST, fill=0)
        assert np.array_equal(np.asarray(pil), ours[i, 0].numpy())


def test_rotation_in_chunks_equals_one_call(monkeypatch, images):
    import clgym_vision.transforms as transforms

    square, _ = images
    whole = rotate_images(square, 20.0)
    monkeypatch.setattr(transforms, "_CHUNK", 7)
    assert torch.equal(rotate_images(square, 20.0), whole)


def test_permute_pixels_moves_every_pixel_of_every_channel():
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.int64).view(2, 3, 4, 5)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    out = permute_pixels(images, perm)
    flat_in, flat_out = images.view(2, 3, 20), out.view(2, 3, 20)
    assert torch.equal(flat_out, flat_in[:, :, perm])
    assert torch.equal(flat_out.sort(dim=2).values, flat_in)  # nothing lost or doubled


def test_to_float_scale_and_standardize():
    x = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    assert torch.allclose(ToFloat()(x), torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    std = ToFloat((0.1307,), (0.3081,))(x)
    assert torch.allclose(std, (x.float() / 255 - 0.1307) / 0.3081, atol=1e-6)
    rgb = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    mean, sd = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = (rgb.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(sd).view(3, 1, 1)
    out = ToFloat(mean, sd)(rgb)
    assert out.dtype == torch.float32 and torch.allclose(out, expected, atol=1e-5)
    assert rgb.dtype == torch.uint8  # the stored tensor is untouched
