"""``clgym results``: run directories into a DataFrame and a leaderboard with mean and std over seeds."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core import results
from clgym_core.cli import app

# (benchmark, algorithm, seed, average accuracy, forgetting, bwt, fwt, wall seconds)
RUNS = [
    ("rotated_mnist", "ewc", 0, 80.0, 10.0, -9.0, 1.0, 100.0),
    ("rotated_mnist", "ewc", 1, 82.0, 8.0, -7.0, 1.5, 110.0),
    ("rotated_mnist", "ewc", 2, 84.0, 6.0, -5.0, 2.0, 120.0),
    ("rotated_mnist", "finetune", 0, 60.0, 30.0, -29.0, 0.5, 50.0),
    ("rotated_mnist", "finetune", 1, 70.0, 20.0, -19.0, 0.5, 70.0),
    ("split_cifar100", "ewc", 0, 55.0, 12.0, -11.0, 0.0, 300.0),
]


def spec_for(benchmark: str, algorithm: str, seed: int, lam: float = 100.0) -> dict:
    return {
        "benchmark": {"name": benchmark, "params": {"num_tasks": 5, "seed": seed}},
        "algorithm": {"name": algorithm, "params": {"lambda": lam} if algorithm == "ewc" else {}},
        "trainer": {"epochs_per_task": 1, "device": "cpu", "progress": False},
        "seed": seed,
        "output_dir": "runs",
        "versions": {"clgym-core": "0.1.0"},
    }


def write_run(folder: Path, benchmark: str, algorithm: str, seed: int, acc: float, forgetting: float, bwt: float,
              fwt: float, wall: float, lam: float = 100.0) -> Path:
    folder.mkdir(parents=True)
    metrics = {
        "problem": "classification", "benchmark": benchmark, "algorithm": algorithm, "backbone": "mlp",
        "seed": seed, "num_tasks": 5, "accuracy_matrix": [[10.0] * 5] * 6, "loss_matrix": [[1.0] * 5] * 6,
        "average_accuracy": acc, "average_forgetting": forgetting, "backward_transfer": bwt,
        "forward_transfer": fwt, "learning_accuracy": acc + forgetting, "wall_seconds": wall,
        "peak_memory_mb": 500.0, "device": "cpu", "versions": {"clgym-core": "0.1.0"},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec_for(benchmark, algorithm, seed, lam)))
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for i, run in enumerate(RUNS):
        write_run(root / run[0] / f"{run[1]}-s{run[2]}-{i}", *run)  # a nested tree, as sweeps leave them
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, ["results", *args])


def test_load_runs_reads_every_run_below_a_folder(runs_dir):
    frame = results.load_runs([runs_dir])
    assert len(frame) == 6
    assert sorted(frame["average_accuracy"]) == sorted(r[3] for r in RUNS)
    assert set(frame["benchmark"]) == {"rotated_mnist", "split_cifar100"}
    assert frame["config"].str.len().eq(8).all()


def test_leaderboard_gives_mean_and_sample_std_over_seeds(runs_dir):
    table = results.leaderboard(results.load_runs([runs_dir]))
    rows = {(r["benchmark"], r["algorithm"]): r for r in table.to_dict("records")}
    ewc = rows[("rotated_mnist", "ewc")]
    assert ewc["runs"] == 3 and ewc["seeds"] == "0,1,2" and ewc["configs"] == 1
    assert ewc["average_accuracy_mean"] == pytest.approx(82.0)
    assert ewc["average_accuracy_std"] == pytest.approx(2.0)  # sample std of 80, 82, 84
    assert ewc["wall_seconds_mean"] == pytest.approx(110.0) and ewc["wall_seconds_std"] == pytest.approx(10.0)
    finetune = rows[("rotated_mnist", "finetune")]
    assert finetune["average_accuracy_mean"] == pytest.approx(65.0)
    assert finetune["average_accuracy_std"] == pytest.approx(math.sqrt(50.0))
    assert finetune["average_forgetting_mean"] == pytest.approx(25.0)
    single = rows[("split_cifar100", "ewc")]
    assert single["runs"] == 1 and math.isnan(single["average_accuracy_std"])


def test_sort_is_best_first_and_reversible(runs_dir):
    frame = results.load_runs([runs_dir])
    by_accuracy = results.leaderboard(frame, sort="average_accuracy")
    assert list(by_accuracy["average_accuracy_mean"]) == [82.0, 65.0, 55.0]
    by_forgetting = results.leaderboard(frame, sort="average_forgetting")  # lower is better
    assert list(by_forgetting["average_forgetting_mean"]) == [8.0, 12.0, 25.0]
    reversed_ = results.leaderboard(frame, sort="average_accuracy", reverse=True)
    assert list(reversed_["average_accuracy_mean"]) == [55.0, 65.0, 82.0]


def test_cli_csv_is_the_leaderboard_table(runs_dir):
    result = invoke(str(runs_dir), "--format", "csv", "--sort", "average_accuracy")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["benchmark"], r["algorithm"]) for r in rows] == [
        ("rotated_mnist", "ewc"), ("rotated_mnist", "finetune"), ("split_cifar100", "ewc")]
    assert float(rows[0]["average_accuracy_mean"]) == 82.0 and float(rows[0]["average_accuracy_std"]) == 2.0
    assert float(rows[1]["backward_transfer_mean"]) == -24.0


def test_cli_markdown_table(runs_dir):
    result = invoke(str(runs_dir), "--format", "markdown", "--sort", "average_accuracy")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ("| benchmark | algorithm | runs | seeds | average_accuracy | average_forgetting "
                        "| chaudhry_forgetting | backward_transfer | forward_transfer | wall_seconds |")
    assert lines[1] == "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|"
    # These metrics.json files predate chaudhry_forgetting: shown as missing, not as 0.
    assert lines[2] == ("| rotated_mnist | ewc | 3 | 0,1,2 | 82.00 ± 2.00 | 8.00 ± 2.00 | - | -7.00 ± 2.00 "
                        "| 1.50 ± 0.50 | 110.00 ± 10.00 |")
    assert lines[4] == "| split_cifar100 | ewc | 1 | 0 | 55.00 | 12.00 | - | -11.00 | 0.00 | 300.00 |"


def test_cli_json_and_terminal_table(runs_dir, tmp_path):
    out = tmp_path / "board.json"
    result = invoke(str(runs_dir), "--format", "json", "--output", str(out))
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    ewc = next(r for r in records if r["algorithm"] == "ewc" and r["benchmark"] == "rotated_mnist")
    assert ewc["average_accuracy_mean"] == 82.0
    assert next(r for r in records if r["benchmark"] == "split_cifar100")["average_accuracy_std"] is None
    table = invoke(str(runs_dir), "--metrics", "average_accuracy,learning_accuracy")
    assert table.exit_code == 0
    assert "82.00 ± 2.00" in table.stdout and "learning acc %" in table.stdout and "90.00 ± 0.00" in table.stdout


def test_group_by_other_columns(runs_dir):
    result = invoke(str(runs_dir), "--group-by", "algorithm", "--format", "csv")
    rows = {r["algorithm"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["ewc"]["runs"] == "4" and float(rows["ewc"]["average_accuracy_mean"]) == pytest.approx(75.25)


def test_groups_that_pool_different_specs_are_flagged(tmp_path):
    write_run(tmp_path / "a", "rotated_mnist", "ewc", 0, 80.0, 1.0, 1.0, 1.0, 1.0, lam=100.0)
    write_run(tmp_path / "b", "rotated_mnist", "ewc", 1, 90.0, 1.0, 1.0, 1.0, 1.0, lam=1000.0)
    pooled = invoke(str(tmp_path), "--format", "csv")
    assert "2 group(s)" not in pooled.stderr and "1 group(s) pool runs of different specs" in pooled.stderr
    apart = invoke(str(tmp_path), "--format", "csv", "--group-by", "benchmark,algorithm,config")
    assert len(list(csv.DictReader(io.StringIO(apart.stdout)))) == 2 and "warning" not in apart.stderr


def test_unfinished_runs_are_left_out_with_a_note(runs_dir):
    unfinished = runs_dir / "rotated_mnist" / "crashed"
    unfinished.mkdir()
    (unfinished / "spec.yaml").write_text(yaml.safe_dump(spec_for("rotated_mnist", "ewc", 5)))
    result = invoke(str(runs_dir), "--format", "csv")
    assert result.exit_code == 0
    assert "1 unfinished run(s) left out" in result.stderr and "clgym run --resume" in result.stderr


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_corrupt_metrics_json_names_the_file(runs_dir):
    bad = runs_dir / "rotated_mnist" / "ewc-s0-0" / "metrics.json"
    bad.write_text('{"benchmark": "rotated_mnist", "algorithm": ')
    one_line_error(invoke(str(runs_dir)), str(bad), "corrupt metrics.json")


def test_foreign_metrics_json_is_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").write_text('{"loss": 0.1}')
    one_line_error(invoke(str(tmp_path)), "not a clgym metrics.json", "'benchmark'")


def test_folders_without_runs_and_bad_options(runs_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(invoke(str(tmp_path / "empty")), "no runs found")
    one_line_error(invoke(str(tmp_path / "missing")), "no such directory")
    one_line_error(invoke(str(runs_dir), "--sort", "accuracy"), "--sort", "average_accuracy")
    one_line_error(invoke(str(runs_dir), "--group-by", "optimizer"), "--group-by: unknown column 'optimizer'")
    one_line_error(invoke(str(runs_dir), "--metrics", "speed"), "--metrics: unknown column 'speed'")


def test_runs_of_a_real_run_directory_are_read(tmp_path):
    """metrics.json as the runner writes it (regression: accuracy keys null, loss metrics filled)."""
    folder = tmp_path / "reg"
    folder.mkdir()
    payload = {"problem": "regression", "benchmark": "toy_1d_regression", "algorithm": "finetune", "seed": 0,
               "average_accuracy": None, "average_forgetting": None,
               "loss_metrics": {"average_loss": 0.25, "average_forgetting": 0.1}, "wall_seconds": 2.0}
    (folder / "metrics.json").write_text(json.dumps(payload))
    row = results.read_run(folder)
    assert math.isnan(row["average_accuracy"]) and row["average_loss"] == 0.25 and row["average_forgetting"] == 0.1
    result = invoke(str(folder), "--format", "csv")
    assert "average_loss_mean" in result.stdout.splitlines()[0]


def test_unwritable_output_is_a_one_line_error(runs_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = invoke(str(runs_dir), "-f", "csv", "-o", str(blocker / "board.csv"))
    one_line_error(result, f"--output {blocker / 'board.csv'}: cannot write")
