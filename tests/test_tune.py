"""clgym tune: validation objective, study continued in DIR, exact trial counts with several workers,
pruning that saves training steps, best.yaml and the final seeds, and bad tune files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.build import resolve_spec
from clgym_core.spec import load_spec
from clgym_core.sweeps import tune
from tests.sweep_support import BASE, snapshot, write

runner = CliRunner()

SPACE = (
    "tune:\n"
    "  space:\n"
    "    optimizer.lr: {type: float, low: 0.01, high: 0.5, log: true}\n"
    "    backbone.params.hidden_sizes: [[8], [16]]\n"
    "  sampler: random\n"
)


@pytest.fixture
def tune_file(tmp_path: Path) -> Path:
    return write(tmp_path / "tune.yaml", BASE + SPACE + "  trials: 3\n")


def test_study_runs_trials_on_validation_data_and_writes_best_yaml(tune_file, tmp_path) -> None:
    out = tmp_path / "study"
    result = tune(tune_file, out, executor="inline")
    frame = result["trials"]
    assert len(frame) == 3 and set(frame["state"]) == {"complete"}
    for record in frame.to_dict("records"):
        run_dir = Path(record["run_dir"])
        spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        # The search trains without the held-out rows and scores on them, never on test data.
        assert spec["benchmark"]["params"]["validation_fraction"] == 0.1
        assert record["value"] == pytest.approx(metrics["validation"]["average_accuracy"])
    best = result["best"]
    assert best["value"] == frame["value"].max()
    # best.yaml is the real protocol: the base with the chosen values, no validation split, accepted by clgym run.
    data = yaml.safe_load(result["best_path"].read_text())
    assert "tune" not in data and "validation_fraction" not in data["benchmark"]["params"]
    assert data["optimizer"]["lr"] == best["params"]["optimizer.lr"]
    resolve_spec(load_spec(result["best_path"]))
    assert (out / "optimization_history.png").stat().st_size > 1000
    assert (out / "study.db").is_file()


def test_running_again_continues_the_study_up_to_the_total(tune_file, tmp_path) -> None:
    out = tmp_path / "study"
    tune(tune_file, out, executor="inline")
    again = tune(tune_file, out, executor="inline")
    assert len(again["trials"]) == 3  # nothing more to do
    more = tune(tune_file, out, trials=5, executor="inline")
    assert sorted(more["trials"]["trial"]) == [0, 1, 2, 3, 4]
    assert len(list((out / "trials").iterdir())) == 5


def test_two_worker_processes_share_the_study_without_running_a_trial_twice(tmp_path) -> None:
    path = write(tmp_path / "tune.yaml", BASE + SPACE + "  trials: 3\n")
    result = tune(path, tmp_path / "study", workers=2, executor="process")
    frame = result["trials"]
    assert sorted(frame["trial"]) == [0, 1, 2]
    assert set(frame["state"]) == {"complete"}
    assert frame["worker"].nunique() == 2
    assert len({Path(d).name for d in frame["run_dir"]}) == 3


PRUNE = (
    "tune:\n"
    "  space:\n"
    # At 1e-6 SGD does not move in this budget: a clearly bad region of the space.
    "    optimizer.lr: [0.3, 1.0e-6]\n"
    "  sampler: random\n"
    "  seed: 2\n"  # draws good, good, good, bad, good, good: the pruner has finished trials to compare with
    "  trials: 6\n"
)


def test_pruning_cuts_the_training_steps_of_a_study(tmp_path) -> None:
    base = BASE.replace("num_tasks: 2", "num_tasks: 4")
    plain = tune(write(tmp_path / "plain.yaml", base + PRUNE + "  pruner: none\n"), tmp_path / "plain",
                 executor="inline")["trials"]
    pruned = tune(write(tmp_path / "pruned.yaml", base + PRUNE + "  pruner: {name: median, params: "
                        "{n_startup_trials: 2}}\n"), tmp_path / "pruned", executor="inline")["trials"]
    assert list(plain["optimizer.lr"]) == list(pruned["optimizer.lr"])  # same seeded samples in both studies
    cut = pruned[pruned["state"] == "pruned"]
    assert len(cut) >= 1 and set(cut["optimizer.lr"]) == {1e-6}  # only the bad region is cut
    assert (cut["steps"] < plain["steps"].max()).all()  # stopped after their first task(s)
    assert pruned["steps"].sum() < plain["steps"].sum()
    assert pruned[pruned["state"] == "complete"]["value"].max() == plain["value"].max()  # the best survives


def test_final_seeds_run_the_best_setting_on_test_data(tune_file, tmp_path) -> None:
    result = tune(tune_file, tmp_path / "study", trials=2, executor="inline", final_seeds=2)
    final = result["final"]
    assert list(final["seed"]) == [0, 1] and set(final["status"]) == {"done"}
    for run in final["run"]:
        spec = yaml.safe_load((Path(run) / "spec.yaml").read_text())
        assert "validation_fraction" not in spec["benchmark"]["params"] or \
            spec["benchmark"]["params"]["validation_fraction"] is None
        assert spec["optimizer"]["lr"] == result["best"]["params"]["optimizer.lr"]


def test_cli_prints_trials_and_results_lists_them(tune_file, tmp_path) -> None:
    out = tmp_path / "study"
    result = runner.invoke(app, ["tune", str(tune_file), "--out", str(out), "--executor", "inline", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "trials: 3" in result.output and "best: trial" in result.output and "best.yaml" in result.output
    listed = runner.invoke(app, ["results", str(out)])
    assert listed.exit_code == 0 and "trials: 3" in listed.output and "complete" in listed.output


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("finished")
    path = write(root / "tune.yaml", BASE + SPACE + "  trials: 1\n")
    tune(path, root / "study", executor="inline")
    return path, root / "study"


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("  space: {optimizer.lr: {type: float, low: 0.5, high: 0.01}}\n", "tune.space.optimizer.lr"),
        ("  space: {optimizer.lr: [0.1]}\n  sampler: tpee\n", "tune.sampler"),
        ("  space: {optimizer.lr: [0.1]}\n  pruner: medain\n", "tune.pruner"),
        ("  space: {trainer.epochz: [1, 2]}\n", "tune.space.trainer.epochz"),
        ("  space: {optimizer.lr: []}\n", "tune.space.optimizer.lr"),
        ("  space: {optimizer.lr: [0.1]}\n  objective: {metric: validation.acc}\n", "tune.objective.metric"),
    ],
)
def test_bad_tune_file_is_one_line_exit_2_and_dir_untouched(finished_study, tmp_path, section, field) -> None:
    _, out = finished_study
    before = snapshot(out)
    bad = write(tmp_path / "bad.yaml", BASE + "tune:\n" + section)
    result = runner.invoke(app, ["tune", str(bad), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0], result.output
    assert snapshot(out) == before


def test_unreachable_storage_is_one_line_and_writes_nothing(tune_file, tmp_path) -> None:
    out = tmp_path / "study"
    result = runner.invoke(app, ["tune", str(tune_file), "--out", str(out), "--storage",
                                 "postgresql://nobody:secret@127.0.0.1:1/none"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --storage postgresql://nobody:***@127.0.0.1:1/none: cannot open")
    assert "secret" not in result.output and not out.exists()


def test_a_changed_search_is_refused_for_an_existing_study(finished_study, tmp_path) -> None:
    _, out = finished_study
    before = snapshot(out)
    changed = write(tmp_path / "changed.yaml", BASE + SPACE.replace("high: 0.5", "high: 0.9") + "  trials: 3\n")
    result = runner.invoke(app, ["tune", str(changed), "--out", str(out)])
    assert result.exit_code == 2 and "holds trials of another tune file" in result.output
    assert snapshot(out) == before


def test_held_out_tasks_protocol_searches_first_tasks_and_reports_the_rest(tmp_path) -> None:
    base = BASE.replace("num_tasks: 2", "num_tasks: 4")
    path = write(tmp_path / "t.yaml", base + "tune:\n  space: {optimizer.lr: [0.1, 0.2]}\n  sampler: grid\n"
                 "  search_tasks: 2\n")
    result = tune(path, tmp_path / "study", executor="inline", final_seeds=1)
    for run_dir in result["trials"]["run_dir"]:
        assert json.loads((Path(run_dir) / "metrics.json").read_text())["tasks"] == [1, 2]
    best = yaml.safe_load(result["best_path"].read_text())
    assert best["benchmark"]["params"]["first_task"] == 3
    final_run = Path(result["final"]["run"][0])
    metrics = json.loads((final_run / "metrics.json").read_text())
    assert metrics["tasks"] == [3, 4] and len(metrics["accuracy_matrix"][0]) == 2


def test_search_tasks_must_leave_tasks_to_evaluate(tmp_path) -> None:
    path = write(tmp_path / "t.yaml", BASE + "tune:\n  space: {optimizer.lr: [0.1]}\n  search_tasks: 2\n")
    result = runner.invoke(app, ["tune", str(path), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "tune.search_tasks" in result.output, result.output


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes"])
def test_every_sampler_runs_a_study(tmp_path, sampler: str) -> None:
    if sampler == "cmaes":
        pytest.importorskip("cmaes", reason="the cmaes package is not installed (pip install cmaes)")
    space = ("tune:\n  space:\n    optimizer.lr: " + ("[0.05, 0.2]\n" if sampler == "grid" else
             "{type: float, low: 0.01, high: 0.5, log: true}\n"))
    frame = tune(write(tmp_path / "t.yaml", BASE + space + f"  sampler: {sampler}\n  trials: 2\n"),
                 tmp_path / "study", executor="inline")["trials"]
    assert len(frame) == 2 and set(frame["state"]) == {"complete"}
    assert all(0.01 <= lr <= 0.5 for lr in frame["optimizer.lr"])
    if sampler == "grid":
        assert sorted(frame["optimizer.lr"]) == [0.05, 0.2]  # the grid, each point once


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_successive_halving_and_hyperband_prune_the_bad_region(tmp_path, pruner: str) -> None:
    base = BASE.replace("num_tasks: 2", "num_tasks: 4")
    frame = tune(write(tmp_path / "p.yaml", base + PRUNE + f"  pruner: {pruner}\n"), tmp_path / "study",
                 executor="inline")["trials"]
    cut = frame[frame["state"] == "pruned"]
    assert len(frame) == 6
    assert len(cut) >= 1 and set(cut["optimizer.lr"]) == {1e-6}  # only hopeless settings are cut
    assert frame[frame["state"] == "complete"]["value"].max() > 50


def test_a_ddp_study_is_refused_in_one_line_before_any_trial(tmp_path) -> None:
    spec = write(tmp_path / "tune.yaml", BASE.replace("device: cpu", "strategy: ddp, devices: 2, accelerator: cpu")
                 + SPACE + "  trials: 2\n")
    assert "strategy: ddp" in spec.read_text()
    result = runner.invoke(app, ["tune", str(spec), "--out", str(tmp_path / "study")])
    assert result.exit_code == 2
    assert "trainer.strategy: a sweep or study runs each point in one process" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "study").exists()
