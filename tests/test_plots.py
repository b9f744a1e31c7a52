"""clgym_core.plots: valid PNGs from good matrices, ValueError for bad ones, matplotlib imported lazily."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from clgym_core import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACC = [[10.0, 20.0, 30.0], [90.0, 99.0, 40.0], [70.0, 95.0, 50.0], [80.0, 85.0, 92.0]]
LOSS = [[2.0, 2.5], [0.1, 2.0], [0.9, 0.05]]


def _check_png(path) -> np.ndarray:
    import matplotlib.image

    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    return image


def test_accuracy_matrix_heatmap(tmp_path):
    path = plots.plot_accuracy_matrix(ACC, tmp_path / "deep" / "acc.png", title="finetune")
    assert path == tmp_path / "deep" / "acc.png"
    _check_png(path)


def test_loss_matrix_heatmap_and_curves(tmp_path):
    _check_png(plots.plot_accuracy_matrix(LOSS, tmp_path / "loss.png", kind="loss"))
    _check_png(plots.plot_task_curves(LOSS, tmp_path / "loss_curves.png", kind="loss"))
    # A constant loss matrix still has a colour range.
    _check_png(plots.plot_accuracy_matrix(np.ones((3, 2)), tmp_path / "flat.png", kind="loss"))


def test_task_curves_accept_arrays_and_tensors(tmp_path):
    import torch

    _check_png(plots.plot_task_curves(np.array(ACC), tmp_path / "curves.png"))
    _check_png(plots.plot_task_curves(torch.tensor(ACC), tmp_path / "curves_t.png"))


def test_many_tasks_still_plot(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.uniform(0, 100, size=(21, 20))
    _check_png(plots.plot_accuracy_matrix(big, tmp_path / "big.png"))
    _check_png(plots.plot_task_curves(big, tmp_path / "big_curves.png"))


def test_average_accuracy_over_runs(tmp_path):
    runs = {"finetune": ACC, "joint": [[50.0, 50.0], [100.0, 50.0], [100.0, 100.0]]}
    _check_png(plots.plot_average_accuracy(runs, tmp_path / "avg.png"))


def test_seen_task_average_is_the_mean_over_tasks_trained_so_far():
    # after 1: 90; after 2: (70 + 95) / 2; after 3: (80 + 85 + 92) / 3
    assert plots.seen_task_average(ACC).tolist() == pytest.approx([90.0, 82.5, 257 / 3])


@pytest.mark.parametrize(
    "matrix",
    [
        [[1.0, 2.0], [3.0, 4.0]],  # square: row 0 (untrained) missing
        [1.0, 2.0, 3.0],  # not 2-D
        [[]],  # no tasks
        [[1.0], [math.nan]],  # not finite
        [[1.0], [math.inf]],
        [["a"], ["b"]],  # not numbers
        [[1.0, 2.0], [3.0]],  # ragged
    ],
)
@pytest.mark.parametrize("plot", [plots.plot_accuracy_matrix, plots.plot_task_curves])
def test_bad_matrices_raise_value_error(tmp_path, plot, matrix):
    with pytest.raises(ValueError):
        plot(matrix, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_bad_kind_and_bad_runs_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        plots.plot_accuracy_matrix(ACC, tmp_path / "x.png", kind="accuracies")
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_average_accuracy({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="joint"):
        plots.plot_average_accuracy({"finetune": ACC, "joint": [[1.0, 2.0]]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_importing_the_core_and_plots_does_not_import_matplotlib():
    code = "import sys, clgym_core, clgym_core.plots; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_plotting_leaves_pyplot_alone(tmp_path):
    code = (
        "import sys; from clgym_core import plots; "
        f"plots.plot_task_curves({ACC!r}, {str(tmp_path / 'c.png')!r}); "
        "sys.exit('matplotlib.pyplot' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
