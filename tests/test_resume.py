"""Kill, interrupt and resume: a resumed run ends with exactly the numbers of an uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clgym_core import rundir, runner
from clgym_core.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, load_checkpoint
from clgym_core.cli import app
from clgym_core.runner import resume_run, run_spec
from clgym_core.spec import load_spec
from clgym_core.testing import isolated_registry
from tests.file_module import load_file_module


def _support():
    return load_file_module("clgym_tests_resume_support", Path(__file__).with_name("resume_support.py"))


support = _support()
SUPPORT_FILE = Path(__file__).with_name("resume_support.py")


@pytest.fixture(scope="module")
def registry():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "write_plots", lambda *args: None)  # matplotlib is not what these tests check
        with isolated_registry({"resume_test": support.plugin()}) as reg:
            yield reg


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(support.SPEC)
    return path


@pytest.fixture(scope="module")
def reference(registry, spec_file, tmp_path_factory):
    """An uninterrupted run of the spec (once for the module): its run directory."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_spec(load_spec(spec_file), out_dir=run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def crashed_template(registry, spec_file, tmp_path_factory):
    """A run that crashed when task 2 started (checkpoint after task 1); tests work on copies."""
    run_dir = tmp_path_factory.mktemp("crashed") / "run"
    with pytest.MonkeyPatch.context() as patch:
        crash_at_task(patch, 2)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_spec(load_spec(spec_file), out_dir=run_dir, progress=False)
    return run_dir


@pytest.fixture
def crashed(crashed_template, tmp_path):
    return Path(shutil.copytree(crashed_template, tmp_path / "crashed"))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def crash_at_task(monkeypatch, task: int) -> None:
    """Make the next run raise when it starts ``task`` (a crash between two checkpoints)."""
    original = support.AnchoredL2.prepare_optimizer

    def crashing(self, t):
        if t == task:
            raise RuntimeError("simulated crash")
        return original(self, t)

    monkeypatch.setattr(support.AnchoredL2, "prepare_optimizer", crashing)


def test_resume_after_crash_matches_uninterrupted_run(registry, spec_file, reference, tmp_path, monkeypatch):
    run_dir = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        crash_at_task(patch, 3)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_spec(load_spec(spec_file), out_dir=run_dir, progress=False)
    assert not (run_dir / "metrics.json").exists()
    state, _ = load_checkpoint(run_dir)
    assert state["completed_tasks"] == 2
    # The algorithm's state went in: the anchor is the flat weight vector after task 2.
    assert state["algorithm"]["tasks_anchored"] == 2
    flat = torch.nn.utils.parameters_to_vector([v for k, v in state["backbone"].items()])
    assert torch.equal(state["algorithm"]["anchor"], flat)

    result = resume_run(run_dir, progress=False)
    assert result is not None and result.trainer.resumed_from == 2
    assert support.comparable(metrics(run_dir)) == support.comparable(metrics(reference))
    assert (run_dir / "accuracy_matrix.csv").read_text() == (reference / "accuracy_matrix.csv").read_text()
    # Logs continue where the checkpoint was taken: one resume marker, every epoch logged once.
    kinds = [e["event"] for e in events(run_dir)]
    assert kinds.count("resume") == 1 and kinds.count("start") == 1
    epochs = [(e["task"], e["epoch"]) for e in events(run_dir) if e["event"] == "epoch"]
    assert epochs == [(t, e) for t in (1, 2, 3) for e in (1, 2)]
    def strip(rows: list[str]) -> list[str]:  # timings aside
        return [r.rsplit(",", 1)[0] for r in rows if not r.startswith("time/")]

    assert strip((run_dir / "scalars.csv").read_text().splitlines()) == strip(
        (reference / "scalars.csv").read_text().splitlines()
    )


def test_resume_without_restoring_algorithm_state_would_differ(reference, crashed, monkeypatch):
    """The equality above is a real check: dropping the algorithm's anchor on resume changes the numbers."""
    monkeypatch.setattr(support.AnchoredL2, "load_state_dict", lambda self, state: None)
    resume_run(crashed, progress=False)
    assert metrics(crashed)["loss_matrix"] != metrics(reference)["loss_matrix"]


