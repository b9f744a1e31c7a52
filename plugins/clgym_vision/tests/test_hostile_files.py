"""Hostile data files: each is refused in one line naming the file, within bounded memory, running no code.

The memory bounds are measured with ``tracemalloc``, which sees the buffers of
``zlib``, ``bytes`` and numpy, so a reader that decompresses or allocates what a
header or a pickle merely claims fails these tests.
"""

from __future__ import annotations

import gzip
import pickle
import socket
import struct
import tracemalloc
import urllib.request
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from clgym_core.errors import DataError
from clgym_vision import formats
from clgym_vision.split import SplitCIFAR10
from clgym_vision.instances import PermutedMNIST

MiB = 1 << 20


def _one_line_naming(error: BaseException, path: Path) -> str:
    text = str(error)
    assert "\n" not in text and str(path) in text
    return text


def _idx_header(dims: tuple[int, ...], type_code: int = 0x08, ndim: int | None = None) -> bytes:
    count = len(dims) if ndim is None else ndim
    return bytes([0, 0, type_code, count]) + b"".join(d.to_bytes(4, "big") for d in dims)


def _write_gz_stream(path: Path, header: bytes, zero_bytes: int) -> None:
    """``header`` then ``zero_bytes`` zeros, gzip-compressed in 1 MiB pieces (a small file that inflates a lot)."""
    with gzip.open(path, "wb") as f:
        f.write(header)
        block = bytes(MiB)
        for _ in range(zero_bytes // MiB):
            f.write(block)


def _peak_bytes(action) -> tuple[int, BaseException | None]:
    """Peak traced memory while ``action()`` runs, and the exception it raised (None if none)."""
    tracemalloc.start()
    try:
        action()
        raised = None
    except BaseException as exc:  # noqa: BLE001 - returned to the test to inspect
        raised = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, raised


# ---- item 4: decompression bounded by the header ----------------------------------------------------------
def test_gz_longer_than_its_header_is_refused_without_inflating_it(tmp_path):
    """31 MB of gzip once became 7 GiB: only what the header announces (plus one byte) may be decompressed."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    _write_gz_stream(path, _idx_header((10,)), 32 * MiB)
    assert path.stat().st_size < MiB
    peak, raised = _peak_bytes(lambda: formats.read_idx(path, 1))
    assert isinstance(raised, DataError)
    assert "longer than its header says" in _one_line_naming(raised, path)
    assert peak < 4 * MiB, f"decompressed {peak} bytes for a 10-byte body"


def test_absurd_header_is_refused_before_reading_the_body(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _write_gz_stream(path, _idx_header((0xFFFFFFFF, 28, 28)), 32 * MiB)
    peak, raised = _peak_bytes(lambda: formats.read_idx(path, 3))
    assert isinstance(raised, DataError)
    text = _one_line_naming(raised, path)
    assert "(4294967295, 28, 28)" in text and str(formats.MAX_FILE_BYTES) in text
    assert peak < 4 * MiB


def test_gz_shorter_than_its_header_is_truncated(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((10, 28, 28)) + bytes(9 * 784)))
    with pytest.raises(DataError) as info:
        formats.read_idx(path, 3)
    assert "truncated" in _one_line_naming(info.value, path) and "(10, 28, 28)" in str(info.value)


def test_plain_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_header((2, 28, 28)) + bytes(2 * 784 + 5))

    def no_read(*args, **kwargs):
        raise AssertionError("the body was read although the file size already disagrees with the header")

    monkeypatch.setattr(formats, "_read", lambda path, stream, size: no_read() if size > 64 else stream.read(size))
    with pytest.raises(DataError, match="longer than its header says") as info:
        formats.read_idx(path, 3)
    _one_line_naming(info.value, path)


# ---- item 6: IDX headers that used to end in a traceback ----------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    ("header", "ndim", "message"),
    [
        # 2^31 * 2^31 * 4 = 2^64 wrapped to 0 in int64: the old reader then reshaped 0 bytes into that shape.
        (_idx_header((1 << 31, 1 << 31, 4)), 3, "more than the"),
        (_idx_header((0xFFFFFFFF,) * 4, ndim=4), 3, "has 4 dimensions, expected 3"),
        (_idx_header((0xFFFFFFFF,) * 3), 3, "more than the"),
        (_idx_header((), ndim=0), 1, "declares 0 dimensions"),
        (_idx_header((1,) * 5), 1, "declares 5 dimensions"),
        (_idx_header((1,) * 255, ndim=255), 1, "declares 255 dimensions"),
        (_idx_header((4, 28, 28), type_code=0x0D), 3, "float32 values"),
        (_idx_header((4,), type_code=0x07), 1, "not an unsigned-byte IDX file"),
        (b"\x01\x00\x08\x01" + bytes(4), 1, "not an unsigned-byte IDX file"),
        (_idx_header((4, 28, 28))[:9], 3, "truncated IDX header"),
    ],
    ids=["overflow-to-zero", "4-dims", "absurd", "0-dims", "5-dims", "255-dims", "float32", "type-07",
         "magic", "cut-header"],
)
def test_hostile_idx_headers_are_one_line_errors(tmp_path, header, ndim, message, suffix):
    path = tmp_path / f"labels-idx{suffix}"
    path.write_bytes(gzip.compress(header) if suffix else header)
    with pytest.raises(DataError, match=message) as info:
        formats.read_idx(path, ndim)
    _one_line_naming(info.value, path)


def test_corrupt_deflate_stream_is_a_one_line_error(tmp_path):
    """A damaged gzip body raises zlib.error, which is neither OSError nor EOFError."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.compress(_idx_header((100,)) + bytes(range(100)), mtime=0))
    payload[10] = 0xFF  # the first deflate block now has the reserved block type
    path.write_bytes(bytes(payload))
    with pytest.raises(DataError, match="cannot read") as info:
        formats.read_idx(path, 1)
    _one_line_naming(info.value, path)


def test_hostile_idx_through_the_benchmark(tmp_path, write_idx_dataset):
    write_idx_dataset(tmp_path, gz=True)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    _write_gz_stream(path, _idx_header((200, 28, 28)), 32 * MiB)
    with pytest.raises(DataError, match="longer than its header says") as info:
        PermutedMNIST(root=str(tmp_path), download=False).load_train(1)
    _one_line_naming(info.value, path)


# ---- CIFAR pickles ------------------------------------------------------------------------------------------
def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _batch_pickle(labels_opcodes: bytes, extra: bytes = b"") -> bytes:
    """A protocol-2 CIFAR batch {'data': uint8 [2, 3072], 'labels': <labels_opcodes>} built from opcodes."""
    data = pickle.dumps(np.zeros((2, 3072), np.uint8), protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02}(" + _unicode("data") + data + _unicode("labels") + labels_opcodes + extra + b"u."


def test_array_placeholder_cannot_allocate_what_the_file_lacks(tmp_path):
    """numpy pickles ``_reconstruct(ndarray, (0,), ...)``; a larger one would fill memory with None."""
    n = 10_000_000  # 80 MB of object pointers from a 6 kB file
    placeholder = (b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ" + struct.pack("<i", n)
                   + b"\x85" + _unicode("O") + b"\x87R")
    path = tmp_path / "data_batch_1"
    path.write_bytes(_batch_pickle(placeholder))
    assert path.stat().st_size < 10_000
    peak, raised = _peak_bytes(lambda: formats.read_cifar_batch(path, "labels", 10))
    assert isinstance(raised, DataError)
    assert "refusing an array placeholder" in _one_line_naming(raised, path)
    assert peak < 4 * MiB


def test_codecs_in_a_pickle_are_latin1_only(tmp_path):
    """Pickle protocol 2 stores bytes as ``codecs.encode(text, 'latin1')``; no other codec may run."""
    rot13 = b"c_codecs\nencode\n" + _unicode("nop") + _unicode("rot13") + b"\x86R"
    path = tmp_path / "data_batch_1"
    path.write_bytes(_batch_pickle(b"](K\x01K\x02e", extra=rot13 + b"K\x00"))
    with pytest.raises(DataError, match="refusing codecs.encode with 'rot13'") as info:
        formats.read_cifar_batch(path, "labels", 10)
    _one_line_naming(info.value, path)
    path.write_bytes(_batch_pickle(b"](K\x01K\x02e"))  # the same batch without it loads
    assert formats.read_cifar_batch(path, "labels", 10)[1].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([2**70, 1], "not integers"),  # OverflowError in the old int64 conversion
        ([2**63, 1], "not integers"),  # beyond int64: would wrap to a negative label
        ([0.5, 1.7], "float64 values, not integers"),  # the old reader truncated them silently
        ([True, False], "bool values, not integers"),
        (["1", "2"], "not integers"),
        ([[1], [2]], r"has shape \(2, 1\)"),
        (3, r"has shape \(\)"),
        ({1: 2}, "not integers"),
    ],
)
def test_labels_must_be_a_list_of_integers(tmp_path, labels, message):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, f, protocol=2)
    with pytest.raises(DataError, match=message) as info:
        formats.read_cifar_batch(path, "labels", 10)
    _one_line_naming(info.value, path)


