"""scripts/authors_fc_mnist.py: the patched copy of the authors' code and its MNIST loader (no TensorFlow needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from clgym_vision.formats import write_idx
from tests.file_module import load_file_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    return load_file_module("authors_fc_mnist", ROOT / "scripts" / "authors_fc_mnist.py")


def _fake_checkout(root: Path) -> Path:
    code = root / "repo" / "external_libs" / "continual_learning_algorithms"
    (code / "utils").mkdir(parents=True)
    (code / "fc_mnist.py").write_text("import numpy as np\nimport tensorflow as tf\nX = 1\n")
    (code / "utils" / "data_utils.py").write_text(
        "import tensorflow as tf   # graph mode\nfrom tensorflow.examples.tutorials.mnist import input_data\n"
    )
    return root / "repo"


def _fake_mnist(root: Path, train: int = 5010, test: int = 7) -> Path:
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (train, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", (np.arange(test) + 3) % 10)
    return raw


def test_prepare_patches_only_the_tensorflow_imports_and_loads_mnist_like_tf1(script, tmp_path, monkeypatch):
    repo, raw = _fake_checkout(tmp_path), _fake_mnist(tmp_path)
    code = script.prepare(repo, raw, tmp_path / "work")
    main = (code / "fc_mnist.py").read_text().splitlines()
    assert main == ["import numpy as np", "import tensorflow.compat.v1 as tf; tf.disable_v2_behavior()", "X = 1"]
    data_utils = (code / "utils" / "data_utils.py").read_text()
    assert "tutorials" not in data_utils and "import clgym_mnist_loader as input_data" in data_utils
    assert "import tensorflow as tf" in (repo / "external_libs/continual_learning_algorithms/fc_mnist.py").read_text()

    monkeypatch.syspath_prepend(str(code))
    sys.modules.pop("clgym_mnist_loader", None)
    import clgym_mnist_loader  # the loader prepare() wrote

    sets = clgym_mnist_loader.read_data_sets("MNIST_data", one_hot=True)
    # TF1's split: the first 5,000 training images validate, the rest train; pixels scaled by 1/255.
    assert sets.validation.images.shape == (5000, 784) and sets.train.images.shape == (10, 784)
    assert sets.test.images.shape == (7, 784)
    first_train = np.frombuffer((raw / "train-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8)[5000 * 784:5001 * 784]
    assert np.allclose(sets.train.images[0], first_train / 255.0) and sets.train.images.dtype == np.float32
    assert np.array_equal(sets.train.labels.argmax(1), np.arange(5000, 5010) % 10)
    assert np.array_equal(sets.test.labels.argmax(1), (np.arange(7) + 3) % 10)
    assert np.all(sets.train.labels.sum(1) == 1)
    sets.train._images = sets.train.images[:, ::-1]  # their code swaps _images and reads .images back
    assert np.array_equal(sets.train.images[0], first_train[::-1] / np.float32(255.0))


def test_prepare_refuses_a_folder_that_is_not_their_checkout(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        script.prepare(tmp_path, _fake_mnist(tmp_path), tmp_path / "work")
    assert stop.value.code == 2
    assert "--repo" in capsys.readouterr().err
