"""``clgym plot``: PNG heatmaps and task curves per run, and one figure comparing runs (headless)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.cli import app

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(folder: Path, algorithm: str, seed: int, last_row: list[float], problem: str = "classification") -> Path:
    folder.mkdir(parents=True)
    matrix = [[50.0, 50.0, 50.0], [95.0, 40.0, 45.0], [70.0, 96.0, 40.0], last_row]
    metrics = {"problem": problem, "benchmark": "split_mnist", "algorithm": algorithm, "seed": seed, "num_tasks": 3}
    if problem == "classification":
        metrics["accuracy_matrix"] = matrix
    else:
        metrics.update(accuracy_matrix=None, loss_matrix=[[v / 100 for v in row] for row in matrix])
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def invoke(*args: str):
    return CliRunner().invoke(app, ["plot", *args])


def test_one_run_gets_heatmap_and_task_curves_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)  # headless
    run = write_run(tmp_path / "ewc", "ewc", 0, [60.0, 70.0, 97.0])
    result = invoke(str(run))
    assert result.exit_code == 0, result.output
    assert is_png(run / "accuracy_matrix.png") and is_png(run / "task_curves.png")
    assert not (tmp_path / "plots").exists()  # nothing to compare with one run


def test_several_runs_are_compared_on_one_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "runs" / "a", "ewc", 0, [60.0, 70.0, 97.0])
    write_run(tmp_path / "runs" / "b", "finetune", 0, [20.0, 30.0, 98.0])
    result = invoke("runs", "--no-per-run", "--out", "figures")
    assert result.exit_code == 0, result.output
    assert is_png(tmp_path / "figures" / "average_accuracy.png")
    assert not (tmp_path / "runs" / "a" / "accuracy_matrix.png").exists()
    assert "wrote figures/average_accuracy.png" in result.stdout


def test_labels_tell_runs_apart_and_seeds_can_be_averaged(tmp_path, monkeypatch):
    from clgym_core import plots

    captured: dict = {}

    def fake(runs, path, **kwargs):
        captured[Path(path).name] = {k: [list(map(float, r)) for r in v] for k, v in runs.items()}
        return Path(path)

    monkeypatch.setattr(plots, "plot_average_accuracy", fake)
    write_run(tmp_path / "s0", "ewc", 0, [60.0, 70.0, 90.0])
    write_run(tmp_path / "s1", "ewc", 1, [80.0, 90.0, 100.0])
    write_run(tmp_path / "ft", "finetune", 0, [20.0, 30.0, 98.0])
    assert invoke(str(tmp_path), "--no-per-run", "--out", str(tmp_path / "f")).exit_code == 0
    assert set(captured["average_accuracy.png"]) == {"ewc s0", "ewc s1", "finetune s0"}
    assert invoke(str(tmp_path), "--no-per-run", "--mean-over-seeds", "--out", str(tmp_path / "f")).exit_code == 0
    averaged = captured["average_accuracy.png"]
    assert set(averaged) == {"ewc (2 runs)", "finetune (1 run)"}
    assert averaged["ewc (2 runs)"][3] == [70.0, 80.0, 95.0]


def test_regression_runs_plot_their_loss_matrix(tmp_path):
    run = write_run(tmp_path / "reg", "finetune", 0, [20.0, 30.0, 98.0], problem="regression")
    result = invoke(str(run), "--out", str(tmp_path / "f"))
    assert result.exit_code == 0, result.output
    assert is_png(tmp_path / "f" / "reg" / "loss_matrix.png")


@pytest.mark.parametrize(
    "metrics, fragment",
    [
        ({"benchmark": "b", "algorithm": "a", "accuracy_matrix": [[1.0]]}, "no accuracy_matrix with at least one"),
        ({"benchmark": "b", "algorithm": "a", "accuracy_matrix": [[1.0, 2.0], [3.0, 4.0]]}, "cannot plot"),
        ({"loss": 1}, "not a clgym metrics.json"),
    ],
)
def test_bad_run_directories_are_one_line_errors(tmp_path, metrics, fragment):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    result = invoke(str(tmp_path / "run"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and str(tmp_path / "run") in lines[0]


def test_not_a_run_directory(tmp_path):
    result = invoke(str(tmp_path))
    assert result.exit_code == 2 and "no runs found" in result.stderr
