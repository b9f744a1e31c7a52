"""Running sweeps: skip finished runs, resume interrupted ones, record failures, Ctrl-C, bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.callback import Callback
from clgym_core.cli import app
from clgym_core.runner import RunInterrupted, run_spec
from clgym_core.spec import parse_spec
from clgym_core.sweeps import sweep
from clgym_core.sweeps.plan import read_sweep_file
from tests.sweep_support import BASE, snapshot, write

runner = CliRunner()
CLGYM = [sys.executable, "-m", "clgym_core"]


def matrices(out: Path) -> dict[str, list]:
    return {p.parent.name: json.loads(p.read_text())["accuracy_matrix"] for p in sorted(out.glob("*/metrics.json"))}


@pytest.fixture
def seeds_file(tmp_path: Path) -> Path:
    return write(tmp_path / "seeds.yaml", BASE + "sweep:\n  seed: [0, 1]\n")


def test_inline_sweep_runs_every_point_as_a_run_directory(seeds_file, tmp_path) -> None:
    frame = sweep(seeds_file, tmp_path / "out", executor="inline")
    assert list(frame["name"]) == ["seed=0", "seed=1"]
    assert list(frame["status"]) == ["done", "done"]
    assert list(frame["seed"]) == [0, 1]
    assert (frame["average_accuracy"] > 0).all()
    assert (tmp_path / "out" / "seed=1" / "spec.yaml").is_file()
    assert (tmp_path / "out" / "sweep.yaml").read_text() == seeds_file.read_text()


def test_rerun_skips_finished_runs_and_overwrites_nothing(seeds_file, tmp_path) -> None:
    out = tmp_path / "out"
    sweep(seeds_file, out, executor="inline")
    before = snapshot(out)
    started = []
    plan = read_sweep_file(seeds_file)
    from clgym_core.sweeps.run import run_sweep

    frame = run_sweep(plan, out, executor="inline", on_result=lambda p, r: started.append(p.name))
    assert started == []  # nothing was run again
    assert snapshot(out) == before
    assert list(frame["status"]) == ["done", "done"]


class InterruptAfterTask(Callback):
    name = "interrupt_after_task"

    def on_task_end(self, trainer, task: int) -> None:
        if task == 1:
            raise KeyboardInterrupt


def test_interrupted_run_is_resumed_and_matches_an_uninterrupted_sweep(seeds_file, tmp_path) -> None:
    reference = tmp_path / "reference"
    sweep(seeds_file, reference, executor="inline")
    out = tmp_path / "out"
    point = read_sweep_file(seeds_file).points[1]
    with pytest.raises(RunInterrupted):
        run_spec(parse_spec(point.data), out_dir=out / point.name, progress=False, callbacks=[InterruptAfterTask()])
    assert (out / point.name / "checkpoint.pt").is_file() and not (out / point.name / "metrics.json").exists()
    frame = sweep(seeds_file, out, executor="inline")
    assert list(frame["status"]) == ["done", "done"]
    events = (out / point.name / "events.jsonl").read_text()
    assert '"resume"' in events or "resumed" in events  # continued, not restarted
    assert matrices(out) == matrices(reference)


def test_a_failing_run_is_recorded_and_does_not_stop_the_others(tmp_path) -> None:
    path = write(tmp_path / "f.yaml", BASE + "sweep:\n  optimizer.lr: [1.0e+30, 0.1]\n")
    out = tmp_path / "out"
    frame = sweep(path, out, executor="inline")
    assert list(frame["status"]) == ["failed", "done"]
    reason = frame["reason"][0]
    assert "NaN or infinite" in reason and "\n" not in reason
    assert (out / "lr=1e+30" / "failed.txt").read_text().strip() == reason
    # Not retried unless asked; retried on request (and fails again, deterministically).
    started = []
    from clgym_core.sweeps.run import run_sweep

    plan = read_sweep_file(path)
    run_sweep(plan, out, executor="inline", on_result=lambda p, r: started.append(p.name))
    assert started == []
    run_sweep(plan, out, executor="inline", retry_failed=True, on_result=lambda p, r: started.append(p.name))
    assert started == ["lr=1e+30"]


def test_process_executor_gives_the_inline_results(tmp_path) -> None:
    path = write(tmp_path / "s.yaml", BASE + "sweep:\n  seed: [0, 1]\n  optimizer.lr: [0.1]\n")
    sweep(path, tmp_path / "inline", executor="inline")
    frame = sweep(path, tmp_path / "process", executor="process", workers=2)
    assert list(frame["status"]) == ["done"] * 2
    seeds = {json.loads((p / "metrics.json").read_text())["seed"] for p in (tmp_path / "process").iterdir()
            if p.is_dir()}
    assert seeds == {0, 1}
    assert matrices(tmp_path / "process") == matrices(tmp_path / "inline")


def test_dry_run_lists_points_and_runs_nothing(seeds_file, tmp_path) -> None:
    result = runner.invoke(app, ["sweep", str(seeds_file), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and "seed=1" in result.output and "[new]" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("  trainer.epochz: [1, 2]\n", "sweep.trainer.epochz"),
        ("  seed: []\n", "sweep.seed"),
        ("  zip: {seed: [0, 1], optimizer.lr: [0.1]}\n", "sweep.zip"),
        ("  optimizer.lr: [-1, 0.1]\n", "sweep.optimizer.lr"),
    ],
)
def test_bad_sweep_file_is_one_line_exit_2_and_dir_untouched(seeds_file, tmp_path, section, field) -> None:
    out = tmp_path / "out"
    sweep(seeds_file, out, executor="inline")
    before = snapshot(out)
    bad = write(tmp_path / "bad.yaml", BASE + "sweep:\n" + section)
    result = runner.invoke(app, ["sweep", str(bad), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0], result.output
    assert snapshot(out) == before


def test_point_directory_holding_another_spec_is_refused(seeds_file, tmp_path) -> None:
    out = tmp_path / "out"
    sweep(seeds_file, out, executor="inline")
    before = snapshot(out)
    changed = write(tmp_path / "changed.yaml", BASE.replace("lr: 0.1", "lr: 0.2") + "sweep:\n  seed: [0, 1]\n")
    result = runner.invoke(app, ["sweep", str(changed), "--out", str(out)])
    assert result.exit_code == 2
    assert "optimizer.lr differs" in result.output
    assert snapshot(out) == before


def test_a_run_made_before_a_parameter_existed_counts_as_done_when_the_parameter_is_at_its_default(
        seeds_file, tmp_path) -> None:
    """Upgrading a plugin that adds a parameter (at its default) keeps a finished sweep finished."""
    import yaml

    from clgym_core.sweeps.run import run_sweep

    out = tmp_path / "out"
    sweep(seeds_file, out, executor="inline")
    spec_path = out / "seed=0" / "spec.yaml"
    older = yaml.safe_load(spec_path.read_text())
    del older["backbone"]["params"]["activation"]  # as the run's spec.yaml read before `activation` existed
    del older["trainer"]["num_nodes"]
    spec_path.write_text(yaml.safe_dump(older, sort_keys=False))
    before = snapshot(out)
    started = []
    frame = run_sweep(read_sweep_file(seeds_file), out, executor="inline", on_result=lambda p, r: started.append(p.name))
    assert started == [] and list(frame["status"]) == ["done", "done"]
    assert snapshot(out) == before
    older["backbone"]["params"]["activation"] = "tanh"  # not the default: another experiment, refused
    spec_path.write_text(yaml.safe_dump(older, sort_keys=False))
    result = runner.invoke(app, ["sweep", str(seeds_file), "--out", str(out)])
    assert result.exit_code == 2 and "backbone.params.activation differs" in result.output


def test_ctrl_c_exits_130_and_the_same_command_finishes_the_sweep(tmp_path) -> None:
    slow = BASE.replace("epochs_per_task: 2", "epochs_per_task: 150")
    path = write(tmp_path / "s.yaml", slow + "sweep:\n  seed: [0, 1]\n")
    out = tmp_path / "out"
    cmd = [*CLGYM, "sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (out / "seed=0" / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at a terminal does: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    assert not (out / "seed=1" / "metrics.json").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(matrices(out)) == ["seed=0", "seed=1"]


def test_python_api_names_are_the_functions() -> None:
    import clgym_core as cl
    import clgym_core.sweeps.run  # noqa: F401  (importing the modules must not shadow the functions)
    import clgym_core.sweeps.tuning  # noqa: F401

    assert cl.sweep is clgym_core.sweeps.sweep and cl.tune is clgym_core.sweeps.tune
    assert callable(cl.sweep) and callable(cl.tune)