def test_deeply_nested_labels_are_a_one_line_error(tmp_path):
    depth = 100_000
    path = tmp_path / "data_batch_1"
    path.write_bytes(_batch_pickle(b"]" * depth + b"a" * (depth - 1)))
    with pytest.raises(DataError) as info:
        formats.read_cifar_batch(path, "labels", 10)
    _one_line_naming(info.value, path)


@pytest.mark.parametrize("gz", [False, True])
def test_oversized_cifar_file_is_refused_within_the_cap(tmp_path, monkeypatch, gz):
    cap = 200_000
    monkeypatch.setattr(formats, "MAX_FILE_BYTES", cap)
    plain = tmp_path / "data_batch_1"
    formats.write_cifar_batch(plain, np.zeros((10_000, 3072), np.uint8), [0] * 10_000, "labels")  # 31 MB
    path = plain
    if gz:
        path = tmp_path / "data_batch_1.gz"
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    peak, raised = _peak_bytes(lambda: formats.read_cifar_batch(path, "labels", 10))
    assert isinstance(raised, DataError)
    assert str(cap) in _one_line_naming(raised, path)
    assert peak < 5 * cap  # a few buffers of the cap's size, not the 31 MB


def test_a_batch_just_under_the_cap_loads(tmp_path, monkeypatch):
    path = tmp_path / "data_batch_1"
    formats.write_cifar_batch(path, np.zeros((10, 3072), np.uint8), list(range(10)), "labels")
    monkeypatch.setattr(formats, "MAX_FILE_BYTES", path.stat().st_size)
    assert formats.read_cifar_batch(path, "labels", 10)[1].tolist() == list(range(10))


# ---- downloading without internet ---------------------------------------------------------------------------
def _offline(*args, **kwargs):
    """What urllib raises on a machine without network (no DNS)."""
    raise URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


@pytest.mark.parametrize("benchmark", [PermutedMNIST, SplitCIFAR10])
def test_offline_download_says_how_to_point_at_the_files(tmp_path, monkeypatch, benchmark):
    """The real torchvision download runs; only the network is gone."""
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(DataError) as info:
        benchmark(root=str(tmp_path / "data"), download=True).load_train(1)
    text = str(info.value)
    assert "\n" not in text and "download into" in text
    # Recent torchvision passes the network error on; older (0.19) only says which file it could not fetch.
    assert "name resolution" in text or "Error downloading" in text
    assert "$CLGYM_DATA" in text and "benchmark.params.root" in text
    assert benchmark.dataset.folder in text
