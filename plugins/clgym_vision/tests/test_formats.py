"""Parsing the official formats, and the one-line errors for missing, truncated and corrupt files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from clgym_core.errors import ClgymError, DataError
from clgym_vision import formats, sources
from clgym_vision.instances import PermutedMNIST
from clgym_vision.split import SplitCIFAR10, SplitCIFAR100, SplitFashionMNIST


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# ---- IDX ------------------------------------------------------------------------------------------------
def test_idx_round_trip_plain_and_gz(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        formats.write_idx(tmp_path / name, array)
        out = formats.read_idx(tmp_path / name, 3)
        assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(array))
    # The header is the official one: 0x00000803, then big-endian dimensions.
    assert (tmp_path / "a-idx3-ubyte").read_bytes()[:16] == bytes.fromhex("00000803" "00000007" "0000001c" "0000001c")


def test_idx_truncated_file_is_a_clear_error(tmp_path):
    array = np.zeros((10, 28, 28), dtype=np.uint8)
    path = tmp_path / "train-images-idx3-ubyte"
    formats.write_idx(path, array)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as info:
        formats.read_idx(path, 3)
    message = _one_line(info.value)
    assert str(path) in message and "truncated" in message and "(10, 28, 28)" in message


def test_idx_wrong_magic_and_dimensions(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")  # a gzip header in a file not named .gz
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        formats.read_idx(path, 3)
    formats.write_idx(path, np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="has 1 dimensions, expected 3"):
        formats.read_idx(path, 3)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        formats.read_idx(path, 1)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    formats.write_idx(path, np.zeros(1000, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError) as info:
        formats.read_idx(path, 1)
    assert str(path) in _one_line(info.value)


def test_idx_pair_checks_counts_shapes_and_labels(tmp_path):
    formats.write_idx(tmp_path / "img", np.zeros((4, 28, 28), dtype=np.uint8))
    formats.write_idx(tmp_path / "lab", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="5 labels for 4 images"):
        formats.read_idx_pair(tmp_path / "img", tmp_path / "lab", (28, 28), 10)
    formats.write_idx(tmp_path / "lab", np.array([0, 1, 2, 10], dtype=np.uint8))
    with pytest.raises(DataError, match="label 10 is out of range 0..9"):
        formats.read_idx_pair(tmp_path / "img", tmp_path / "lab", (28, 28), 10)
    with pytest.raises(DataError, match=r"\(28, 28\) pixels, expected \(32, 32\)"):
        formats.read_idx_pair(tmp_path / "img", tmp_path / "lab", (32, 32), 10)


def test_mnist_loads_synthetic_idx_exactly(mnist_root):
    root, arrays = mnist_root
    train_x, train_y, test_x, test_y = sources.MNIST.load(root, download=False)
    assert train_x.shape == (200, 1, 28, 28) and train_x.dtype == torch.uint8
    assert torch.equal(train_x[:, 0], torch.from_numpy(arrays["train_x"]))
    assert torch.equal(train_y, torch.from_numpy(arrays["train_y"]).long())
    assert torch.equal(test_x[:, 0], torch.from_numpy(arrays["test_x"]))
    assert test_y.dtype == torch.long and torch.equal(test_y, torch.from_numpy(arrays["test_y"]).long())


def test_gz_only_files_load(tmp_path, write_idx_dataset):
    arrays = write_idx_dataset(tmp_path, "FashionMNIST/raw", gz=True)
    train_x, train_y, _, _ = sources.FASHION_MNIST.load(tmp_path, download=False)
    assert torch.equal(train_x[:, 0], torch.from_numpy(arrays["train_x"]))


# ---- CIFAR pickles ------------------------------------------------------------------------------------
def test_cifar10_batches_parse_in_order(tmp_path, write_cifar):
    arrays = write_cifar(tmp_path, classes=10)
    train_x, train_y, test_x, test_y = sources.CIFAR10.load(tmp_path, download=False)
    assert train_x.shape == (100, 3, 32, 32) and train_x.dtype == torch.uint8
    # Row-major channel planes: data[:, :1024] is the red plane of a 32x32 image.
    assert torch.equal(train_x, torch.from_numpy(arrays["train_x"]))
    assert torch.equal(train_y, torch.from_numpy(arrays["train_y"]).long())
    assert torch.equal(test_x, torch.from_numpy(arrays["test_x"]))


def test_cifar100_uses_fine_labels(tmp_path, write_cifar):
    arrays = write_cifar(tmp_path, classes=100, n_train=200, n_test=100)
    _, train_y, _, test_y = sources.CIFAR100.load(tmp_path, download=False)
    assert torch.equal(train_y, torch.from_numpy(arrays["train_y"]).long())
    assert int(train_y.max()) == 99  # fine, not coarse (which stop at 19)


def test_cifar_truncated_pickle(tmp_path, write_cifar):
    write_cifar(tmp_path, classes=10)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError) as info:
        SplitCIFAR10(root=str(tmp_path), download=False).load_train(1)
    message = _one_line(info.value)
    assert str(path) in message and "not a readable CIFAR batch" in message


def test_cifar_wrong_content(tmp_path):
    path = tmp_path / "batch"
    formats.write_cifar_batch(path, np.zeros((4, 3072), np.uint8), [0, 1, 2, 3], "labels")
    with pytest.raises(DataError, match="missing key 'fine_labels'"):
        formats.read_cifar_batch(path, "fine_labels", 100)
    formats.write_cifar_batch(path, np.zeros((4, 3072), np.uint8), [0, 1, 2, 30], "labels")
    with pytest.raises(DataError, match="labels outside 0..9"):
        formats.read_cifar_batch(path, "labels", 10)
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((4, 1000), np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(DataError, match=r"shape \[N, 3072\]"):
        formats.read_cifar_batch(path, "labels", 10)
    with open(path, "wb") as f:
        pickle.dump([1, 2, 3], f, protocol=2)
    with pytest.raises(DataError, match="expected a pickled dict"):
        formats.read_cifar_batch(path, "labels", 10)


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match="refusing to load"):
        formats.read_cifar_batch(path, "labels", 10)
    assert not (tmp_path / "pwned").exists()


def test_cifar_python2_style_keys(tmp_path):
    """Python 2 archives read with latin1 give str keys; Python 3 writes bytes keys. Both load."""
    path = tmp_path / "b"
    with open(path, "wb") as f:
        pickle.dump({"data": np.full((2, 3072), 7, np.uint8), "labels": [3, 4]}, f, protocol=2)
    images, labels = formats.read_cifar_batch(path, "labels", 10)
    assert images.shape == (2, 3, 32, 32) and int(images.sum()) == 7 * 2 * 3072 and labels.tolist() == [3, 4]


# ---- locating, downloading ---------------------------------------------------------------------------------
def test_missing_files_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("CLGYM_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        PermutedMNIST(download=False).load_train(1)
    message = _one_line(info.value)
    assert str(tmp_path / "shared" / "MNIST" / "raw") in message
    assert str(tmp_path / "cache" / "clgym" / "data" / "MNIST" / "raw") in message
    assert "download: true" in message and "https://" in message and "train-images-idx3-ubyte" in message


def test_partial_files_count_as_missing(mnist_root):
    root, _ = mnist_root
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="MNIST not found"):
        PermutedMNIST(root=str(root), download=False).load_test(1)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets
    from urllib.error import URLError

    calls = []

    class Offline:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(DataError) as info:
        SplitFashionMNIST(root=str(tmp_path / "new"), download=True).load_train(1)
    message = _one_line(info.value)
    assert calls == [(str(tmp_path / "new"), True, True)]
    assert "download into" in message and str(tmp_path / "new" / "FashionMNIST" / "raw") in message
    assert "name resolution" in message


def test_download_goes_to_cache_when_env_root_is_read_only(tmp_path, monkeypatch, write_idx_dataset):
    """A read-only $CLGYM_DATA (like a shared data mount) without the files: download into the cache dir."""
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("CLGYM_DATA", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "_writable", lambda path: path != shared)
    import torchvision.datasets

    class FakeDownload:  # writes what torchvision's download would leave behind
        def __init__(self, root, train=True, download=False):
            write_idx_dataset(Path(root), "MNIST/raw", seed=3)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeDownload)
    benchmark = PermutedMNIST()
    assert len(benchmark.load_train(1)) == 200
    assert (tmp_path / "cache" / "clgym" / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert list(shared.iterdir()) == []


def test_nothing_is_written_into_the_root(mnist_root):
    root, _ = mnist_root
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    benchmark = PermutedMNIST(root=str(root), num_tasks=2, per_task_memory_examples=10)
    benchmark.load_memory_joint(2), benchmark.load_test(2)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_env_root_and_cache_dir(tmp_path, monkeypatch, write_idx_dataset):
    monkeypatch.delenv("CLGYM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.candidate_roots(None) == [tmp_path / "xdg" / "clgym" / "data"]
    write_idx_dataset(tmp_path / "xdg" / "clgym" / "data")
    assert len(PermutedMNIST(download=False).load_test(1)) == 100  # found in the cache dir
    monkeypatch.setenv("CLGYM_DATA", str(tmp_path / "env"))
    assert sources.candidate_roots(None)[0] == tmp_path / "env"
    assert sources.candidate_roots(str(tmp_path / "explicit")) == [tmp_path / "explicit"]


def test_errors_are_clgym_errors(tmp_path):
    with pytest.raises(ClgymError):
        SplitCIFAR100(root=str(tmp_path), download=False).load_train(1)
