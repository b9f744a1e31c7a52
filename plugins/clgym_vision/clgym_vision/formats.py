"""Readers for the official file formats: IDX (MNIST, Fashion-MNIST) and the CIFAR python pickles.

Both readers check what they read before trusting it, so that a truncated or
corrupt file is a one-line :class:`~clgym_core.errors.DataError` naming the
file, not a crash deep in numpy. Images come back as ``uint8`` tensors
``[N, C, H, W]`` and labels as ``int64`` tensors ``[N]``.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clgym_core.errors import DataError

_FIX = "delete it and download it again"

# ---- IDX ------------------------------------------------------------------------------------------
# Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
# big-endian uint32 per dimension; the data follows in C order (LeCun et al., the MNIST page).
_IDX_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip raises these for truncated or non-gzip files
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}); {_FIX}") from None


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """The unsigned-byte IDX array in ``path`` (plain or ``.gz``) with ``ndim`` dimensions."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; {_FIX}")
    if data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise DataError(
            f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()}, expected 0000{_IDX_UBYTE:02x}{ndim:02x}); "
            f"{_FIX}"
        )
    if data[3] != ndim:
        raise DataError(f"{path}: IDX file has {data[3]} dimensions, expected {ndim}; is it the right file?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes); {_FIX}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{path}: {state}: header announces shape {tuple(dims)} ({expected} bytes) but the file has "
            f"{len(data)} bytes; {_FIX}"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected - header, offset=header).reshape(dims)
    return torch.from_numpy(array.copy())


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path, image_hw: tuple[int, int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, H, W]`` (uint8) and labels ``[N]`` (int64) from a pair of IDX files, checked together."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if tuple(images.shape[1:]) != tuple(image_hw):
        raise DataError(
            f"{images_path}: images are {tuple(images.shape[1:])} pixels, expected {tuple(image_hw)}; "
            "is it the right file?"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}; "
            "the two files do not belong together"
        )
    if labels.numel() and int(labels.max()) >= num_classes:
        raise DataError(f"{labels_path}: label {int(labels.max())} is out of range 0..{num_classes - 1}; {_FIX}")
    return images.unsqueeze(1), labels.long()


def write_idx(path: str | Path, array: np.ndarray | torch.Tensor) -> None:
    """Write ``array`` (uint8) as an IDX file: the official format, for tests and converted data."""
    array = np.ascontiguousarray(np.asarray(array, dtype=np.uint8))
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


# ---- CIFAR python pickles ---------------------------------------------------------------------------
# Each batch is a pickled dict: ``data`` uint8 [N, 3072] (1024 red, 1024 green, 1024 blue values of a
# 32x32 image, row-major) and ``labels`` (CIFAR-10) or ``fine_labels``/``coarse_labels`` (CIFAR-100),
# lists of N ints (Krizhevsky 2009, the dataset page). Keys are bytes when written by Python 2.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a data file must never run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a data type")


def read_cifar_batch(path: str | Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 3, 32, 32]`` (uint8) and labels ``[N]`` (int64) from one CIFAR pickle."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        # latin1 is how Python 3 reads the Python 2 pickles of the official archives (as torchvision does).
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # truncated or corrupt pickles raise many different types
        raise DataError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc}); {_FIX}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}; {_FIX}")
    entries = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in entries or label_key not in entries:
        raise DataError(f"{path}: missing key {'data' if 'data' not in entries else label_key!r}; "
                        f"is it a batch of the right CIFAR dataset?")
    data = entries["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' should be a uint8 array of shape [N, 3072], found {type(data).__name__} "
                        f"{shape}; {_FIX}")
    try:
        labels = torch.as_tensor(np.asarray(entries[label_key], dtype=np.int64))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: {label_key!r} is not a list of integers ({exc}); {_FIX}") from None
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images; {_FIX}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; is it a batch of the right CIFAR dataset?")
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32)
    return images, labels


def write_cifar_batch(path: str | Path, images: np.ndarray, labels: Any, label_key: str, **extra: Any) -> None:
    """Write a CIFAR batch in the official layout (bytes keys, protocol 2), for tests and converted data."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).reshape(len(images), 3072))
    obj = {b"data": images, label_key.encode(): [int(v) for v in labels]}
    obj.update({k.encode(): v for k, v in extra.items()})
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
