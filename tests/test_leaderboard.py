"""The leaderboard: a small board planned, tuned, collected and built into a site in the test; `add`
and its spec check; bad inputs in one line; and the committed board kept current and small."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.errors import ClgymError
from clgym_core.leaderboard.board import plan, read_board
from clgym_core.leaderboard.collect import collect
from clgym_core.leaderboard.site import build_site
from clgym_core.leaderboard.summary import write_summary
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_core.sweeps import tune
from tests.sweep_support import snapshot

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent

BOARD = """\
title: test board
trials: 2
seeds: 2
tune: {sampler: random}
benchmarks:
  toy:
    title: Toy 2D
    scenario: labels flip
    spec:
      benchmark: {name: toy_2d_classification, params: {num_tasks: 2, cluster_size: 30, test_cluster_size: 30}}
      backbone: {name: mlp, params: {hidden_sizes: [8]}}
      optimizer: {name: sgd, lr: 0.1}
      trainer: {epochs_per_task: 2, batch_size: 32, device: cpu, num_threads: 1, checkpoint: false, progress: false}
    space: {optimizer.lr: {type: float, low: 0.01, high: 0.5, log: true}}
    published: {finetune: {value: 50.0, citation: "Nobody et al. 2099, Table 9"}}
  wave:
    title: Toy 1D
    scenario: regression
    objective: {metric: validation.average_loss, direction: minimize}
    spec:
      benchmark: {name: toy_1d_regression, params: {num_tasks: 2}}
      backbone: {name: mlp, params: {hidden_sizes: [8]}}
      optimizer: {name: adam, lr: 0.01}
      trainer: {epochs_per_task: 2, batch_size: 32, device: cpu, num_threads: 1, checkpoint: false, progress: false}
    space: {optimizer.lr: {type: float, low: 0.001, high: 0.05, log: true}}
  far:
    title: Elsewhere
    scenario: not run
    run: false
    spec:
      benchmark: {name: toy_2d_classification, params: {num_tasks: 2}}
      backbone: {name: mlp, params: {hidden_sizes: [8]}}
      trainer: {epochs_per_task: 1, device: cpu}
    space: {optimizer.lr: [0.1]}
algorithms:
  finetune: {}
  er_ring: {}
"""


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """A board of 4 runnable entries, each tuned (2 trials, 2 final seeds) and collected."""
    root = tmp_path_factory.mktemp("board")
    (root / "board.yaml").write_text(BOARD, encoding="utf-8")
    _, files = plan(root)
    studies = root.parent / f"{root.name}-studies"
    for path in files:
        if path.parent.parent.name == "tune":
            tune(path, studies / path.parent.name / path.stem, executor="inline", final_seeds=2)
    collect(root, studies, presets=False)
    write_summary(root, wall_seconds=12.0, jobs=2)
    return root


@pytest.fixture(scope="module")
def site(board, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site([board], out)
    return out


def test_plan_writes_a_tune_file_per_entry_and_skips_with_the_methods_reason(tmp_path) -> None:
    (tmp_path / "board.yaml").write_text(BOARD, encoding="utf-8")
    found, files = plan(tmp_path)
    names = {e.name: e for e in found}
    assert names["wave/er_ring"].skipped and "classification" in names["wave/er_ring"].skipped
    assert sorted(str(p.relative_to(tmp_path)) for p in files) == [
        "specs-only/far/er_ring.yaml", "specs-only/far/finetune.yaml", "tune/toy/er_ring.yaml",
        "tune/toy/finetune.yaml", "tune/wave/finetune.yaml"]
    data = yaml.safe_load((tmp_path / "tune/wave/finetune.yaml").read_text())
    assert data["tune"]["objective"]["direction"] == "minimize" and data["tune"]["trials"] == 2
    assert data["algorithm"]["name"] == "finetune" and data["benchmark"]["name"] == "toy_1d_regression"
    # An entry that leaves the board loses its tune file.
    (tmp_path / "board.yaml").write_text(BOARD.replace("  er_ring: {}\n", ""), encoding="utf-8")
    _, files = plan(tmp_path)
    assert not (tmp_path / "tune/toy/er_ring.yaml").exists() and len(files) == 3


def test_per_benchmark_changes_params_and_space_on_that_benchmark_only(tmp_path) -> None:
    text = BOARD.replace("  er_ring: {}\n", """  er_ring:
    space: {algorithm.params.replay_batch_size: [10, 20]}
    per_benchmark:
      toy:
        params: {memory_per_class: 7}
        space: {optimizer.lr: {type: float, low: 0.001, high: 0.002}, algorithm.params.replay_batch_size: [5]}
