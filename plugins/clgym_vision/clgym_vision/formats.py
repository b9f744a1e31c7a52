"""Readers for the official file formats: IDX (MNIST, Fashion-MNIST) and the CIFAR python pickles.

Both readers check what they read before trusting it, so that a truncated or
corrupt file is a one-line :class:`~clgym_core.errors.DataError` naming the
file, not a crash deep in numpy. Images come back as ``uint8`` tensors
``[N, C, H, W]`` and labels as ``int64`` tensors ``[N]``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from clgym_core.errors import DataError

_FIX = "delete it and download it again"

#: The most bytes a data file may hold (decompressed): far above the official files of these datasets, and
#: low enough that a corrupt header or a decompression bomb is refused before it exhausts memory.
MAX_FILE_BYTES = 1 << 30

# ---- IDX ------------------------------------------------------------------------------------------
# Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
# dimension; the data follows in C order (LeCun et al., the MNIST page). The datasets here use only
# unsigned bytes; the other type codes are named in messages.
_IDX_UBYTE = 0x08
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
              0x0E: "float64"}
_IDX_MAX_DIMS = 4


def _open(path: Path) -> BinaryIO:
    """``path`` opened for reading, decompressing on the fly when it ends in ``.gz``."""
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}); {_FIX}") from None


_CHUNK = 1 << 20


def _read(path: Path, stream: BinaryIO, size: int) -> bytearray:
    """Up to ``size`` bytes of ``stream``; read or decompression failures become a DataError naming ``path``.

    Read in chunks: ``read(size)`` would reserve ``size`` bytes up front, however
    little the stream holds.
    """
    out = bytearray()
    try:
        while len(out) < size:
            chunk = stream.read(min(size - len(out), _CHUNK))
            if not chunk:
                break
            out += chunk
    except (OSError, EOFError, zlib.error) as exc:  # gzip raises these for truncated, corrupt or non-gzip files
        text = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {text}); {_FIX}") from None
    return out


def _read_bytes(path: Path, limit: int | None = None) -> bytearray:
    """The whole (decompressed) content of ``path``, refused when it holds more than ``limit`` bytes."""
    limit = MAX_FILE_BYTES if limit is None else limit
    with _open(path) as stream:
        size = None if path.suffix == ".gz" else os.fstat(stream.fileno()).st_size
        if size is not None and size > limit:
            raise DataError(f"{path}: {size} bytes, more than the {limit} a data file may hold; is it the right file?")
        data = _read(path, stream, limit + 1 if size is None else size)  # never decompress more than the limit
    if len(data) > limit:
        raise DataError(f"{path}: decompresses to more than the {limit} bytes a data file may hold; {_FIX}")
    return data


def _idx_dims(path: Path, stream: BinaryIO, ndim: int) -> tuple[int, ...]:
    """The dimensions in the IDX header at the start of ``stream``, checked against the format and ``ndim``."""
    head = _read(path, stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: only {len(head)} bytes, too short for an IDX header; {_FIX}")
    expected_magic = f"0000{_IDX_UBYTE:02x}{ndim:02x}"
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
        raise DataError(
            f"{path}: not an unsigned-byte IDX file (magic {head.hex()}, expected {expected_magic}); {_FIX}"
        )
    if head[2] != _IDX_UBYTE:
        raise DataError(
            f"{path}: IDX file of {_IDX_TYPES[head[2]]} values (magic {head.hex()}), expected unsigned bytes "
            f"({expected_magic}); is it the right file?"
        )
    if not 1 <= head[3] <= _IDX_MAX_DIMS:
        raise DataError(f"{path}: IDX header declares {head[3]} dimensions (1 to {_IDX_MAX_DIMS} allowed); {_FIX}")
    if head[3] != ndim:
        raise DataError(f"{path}: IDX file has {head[3]} dimensions, expected {ndim}; is it the right file?")
    raw = _read(path, stream, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(raw)} bytes); {_FIX}")
    return tuple(int.from_bytes(raw[4 * i: 4 * i + 4], "big") for i in range(ndim))


def read_idx(path: str | Path, ndim: int, max_bytes: int | None = None) -> torch.Tensor:
    """The unsigned-byte IDX array in ``path`` (plain or ``.gz``) with ``ndim`` dimensions.

    The header is read and checked first; the body is then read (or decompressed)
    up to the size the header announces and no further, so a corrupt header or a
    decompression bomb costs no more than ``max_bytes`` (default
    :data:`MAX_FILE_BYTES`) of memory.
    """
    path = Path(path)
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    with _open(path) as stream:
        dims = _idx_dims(path, stream, ndim)
        header = 4 + 4 * ndim
        body = math.prod(dims)  # exact: Python integers do not overflow
        if body > limit:
            raise DataError(
                f"{path}: IDX header announces shape {dims} ({body} bytes), more than the {limit} a data file "
                f"may hold; the header is corrupt, {_FIX}"
            )
        expected = header + body
        if path.suffix != ".gz":
            size = os.fstat(stream.fileno()).st_size
            if size != expected:
                state = "truncated" if size < expected else "longer than its header says"
                raise DataError(
                    f"{path}: {state}: header announces shape {dims} ({expected} bytes) but the file has "
                    f"{size} bytes; {_FIX}"
                )
        data = _read(path, stream, body)
        if len(data) < body:
            raise DataError(
                f"{path}: truncated: header announces shape {dims} ({expected} bytes) but the file decompresses "
                f"to {header + len(data)} bytes; {_FIX}"
            )
        if _read(path, stream, 1):
            raise DataError(
                f"{path}: longer than its header says: header announces shape {dims} ({expected} bytes) but the "
                f"file decompresses to more; {_FIX}"
            )
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).reshape(dims))  # a bytearray: writable, no copy


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


def _empty_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for the empty placeholder numpy pickles, and nothing larger.

    numpy pickles an array as ``_reconstruct(ndarray, (0,), ...)`` and then sets its
    state (shape and bytes) from data in the file; a larger placeholder allocates
    memory the file does not hold (a few bytes could fill gigabytes with ``None``).
    """
    if subtype is not np.ndarray or not isinstance(shape, tuple) or math.prod(shape) != 0:
        raise pickle.UnpicklingError(f"refusing an array placeholder of shape {shape!r}: not how numpy pickles")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``codecs.encode`` as pickle protocol 2 uses it for bytes (latin1 only: no other codec runs)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing codecs.encode with {encoding!r}: not how pickle stores bytes")
    return text.encode("latin1")


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a data file must never run code or allocate what it lacks."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a data type")
        if name == "_reconstruct":
            return _empty_array
        if name == "encode":
            return _latin1_encode
        return super().find_class(module, name)


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
        values = np.asarray(entries[label_key])
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: {label_key!r} is not a list of integers ({text}); {_FIX}") from None
    if values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and values.size == 0):
        raise DataError(f"{path}: {label_key!r} holds {values.dtype} values, not integers; {_FIX}")
    if values.ndim != 1:
        raise DataError(f"{path}: {label_key!r} has shape {values.shape}, expected a list of integers; {_FIX}")
    if values.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {values.shape[0]} labels for {data.shape[0]} images; {_FIX}")
    # Checked before the cast to int64, which would wrap values beyond its range.
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}; is it a batch of the right CIFAR dataset?")
    labels = torch.from_numpy(values.astype(np.int64))
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32)
    return images, labels


def write_cifar_batch(path: str | Path, images: np.ndarray, labels: Any, label_key: str, **extra: Any) -> None:
    """Write a CIFAR batch in the official layout (bytes keys, protocol 2), for tests and converted data."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).reshape(len(images), 3072))
    obj = {b"data": images, label_key.encode(): [int(v) for v in labels]}
    obj.update({k.encode(): v for k, v in extra.items()})
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