def _child(args: list[str], pause: str | None, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = dict(os.environ)
    if pause is not None:
        env[support.PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, str(SUPPORT_FILE), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True)


def _wait_for(marker: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"child exited early with {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("child never reached the pause point")
        time.sleep(0.02)


def test_sigkill_mid_task_then_resume_gives_identical_metrics(registry, spec_file, reference, tmp_path):
    run_dir, marker = tmp_path / "killed", tmp_path / "paused"
    child = _child(["run", str(spec_file), "--out", str(run_dir), "--no-progress"], f"2:3:{marker}")
    _wait_for(marker, child)  # in the middle of task 2 (step 3 of its first epoch)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    state, _ = load_checkpoint(run_dir)
    assert state["completed_tasks"] == 1 and not (run_dir / "metrics.json").exists()

    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert support.comparable(metrics(run_dir)) == support.comparable(metrics(reference))
    assert (run_dir / "accuracy_matrix.csv").read_text() == (reference / "accuracy_matrix.csv").read_text()


def test_ctrl_c_keeps_finished_tasks_prints_resume_command_and_exits_130(registry, spec_file, reference, tmp_path):
    run_dir, marker = tmp_path / "interrupted", tmp_path / "paused"
    child = _child(["run", str(spec_file), "--out", str(run_dir), "--no-progress"], f"3:1:{marker}")
    _wait_for(marker, child)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert f"interrupted; resume with: clgym run --resume {run_dir}" in stderr
    assert "Traceback" not in stderr
    state, _ = load_checkpoint(run_dir)
    assert state["completed_tasks"] == 2
    assert events(run_dir)[-1]["event"] == "exception" and events(run_dir)[-1]["type"] == "KeyboardInterrupt"

    resume_run(run_dir, progress=False)
    assert support.comparable(metrics(run_dir)) == support.comparable(metrics(reference))


# ---- clear errors -----------------------------------------------------------------------------------


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_finished_run_resumed_says_so_without_training(registry, reference, monkeypatch):
    monkeypatch.setattr(runner.ContinualTrainer, "fit", lambda self: pytest.fail("must not train"))
    result = invoke(["run", "--resume", str(reference)])
    assert result.exit_code == 0
    assert "already finished" in result.stdout


def test_resume_refuses_spec_set_and_out(registry, reference, spec_file):
    one_line_error(invoke(["run", str(spec_file), "--resume", str(reference)]), "--resume takes no SPEC")
    one_line_error(invoke(["run", "--resume", str(reference), "--set", "seed=1"]), "--resume takes no SPEC")
    one_line_error(invoke(["run", "--resume", str(reference), "--preset", "toy_2d/finetune"]), "--resume takes no SPEC, --preset")


def test_resume_of_something_that_is_not_a_run(registry, tmp_path):
    one_line_error(invoke(["run", "--resume", str(tmp_path / "missing")]), "no such run directory")
    (tmp_path / "folder").mkdir()
    one_line_error(invoke(["run", "--resume", str(tmp_path / "folder")]), "not a clgym run directory")


def test_resume_with_corrupt_checkpoint(crashed):
    run_dir = crashed
    (run_dir / CHECKPOINT_NAME).write_bytes(b"PK\x03\x04 this is not a checkpoint")
    (run_dir / PREVIOUS_NAME).unlink(missing_ok=True)
    one_line_error(invoke(["run", "--resume", str(run_dir)]), str(run_dir / CHECKPOINT_NAME), "corrupt")


def test_resume_without_checkpoint(registry, spec_file, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.yaml").write_text(support.SPEC)
    one_line_error(invoke(["run", "--resume", str(run_dir)]), "no checkpoint.pt")


def test_resume_refuses_an_edited_spec(crashed):
    run_dir = crashed
    spec = (run_dir / "spec.yaml").read_text().replace("strength: 0.5", "strength: 5.0")
    (run_dir / "spec.yaml").write_text(spec)
    one_line_error(invoke(["run", "--resume", str(run_dir)]), "algorithm.params.strength differs")
