"""Issue 18 item 5: the comparison plot draws a std band over seeds, keeps identical curves apart and
never puts runs of different benchmarks on one axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from clgym_core import plots
from clgym_core.cli import app


def write_run(folder: Path, benchmark: str, algorithm: str, seed: int, last_row: list[float]) -> Path:
    folder.mkdir(parents=True)
    matrix = [[50.0, 50.0, 50.0], [95.0, 40.0, 45.0], [70.0, 96.0, 40.0], last_row]
    (folder / "metrics.json").write_text(json.dumps({
        "problem": "classification", "benchmark": benchmark, "algorithm": algorithm, "seed": seed,
        "num_tasks": 3, "accuracy_matrix": matrix}))
    return folder


def capture(monkeypatch) -> dict:
    """Replace plot_average_accuracy with a recorder of its arguments, by file name."""
    captured: dict = {}

    def fake(runs, path, **kwargs):
        captured[Path(path).name] = {"runs": dict(runs), **kwargs}
        return Path(path)

    monkeypatch.setattr(plots, "plot_average_accuracy", fake)
    return captured


def invoke(*args: str):
    return CliRunner().invoke(app, ["plot", *args])


def test_mean_over_seeds_passes_the_std_of_the_seen_task_curve(tmp_path, monkeypatch):
    captured = capture(monkeypatch)
    write_run(tmp_path / "s0", "split_mnist", "ewc", 0, [60.0, 70.0, 90.0])
    write_run(tmp_path / "s1", "split_mnist", "ewc", 1, [80.0, 90.0, 100.0])
    write_run(tmp_path / "ft", "split_mnist", "finetune", 0, [20.0, 30.0, 98.0])
    result = invoke(str(tmp_path), "--no-per-run", "--mean-over-seeds", "--out", str(tmp_path / "f"))
    assert result.exit_code == 0, result.output
    bands = captured["average_accuracy.png"]["bands"]
    assert set(bands) == {"ewc (2 runs)"}  # one run has no spread
    # Seen-task averages differ only after task 3: (60+70+90)/3 vs (80+90+100)/3; sample std of the two.
    expected = np.std([220 / 3, 270 / 3], ddof=1)
    assert np.allclose(bands["ewc (2 runs)"], [0.0, 0.0, expected])


def test_band_is_drawn_and_identical_curves_look_different(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path, dpi: figures.append(figure) or Path(path))
    same = [[50.0, 50.0], [90.0, 40.0], [70.0, 95.0]]
    plots.plot_average_accuracy({"a": same, "b": same, "c": same}, tmp_path / "x.png",
                                bands={"a": [1.0, 2.0]})
    ax = figures[0].axes[0]
    looks = {(line.get_linestyle(), line.get_marker()) for line in ax.lines}
    assert len(looks) == 3  # three identical curves, three different dash/marker combinations
    assert len(ax.collections) == 1  # the band of "a"
    assert len({tuple(plots.line_style(i).items()) for i in range(8)}) == 8


def test_runs_of_different_benchmarks_get_one_figure_each(tmp_path, monkeypatch):
    captured = capture(monkeypatch)
    write_run(tmp_path / "a", "split_mnist", "ewc", 0, [60.0, 70.0, 90.0])
    write_run(tmp_path / "b", "split_mnist", "finetune", 0, [20.0, 30.0, 98.0])
    write_run(tmp_path / "c", "permuted_mnist", "ewc", 0, [80.0, 90.0, 100.0])
    result = invoke(str(tmp_path), "--no-per-run", "--out", str(tmp_path / "f"))
    assert result.exit_code == 0, result.output
    assert set(captured) == {"average_accuracy_split_mnist.png", "average_accuracy_permuted_mnist.png"}
    assert set(captured["average_accuracy_split_mnist.png"]["runs"]) == {"ewc", "finetune"}
    assert "permuted_mnist" in captured["average_accuracy_permuted_mnist.png"]["title"]
