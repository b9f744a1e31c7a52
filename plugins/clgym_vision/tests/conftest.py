"""Synthetic datasets written in the exact official formats, and the real-MNIST switch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from clgym_vision import formats


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...], split_code: int) -> np.ndarray:
    """Random uint8 images whose first two pixels hold (split, index) so that every image is unique and traceable."""
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = images.reshape(n, -1)
    flat[:, 0] = split_code
    flat[:, 1] = np.arange(n) % 256
    flat[:, 2] = np.arange(n) // 256
    return images


def _labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    labels = np.arange(n) % num_classes  # every class present, equal shares
    return rng.permutation(labels).astype(np.uint8)


TRAIN_CODE, TEST_CODE = 1, 2


@pytest.fixture(scope="session")
def write_idx_dataset():
    """``write(root, folder, n_train, n_test)``: IDX files as in the MNIST archives; returns the arrays."""

    def write(root: Path, folder: str = "MNIST/raw", n_train: int = 200, n_test: int = 100, seed: int = 0,
              gz: bool = False) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        raw = root / folder
        raw.mkdir(parents=True, exist_ok=True)
        arrays = {
            "train_x": _images(rng, n_train, (28, 28), TRAIN_CODE),
            "train_y": _labels(rng, n_train, 10),
            "test_x": _images(rng, n_test, (28, 28), TEST_CODE),
            "test_y": _labels(rng, n_test, 10),
        }
        suffix = ".gz" if gz else ""
        formats.write_idx(raw / f"train-images-idx3-ubyte{suffix}", arrays["train_x"])
        formats.write_idx(raw / f"train-labels-idx1-ubyte{suffix}", arrays["train_y"])
        formats.write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", arrays["test_x"])
        formats.write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", arrays["test_y"])
        return arrays

    return write


@pytest.fixture
def mnist_root(tmp_path, write_idx_dataset):
    """A root with a synthetic MNIST (200 train, 100 test images); the arrays are at ``root.arrays``."""
    root = tmp_path / "data"
    arrays = write_idx_dataset(root)
    return root, arrays


@pytest.fixture(scope="session")
def write_cifar():
    """``write(root, classes, n_train, n_test)``: CIFAR-10 (5 batches) or CIFAR-100 pickles as in the archives."""

    def write(root: Path, classes: int = 10, n_train: int = 100, n_test: int = 50, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        train_x = _images(rng, n_train, (3, 32, 32), TRAIN_CODE)
        train_y = _labels(rng, n_train, classes)
        test_x = _images(rng, n_test, (3, 32, 32), TEST_CODE)
        test_y = _labels(rng, n_test, classes)
        if classes == 10:
            folder = root / "cifar-10-batches-py"
            folder.mkdir(parents=True, exist_ok=True)
            for i, (xs, ys) in enumerate(zip(np.array_split(train_x, 5), np.array_split(train_y, 5)), start=1):
                formats.write_cifar_batch(folder / f"data_batch_{i}", xs, ys, "labels",
                                          batch_label=f"training batch {i} of 5".encode(),
                                          filenames=[b"x.png"] * len(xs))
            formats.write_cifar_batch(folder / "test_batch", test_x, test_y, "labels",
                                      batch_label=b"testing batch 1 of 1", filenames=[b"x.png"] * len(test_x))
        else:
            folder = root / "cifar-100-python"
            folder.mkdir(parents=True, exist_ok=True)
            formats.write_cifar_batch(folder / "train", train_x, train_y, "fine_labels",
                                      coarse_labels=[int(c) // 5 for c in train_y],
                                      batch_label=b"training batch 1 of 1",
                                      filenames=[b"x.png"] * n_train)
            formats.write_cifar_batch(folder / "test", test_x, test_y, "fine_labels",
                                      coarse_labels=[int(c) // 5 for c in test_y], batch_label=b"testing batch 1 of 1",
                                      filenames=[b"x.png"] * n_test)
        return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}

    return write


def real_mnist_root() -> Path | None:
    data = os.environ.get("CLGYM_DATA")
    if not data:
        return None
    raw = Path(data) / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    return Path(data) if all((raw / n).is_file() for n in names) else None


@pytest.fixture
def real_mnist() -> Path:
    root = real_mnist_root()
    if root is None:
        pytest.skip("real MNIST not found: set CLGYM_DATA to a folder with MNIST/raw/*-ubyte "
                    "(make test sets ../shared/data)")
    return root