""")
    (tmp_path / "board.yaml").write_text(text, encoding="utf-8")
    plan(tmp_path)
    toy = yaml.safe_load((tmp_path / "tune/toy/er_ring.yaml").read_text())
    far = yaml.safe_load((tmp_path / "specs-only/far/er_ring.yaml").read_text())
    assert toy["algorithm"]["params"] == {"memory_per_class": 7}
    assert toy["tune"]["space"] == {"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.002},
                                    "algorithm.params.replay_batch_size": [5]}
    assert far["algorithm"]["params"] == {}
    assert far["tune"]["space"] == {"optimizer.lr": [0.1], "algorithm.params.replay_batch_size": [10, 20]}
    (tmp_path / "board.yaml").write_text(text.replace("      toy:\n", "      tyo:\n"), encoding="utf-8")
    with pytest.raises(ClgymError, match="algorithms.er_ring.per_benchmark: 'tyo' is not a benchmark"):
        read_board(tmp_path)


def test_summary_lists_a_study_without_setting_once_and_counts_in_words(tmp_path) -> None:
    (tmp_path / "board.yaml").write_text(BOARD, encoding="utf-8")
    plan(tmp_path)
    text = write_summary(tmp_path, failed=["toy/finetune: left out, no trial of its study finished (NaN)"]).read_text()
    pending = text.split("## Not generated yet", 1)[1].split("##", 1)[0]
    assert "`toy/finetune`" not in pending and "`toy/er_ring`" in pending
    assert "without results on this board: 2 entries" in pending
    assert "## Studies that found no setting" in text and "`toy/finetune: left out" in text
    one = write_summary(tmp_path, failed=["toy/finetune: x", "toy/er_ring: x"]).read_text()
    assert "without results on this board: 1 entry." in one


def test_collect_keeps_the_study_and_only_spec_and_metrics_of_each_seed(board) -> None:
    entry = board / "entries/toy/finetune"
    record = json.loads((entry / "entry.json").read_text())
    study = record["study"]
    assert record["preset"] == "toy/finetune"
    assert "validation split" in study["protocol"] and "never reads test data" in study["protocol"]
    assert len(study["trials"]) == 2 and study["best"]["trial"] in {t["trial"] for t in study["trials"]}
    lr = study["best"]["params"]["optimizer.lr"]
    assert 0.01 <= lr <= 0.5
    assert best_value(study) == study["best"]["value"]
    assert sorted(p.name for p in (entry / "runs").iterdir()) == ["seed-0", "seed-1"]
    for run in (entry / "runs").iterdir():
        assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "spec.yaml"]
        spec = yaml.safe_load((run / "spec.yaml").read_text())
        assert spec["optimizer"]["lr"] == pytest.approx(lr)  # the final runs ran the chosen setting
        assert spec["benchmark"]["params"].get("validation_fraction") is None  # and on the full training data
    assert not (board / "entries/wave/er_ring").exists()
    readme = (board / "README.md").read_text()
    assert "wave/er_ring" in readme and "Left out" in readme and "0.2 min" in readme


def test_collect_drops_entries_that_left_the_board(board, tmp_path) -> None:
    copy = tmp_path / board.name  # same folder name: the tune files name their path from the board's parent
    shutil.copytree(board, copy)
    (copy / "board.yaml").write_text(BOARD.replace("  er_ring: {}\n", ""), encoding="utf-8")
    plan(copy)
    lines = collect(copy, board.parent / f"{board.name}-studies", presets=False)
    assert not (copy / "entries/toy/er_ring").exists()
    assert sorted(lines) == ["toy/finetune: 2 run(s)", "wave/finetune: 2 run(s)"]


def best_value(study: dict) -> float:
    return max(t["value"] for t in study["trials"] if t["state"] == "complete")


def _mean_std(board: Path, entry: str, key: str) -> str:
    values = [json.loads(p.read_text())[key] for p in sorted((board / "entries" / entry / "runs").glob("*/metrics.json"))]
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def test_index_has_a_table_per_benchmark_with_mean_and_std_over_seeds(board, site) -> None:
    index = (site / "index.html").read_text()
    assert "<script src" not in index and "<link" not in index  # no server, no CDN: everything inline
    tables = re.findall(r"<h2>(.*?)</h2>\s*(?:<p[^>]*>.*?</p>\s*)*<table", index)
    assert tables == ["Toy 2D (labels flip)", "Toy 1D (regression)"]  # in the order of board.yaml
    rows = re.findall(r'<tr class="entry" data-entry="([^"]+)"', index)
    assert sorted(rows) == ["toy/er_ring", "toy/finetune", "wave/finetune"]
    assert _mean_std(board, "toy/finetune", "average_accuracy") in index
    assert "Nobody et al. 2099, Table 9" in index  # the published number stands beside ours
    assert ">avg loss<" in index  # regression tables show losses


def test_entry_page_has_spec_command_versions_figures_and_tuning(board, site) -> None:
    page = (site / "entries/toy--finetune.html").read_text()
    assert "clgym run --preset toy/finetune --set seed=0" in page and "--set seed=1" in page
    spec = parse_spec(yaml.safe_load((site / "entries/toy--finetune.spec.yaml").read_text()))
    assert spec.algorithm.name == "finetune"
    assert "clgym-core" in page and "torch" in page  # versions from the runs' metrics
    heatmap = re.search(r'<svg[^>]*aria-label="accuracy matrix".*?</svg>', page).group(0)
    assert heatmap.count("<rect") == 3 * 2  # untrained + 2 tasks, x 2 tasks
    assert 'aria-label="per-task curves"' in page and page.count("<polyline") >= 3  # 2 curves + history
    assert page.count('<tr class="trial">') == 2 and "validation split" in page


def test_build_refuses_bad_input_in_one_line(tmp_path, board) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["leaderboard", "build", str(empty), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert str(empty) in result.output and "no runs" in result.output
    broken = tmp_path / "broken"
    (broken / "run").mkdir(parents=True)
    (broken / "run" / "metrics.json").write_text("{not json")
    result = runner.invoke(app, ["leaderboard", "build", str(broken), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "broken/run/metrics.json" in result.output
    assert not (tmp_path / "s").exists()


def test_build_takes_loose_run_directories_too(tmp_path, board) -> None:
    runs = tmp_path / "runs"
    spec = yaml.safe_load((board / "entries/toy/finetune/runs/seed-0/spec.yaml").read_text())
    for seed in (3, 4):
        run_spec(parse_spec({**spec, "seed": seed, "benchmark": {**spec["benchmark"], "params": {
            **spec["benchmark"]["params"], "seed": seed}}}), out_dir=runs / f"s{seed}", progress=False)
    result = runner.invoke(app, ["leaderboard", "build", str(runs), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    index = (tmp_path / "site/index.html").read_text()
    assert len(re.findall(r'<tr class="entry"', index)) == 1 and ">3,4<" in index


def _rerun(board: Path, tmp_path: Path, seed: int, **changes) -> Path:
    spec = yaml.safe_load((board / "entries/toy/finetune/runs/seed-0/spec.yaml").read_text())
    spec["seed"] = seed
    spec["benchmark"]["params"]["seed"] = seed
    for path, value in changes.items():
        section, key = path.split("__")
        spec[section][key] = value
    out = tmp_path / f"run-{seed}-{len(changes)}"
    run_spec(parse_spec(spec), out_dir=out, progress=False)
    return out


def test_add_puts_a_run_of_another_seed_on_its_entry(board, tmp_path) -> None:
    run = _rerun(board, tmp_path, 7)
    result = runner.invoke(app, ["leaderboard", "add", str(run), "--board", str(board)])
    assert result.exit_code == 0, result.output
    kept = board / "entries/toy/finetune/runs/seed-7"
    assert sorted(p.name for p in kept.iterdir()) == ["metrics.json", "spec.yaml"]
    assert (kept / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    again = runner.invoke(app, ["leaderboard", "add", str(run), "--board", str(board)])
    assert again.exit_code == 0 and "already on the board" in again.output
    assert len(list((board / "entries/toy/finetune/runs").iterdir())) == 3


def test_add_refuses_a_run_whose_spec_differs_naming_the_field(board, tmp_path) -> None:
    good = _rerun(board, tmp_path, 8)
    bad = _rerun(board, tmp_path, 9, trainer__epochs_per_task=1)
    before = snapshot(board)
    result = runner.invoke(app, ["leaderboard", "add", str(good), str(bad), "--board", str(board)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "trainer.epochs_per_task differs from entry toy/finetune" in result.output
    assert snapshot(board) == before  # checked before anything is copied
    wrong = runner.invoke(app, ["leaderboard", "add", str(good), "--board", str(board), "--entry", "toy/er_ring"])
    assert wrong.exit_code == 2 and "algorithm.name differs from entry toy/er_ring" in wrong.output
    missing = runner.invoke(app, ["leaderboard", "add", str(tmp_path), "--board", str(board)])
    assert missing.exit_code == 2 and "not a finished run" in missing.output


def test_committed_tune_files_are_what_board_yaml_plans(tmp_path) -> None:
    committed, fresh = REPO / "leaderboard", tmp_path / "leaderboard"
    fresh.mkdir()
    (fresh / "board.yaml").write_text((committed / "board.yaml").read_text(), encoding="utf-8")
    _, files = plan(fresh)
    stale = [str(p.relative_to(fresh)) for p in files
             if not (committed / p.relative_to(fresh)).is_file()
             or (committed / p.relative_to(fresh)).read_text() != p.read_text()]
    assert not stale, f"run `clgym leaderboard plan leaderboard`: these tune files are out of date: {stale[:5]}"


def test_committed_board_is_small_and_holds_no_checkpoints() -> None:
    files = [p for p in (REPO / "leaderboard").rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pt", ".db", ".png")]
    assert sum(p.stat().st_size for p in files) < 8 * 2**20
    board = read_board(REPO / "leaderboard")
    for entry_json in (REPO / "leaderboard/entries").glob("*/*/entry.json"):
        runs = list((entry_json.parent / "runs").glob("*/metrics.json"))
        assert len(runs) >= board.seeds, f"{entry_json.parent}: fewer runs than the board's {board.seeds} seeds"


def test_leaderboard_errors_are_clgym_errors(tmp_path) -> None:
    with pytest.raises(ClgymError, match="no such file"):
        build_site([tmp_path / "nothing"], tmp_path / "out")
    (tmp_path / "board.yaml").write_text("trials: 0\nbenchmarks: {}\nalgorithms: {}\n")
    with pytest.raises(ClgymError, match="trials"):
        read_board(tmp_path)


def test_a_board_row_is_one_command_away(tmp_path) -> None:
    """`clgym run --preset ENTRY --set seed=N` gives the accuracy matrix the board holds for that seed."""
    entries = sorted((REPO / "leaderboard/entries/toy_2d").glob("*/runs/seed-1/metrics.json"))
    if not entries:
        pytest.skip("no toy_2d entry on the board yet (make leaderboard)")
    board_run = entries[0]
    name = f"toy_2d/{board_run.parent.parent.parent.name}"
    out = tmp_path / "again"
    result = runner.invoke(app, ["run", "--preset", name, "--set", "seed=1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    ours, theirs = (json.loads(p.read_text()) for p in (out / "metrics.json", board_run))
    assert ours["accuracy_matrix"] == theirs["accuracy_matrix"]
    added = runner.invoke(app, ["leaderboard", "add", str(out), "--board", str(tmp_path / "nowhere")])
    assert added.exit_code == 2 and "holds no entries" in added.output


def test_a_parameter_added_since_the_board_ran_is_compared_at_its_default():
    """An entry's spec.yaml from before a component gained a parameter still matches a run that has it at its default."""
    from clgym_core.build import resolve_spec
    from clgym_core.leaderboard.add import spec_difference
    from clgym_core.spec import parse_spec

    raw = {"benchmark": {"name": "toy_2d_classification"}, "backbone": {"name": "mlp"},
           "algorithm": {"name": "finetune"}, "seed": 3}
    run = resolve_spec(parse_spec(raw, "run")).model_dump(mode="json", exclude_none=True)
    older = json.loads(json.dumps(run))
    del older["backbone"]["params"]["activation"]  # as if the board ran before `activation` existed
    older["seed"] = 0
    assert spec_difference(run, older) is None
    changed = json.loads(json.dumps(run))
    changed["backbone"]["params"]["activation"] = "tanh"  # not the default: a different experiment
    assert spec_difference(changed, older) == "backbone.params.activation"
