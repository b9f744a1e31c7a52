"""Where the image datasets live, how to get them, and loading them once as uint8 tensors.

The data root is, in order: the benchmark's ``root`` param, else ``$CLGYM_DATA``,
else the user cache dir (``$XDG_CACHE_HOME/clgym/data`` or ``~/.cache/clgym/data``).
Files are looked for in each candidate; nothing is ever written next to files
that are already there, so a read-only root works. Downloading is torchvision's
(its dataset classes fetch, check md5 and extract the official archives); it
goes into the first writable candidate. Parsing is ours (:mod:`clgym_vision.formats`),
so that files are checked and the original, md5-less copies a lab keeps also load.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from clgym_core.errors import DataError
from clgym_vision import formats

ENV_DATA = "CLGYM_DATA"


def cache_dir() -> Path:
    """The user cache dir for datasets: ``$XDG_CACHE_HOME/clgym/data`` or ``~/.cache/clgym/data``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clgym" / "data"


def candidate_roots(root: str | os.PathLike | None) -> list[Path]:
    """Folders searched for the data, in order."""
    if root is not None:
        return [Path(root).expanduser()]
    env = os.environ.get(ENV_DATA)
    roots = [Path(env).expanduser()] if env else []
    roots.append(cache_dir())
    return roots


def _writable(path: Path) -> bool:
    """Whether ``path`` (or the nearest folder above it that exists) accepts new files."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class ImageDataset:
    """One dataset: its files relative to a root, how to read them, and how to download them."""

    name: str  # as users know it, for messages
    folder: str  # relative to the root, where torchvision's download puts the files
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    num_classes: int
    shape: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]
    url: str
    reader: Callable[[ImageDataset, Path, str], tuple[torch.Tensor, torch.Tensor]]
    torchvision_class: str

    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files

    def find(self, root: Path) -> Path | None:
        """The folder under ``root`` holding every file (plain, or ``.gz`` for IDX files), or None."""
        folder = root / self.folder
        for name in self.files():
            if not (folder / name).is_file() and not (folder / f"{name}.gz").is_file():
                return None
        return folder

    def file(self, folder: Path, name: str) -> Path:
        plain = folder / name
        return plain if plain.is_file() else folder / f"{name}.gz"

    def load(self, root: str | os.PathLike | None, download: bool) -> tuple[torch.Tensor, ...]:
        """``(train_images, train_labels, test_images, test_labels)``; downloads when allowed and missing."""
        roots = candidate_roots(root)
        folder = next((f for f in (self.find(r) for r in roots) if f is not None), None)
        if folder is None:
            if not download:
                raise DataError(self._missing_message(roots))
            folder = self._download(roots)
        train = self.reader(self, folder, "train")
        test = self.reader(self, folder, "test")
        return (*train, *test)

    def _missing_message(self, roots: list[Path]) -> str:
        where = " and ".join(str(r / self.folder) for r in roots)
        return (
            f"{self.name} not found: looked for {', '.join(self.files())} in {where}; set "
            f"benchmark.params.download: true to fetch it (needs internet), or put the files from {self.url} "
            f"there (root: benchmark.params.root or ${ENV_DATA})"
        )

    def _download(self, roots: list[Path]) -> Path:
        target = next((r for r in roots if _writable(r)), None)
        if target is None:
            raise DataError(
                f"{self.name}: cannot download, no writable data folder among {', '.join(map(str, roots))}; "
                f"set benchmark.params.root (or ${ENV_DATA}) to a writable folder"
            )
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, self.torchvision_class)
        try:
            target.mkdir(parents=True, exist_ok=True)
            for train in (True, False):
                dataset_class(str(target), train=train, download=True)
        except Exception as exc:  # network, disk and checksum failures all end here
            text = " ".join(str(exc).split())[:300]
            message = (
                f"{self.name}: download into {target / self.folder} failed ({type(exc).__name__}: {text}); "
                f"check the internet connection, or, without internet, fetch the files from {self.url} "
                f"elsewhere, put them in a folder DIR/{self.folder} and point benchmark.params.root (or "
                f"${ENV_DATA}) at DIR"
            )
            raise DataError(" ".join(message.split())) from None
        folder = self.find(target)
        if folder is None:
            missing = ", ".join(self.files())
            raise DataError(f"{self.name}: download finished but {target / self.folder} lacks some of {missing}")
        return folder


def _read_idx_split(dataset: ImageDataset, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_name, labels_name = dataset.train_files if split == "train" else dataset.test_files
    return formats.read_idx_pair(
        dataset.file(folder, images_name), dataset.file(folder, labels_name), dataset.shape[1:], dataset.num_classes
    )


def _read_cifar_split(dataset: ImageDataset, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    names = dataset.train_files if split == "train" else dataset.test_files
    label_key = "labels" if dataset.num_classes == 10 else "fine_labels"
    parts = [formats.read_cifar_batch(dataset.file(folder, name), label_key, dataset.num_classes) for name in names]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# Mean and standard deviation of the training pixels in [0, 1], per channel (the values CL-Gym uses).
MNIST = ImageDataset(
    name="MNIST",
    folder="MNIST/raw",
    train_files=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    test_files=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    num_classes=10,
    shape=(1, 28, 28),
    mean=(0.1307,),
    std=(0.3081,),
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    reader=_read_idx_split,
    torchvision_class="MNIST",
)
FASHION_MNIST = ImageDataset(
    name="Fashion-MNIST",
    folder="FashionMNIST/raw",
    train_files=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    test_files=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    num_classes=10,
    shape=(1, 28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    reader=_read_idx_split,
    torchvision_class="FashionMNIST",
)
CIFAR10 = ImageDataset(
    name="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    num_classes=10,
    shape=(3, 32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it)",
    reader=_read_cifar_split,
    torchvision_class="CIFAR10",
)
CIFAR100 = ImageDataset(
    name="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    num_classes=100,
    shape=(3, 32, 32),
    mean=(0.5071, 0.4867, 0.4408),
    std=(0.2673, 0.2564, 0.2762),
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract it)",
    reader=_read_cifar_split,
    torchvision_class="CIFAR100",
)
