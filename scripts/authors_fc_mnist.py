#!/usr/bin/env python3
"""Run the Stable SGD authors' baseline script (their copy of the A-GEM code) on today's TensorFlow.

The EWC, A-GEM and ER rows of Table 2 of Mirzadeh et al. 2020 come from
``external_libs/continual_learning_algorithms/fc_mnist.py`` in
imirzadeh/stable-continual-learning, a TensorFlow 1 program. This script runs
that file as committed, with the flags of their ``replicate_mnist.sh``, so
that its numbers can be compared with the published ones and with ours
(docs/results.md, round 4). Nothing of theirs is copied into this project:
it works on a temporary copy of a checkout you give it, where it changes
only what TensorFlow 2 needs:

* every ``import tensorflow as tf`` becomes ``tensorflow.compat.v1`` with
  v2 behaviour off (the graph, sessions and ops their code uses are all there);
* ``tensorflow.examples.tutorials.mnist.input_data`` (gone since TF 2) is
  replaced by a small loader of the IDX files with the same split (the
  first 5,000 training images for validation, the other 55,000 for
  training), the same 1/255 scaling and one-hot labels.

``--cross-validate-mode`` is passed: it skips their snapshots during training
(evaluation only; the training is the same) and makes the script print
``ACC`` (mean final accuracy over the tasks) and ``Fgt`` (their
``compute_fgt``, Chaudhry's forgetting). Needs ``pip install tensorflow-cpu
opencv-python-headless scipy six matplotlib ipython`` (their imports), which
clgym does not depend on.

    python scripts/authors_fc_mnist.py --repo PATH/stable-continual-learning \\
        --mnist ../shared/data/MNIST/raw --dataset perm-mnist --method ER --seed 1345
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = Path("external_libs") / "continual_learning_algorithms"

LOADER = '''"""Stands in for TensorFlow 1's tensorflow.examples.tutorials.mnist.input_data (written for clgym)."""
import numpy as np

RAW = {raw!r}


def _idx(name):
    with open(RAW + "/" + name, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class _Split:
    def __init__(self, images, labels):
        self._images, self._labels = images, labels

    @property
    def images(self):
        return self._images

    @property
    def labels(self):
        return self._labels


class _Splits:
    pass


def read_data_sets(path, one_hot=True, validation_size=5000):
    def scaled(images, labels):
        return images.reshape(len(images), 784).astype(np.float32) / 255.0, np.eye(10)[labels]

    train_x, train_y = scaled(_idx("train-images-idx3-ubyte"), _idx("train-labels-idx1-ubyte"))
    test_x, test_y = scaled(_idx("t10k-images-idx3-ubyte"), _idx("t10k-labels-idx1-ubyte"))
    splits = _Splits()
    splits.validation = _Split(train_x[:validation_size], train_y[:validation_size])
    splits.train = _Split(train_x[validation_size:], train_y[validation_size:])
    splits.test = _Split(test_x, test_y)
    return splits
'''


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def prepare(repo: Path, mnist: Path, work: Path) -> Path:
    """A patched copy of their code under ``work``; returns the directory holding fc_mnist.py."""
    source = repo / CODE
    if not (source / "fc_mnist.py").is_file():
        _refuse(f"--repo: {repo} has no {CODE / 'fc_mnist.py'} (a checkout of imirzadeh/stable-continual-learning)")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        if not (mnist / name).is_file():
            _refuse(f"--mnist: {mnist} has no {name} (the uncompressed MNIST IDX files)")
    target = work / "code"
    shutil.copytree(source, target)
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"^import tensorflow as tf\b.*$", "import tensorflow.compat.v1 as tf; tf.disable_v2_behavior()",
                      text, flags=re.M)
        text = text.replace("from tensorflow.examples.tutorials.mnist import input_data", "import clgym_mnist_loader as input_data")
        path.write_text(text)
    (target / "clgym_mnist_loader.py").write_text(LOADER.format(raw=str(mnist.resolve())))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a checkout of imirzadeh/stable-continual-learning")
    parser.add_argument("--mnist", type=Path, required=True, help="folder with the four uncompressed MNIST IDX files")
    parser.add_argument("--dataset", choices=["perm-mnist", "rot-mnist"], required=True)
    parser.add_argument("--method", choices=["ER", "A-GEM", "EWC", "VAN"], required=True)
    parser.add_argument("--seed", type=int, default=1345, help="their --random-seed (replicate_mnist.sh: 1345, 1455, 1668)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import: no start-up chatter
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        _refuse("tensorflow is not installed (pip install tensorflow-cpu opencv-python-headless scipy six matplotlib ipython)")
    with tempfile.TemporaryDirectory(prefix="fc_mnist_") as tmp:
        code = prepare(args.repo, args.mnist, Path(tmp))
        log_dir = Path(tmp) / "results"
        # replicate_mnist.sh's flags; the rest are fc_mnist.py's defaults (lambda 10, 1 example per class, batch 64).
        command = [sys.executable, "fc_mnist.py", "--dataset", args.dataset, "--random-seed", str(args.seed),
                   "--decay", "1.0", "--examples-per-task", "50000", "--arch", "FC-S", "--num-runs", "1",
                   "--batch-size", "32", "--optim", "SGD", "--learning-rate", "0.1", "--imp-method", args.method,
                   "--log-dir", str(log_dir), "--cross-validate-mode"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: fc_mnist.py exited with {done.returncode}:\n{done.stderr[-2000:]}")
        # --cross-validate-mode appends "... ACC: a ... Fgt: f ..." to PERMUTE_MNIST_<method>_<optim>.txt
        line = (log_dir / f"PERMUTE_MNIST_{args.method}_SGD.txt").read_text().splitlines()[-1]
        acc = float(re.search(r"ACC: ([0-9.]+)", line).group(1))
        fgt = float(re.search(r"Fgt: ([0-9.]+)", line).group(1))
        print(f"{args.dataset} {args.method} seed {args.seed}: A_T {100 * acc:.2f}%  F_T {fgt:.3f}")


if __name__ == "__main__":
    main()
