"""Hostile input: specs that bomb or nest, paths that climb out, symlinks, concurrent claims, bad checkpoints.

Every case ends in one line naming the field or file, exit code 2, nothing written outside the
run directory and nothing already written lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from clgym_core import rundir
from clgym_core.algorithm import Algorithm
from clgym_core.cli import app
from clgym_core.errors import DataError, RunDirError
from clgym_core.rundir import RunDirectory
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin

runner = CliRunner()


class Plain(Algorithm):
    """Plain sequential training."""

    name = "plain"


class FailingData(SyntheticBlobs):
    """Blobs whose files are 'missing' while FailingData.broken is set."""

    name = "failing_data"
    broken = True

    def prepare_datasets(self) -> None:
        if type(self).broken:
            raise DataError("failing_data: files not found")
        super().prepare_datasets()


SPEC = {
    "benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 2, "train_examples": 32, "test_examples": 16}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
    "algorithm": "plain",
    "trainer": {"batch_size": 16, "device": "cpu", "progress": False},
}


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(rundir, "write_plots", lambda *args: None)
    with isolated_registry({"hostile": make_plugin(benchmarks=[SyntheticBlobs, FailingData], algorithms=[Plain])}):
        yield


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---- specs that expand, nest or are not text -----------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
benchmark: {name: synthetic_blobs, params: {tags: *i}}
"""


def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    result = runner.invoke(app, ["validate", str(spec)])
    assert time.perf_counter() - started < 10
    one_line_error(result, str(spec), "expands to more than")
    out = tmp_path / "out"
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(out)]), "expands")
    assert not out.exists()


def test_recursive_yaml_alias_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "loop.yaml"
    spec.write_text("benchmark: &x {name: synthetic_blobs, params: {me: *x}}\n")
    one_line_error(runner.invoke(app, ["validate", str(spec)]), str(spec))


@pytest.mark.parametrize("suffix, depth", [(".yaml", 500), (".json", 1000)])
def test_deeply_nested_spec_is_one_line(tmp_path: Path, suffix: str, depth: int) -> None:
    spec = tmp_path / f"deep{suffix}"
    spec.write_text('{"benchmark": ' + "[" * depth + "]" * depth + "}")
    one_line_error(runner.invoke(app, ["validate", str(spec)]), str(spec), "nested too deeply")


def test_spec_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("benchmark: synthetic_blobs\nname: caf\xe9\n".encode("latin-1"))
    one_line_error(runner.invoke(app, ["validate", str(spec)]), str(spec), "UTF-8")


@pytest.mark.parametrize("override, field", [
    ("seed=1180591620717411303424", "seed"),
    ("seed=-1", "seed"),
    ("backbone.params.hidden_sizes=[-1]", "backbone.params.hidden_sizes"),
    ("trainer.num_threads=1099511627776", "trainer.num_threads"),
    ("optimizer.betas=[1.5,0.9]", "optimizer"),
    ("optimizer.nesterov=true", "optimizer"),
    ("optimizer.lr=.nan", "optimizer.lr"),
])
def test_values_torch_or_the_machine_would_reject_fail_validation(tmp_path: Path, override: str, field: str) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    one_line_error(runner.invoke(app, ["validate", str(spec), "--set", override]), field)


# ---- paths a spec names --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"filename": "../victim/metrics.json"},
    {"filename": "/tmp/clgym-hostile-absolute.csv"},
    {"dir": "../victim"},
    {"dir": "/tmp"},
    {"filename": "spec.yaml"},
    {"filename": "metrics.json"},
])
def test_logger_paths_never_leave_or_clobber_the_run_directory(tmp_path: Path, params: dict) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "metrics.json").write_text('{"finished": true}')
    spec = write_spec(tmp_path / "spec.yaml", {**SPEC, "callbacks": [{"name": "csv_logger", "params": params}]})
    result = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    one_line_error(result, "callbacks: csv_logger")
    assert (victim / "metrics.json").read_text() == '{"finished": true}'
    assert sorted(os.listdir(victim)) == ["metrics.json"]
    assert not Path("/tmp/clgym-hostile-absolute.csv").exists()


def test_symlinked_log_directory_leading_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "logs").symlink_to(outside)
    spec = write_spec(tmp_path / "spec.yaml", {**SPEC, "callbacks": [{"name": "csv_logger", "params": {"dir": "logs"}}]})
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]))
    assert os.listdir(outside) == []


def test_resume_refuses_a_symlink_in_the_run_directory(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]).exit_code == 0
    (run / "metrics.json").unlink()  # as if it had been interrupted
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").symlink_to(target)
    one_line_error(runner.invoke(app, ["run", "--resume", str(run)]), "events.jsonl", "symbolic link")
    assert target.read_text() == "keep me"


def test_out_into_a_directory_of_someone_elses_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(out)]), "not a clgym run")
    assert sorted(os.listdir(out)) == ["holiday.jpg"]


def test_out_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(blocker / "run")]), "--out")


def test_errors_name_the_spec_file_and_no_out_when_none_was_given(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", {**SPEC, "backbone": {"name": "mlp", "params": {"widths": [3]}}})
    line = one_line_error(runner.invoke(app, ["run", str(spec)]))
    assert line.startswith(f"error: {spec}: backbone.params.widths") and "--out" not in line


# ---- one run per directory -----------------------------------------------------------------------------


def test_second_claim_on_a_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from clgym_core.rundir import RunDirectory\n"
         f"d = RunDirectory.claim_new(Path({str(run)!r}))\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"in use by another clgym process \\(pid {holder.pid}\\)"):
            RunDirectory.claim_new(run)
        (run / "spec.yaml").write_text("benchmark: x\n")
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
            RunDirectory.claim_existing(run)
    finally:
        holder.kill()
        holder.wait()
    RunDirectory.claim_existing(run).release()  # the lock went with the process


def test_claims_in_one_process_exclude_each_other_too(tmp_path: Path) -> None:
    with RunDirectory.claim_new(tmp_path / "run"):
        with pytest.raises(RunDirError, match="in use"):
            RunDirectory.claim_new(tmp_path / "run")


# ---- leftovers -----------------------------------------------------------------------------------------


def test_run_that_failed_on_its_data_does_not_block_its_out(tmp_path: Path) -> None:
    data = {**SPEC, "benchmark": {**SPEC["benchmark"], "name": "failing_data"}}
    spec = write_spec(tmp_path / "spec.yaml", data)
    out = tmp_path / "run"
    FailingData.broken = True
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"]), "files not found")
    FailingData.broken = False
    try:
        result = runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"])
    finally:
        FailingData.broken = True
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["num_tasks"] == 2
    # A finished run is never replaced.
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(out)]), "already holds a run")


def test_quickstart_refuses_an_out_that_holds_a_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"]).exit_code == 0
    one_line_error(runner.invoke(app, ["run", "--out", str(out)]), "holds a run")
    assert not any((out / name).exists() for name in ("toy2d_agem", "toy2d_finetune"))


# ---- checkpoints ---------------------------------------------------------------------------------------


def _finished_then_unfinished(tmp_path: Path) -> Path:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]).exit_code == 0
    (run / "metrics.json").unlink()
    return run


def test_unsafe_checkpoint_is_refused_in_our_own_words(tmp_path: Path) -> None:
    run = _finished_then_unfinished(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"format": "clgym-checkpoint", "format_version": 1, "x": Evil()}, run / "checkpoint.pt")
    (run / "checkpoint.prev.pt").unlink()
    line = one_line_error(runner.invoke(app, ["run", "--resume", str(run)]), "checkpoint.pt", "could run code")
    assert "weights_only" not in line


def test_checkpoint_with_wrong_fields_is_one_line(tmp_path: Path) -> None:
    run = _finished_then_unfinished(tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["trainer"]["global_step"] = "many"
    torch.save(state, run / "checkpoint.pt")
    one_line_error(runner.invoke(app, ["run", "--resume", str(run)]), "malformed")


def test_results_with_a_seed_that_is_not_an_integer(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]).exit_code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["seed"] = "zero"
    (run / "metrics.json").write_text(json.dumps(metrics))
    one_line_error(runner.invoke(app, ["results", str(run)]), "metrics.json", "seed")


# ---- Ctrl-C --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.2, 1.0])
def test_ctrl_c_while_importing_exits_130_without_a_traceback(delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "clgym_core", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # and once more, impatiently
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("interrupted")


def test_ctrl_c_inside_a_command_says_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer turns a KeyboardInterrupt inside a command into a silent exit 130
    from clgym_core.registry import Registry

    def pressed(self, kind):  # noqa: ANN001
        raise KeyboardInterrupt

    monkeypatch.setattr(Registry, "components", pressed)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 130
    assert result.output.strip() == "interrupted"


@pytest.mark.parametrize("then", ["returns", "fails"])
def test_ctrl_c_a_library_swallowed_inside_a_command(monkeypatch: pytest.MonkeyPatch, then: str) -> None:
    # matplotlib, pandas, optuna are imported lazily inside commands; such an import may swallow the press
    from clgym_core import interrupts
    from clgym_core.registry import Registry

    def swallowing(self, kind):  # noqa: ANN001
        try:
            interrupts.note_press(signal.SIGINT, None)  # the console script's handler, as a press runs it
        except KeyboardInterrupt:
            pass
        if then == "fails":
            raise ValueError("half-imported module")
        return {}

    monkeypatch.setattr(Registry, "components", swallowing)
    result = runner.invoke(app, ["list"])
    if then == "returns":  # the command finished its work: its result stands
        assert result.exit_code == 0 and "interrupted" not in result.output
    else:  # the library's error is the press's doing
        assert result.exit_code == 130
        assert result.output.strip() == "interrupted"


def test_ignoring_ctrl_c_survives_a_press_pending_at_that_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    from clgym_core import interrupts

    calls = []
    real = signal.signal

    def pending_once(signum, handler):  # noqa: ANN001
        calls.append(handler)
        if len(calls) == 1:  # signal.signal runs a pending handler before it swaps
            raise KeyboardInterrupt
        return real(signum, handler)

    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(signal, "signal", pending_once)
    try:
        interrupts.ignore_sigint()
        assert calls == [signal.SIG_IGN, signal.SIG_IGN]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        real(signal.SIGINT, previous)


def test_ctrl_c_during_the_interpreters_teardown_changes_nothing() -> None:
    """A press that lands after the command is over, while Python tears down, changes nothing.

    The atexit hook below stands for that press: it arrives after ``main`` has returned.
    """
    code = ("import atexit, os, signal, sys\n"
            "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
            "sys.argv = ['clgym', '--version']\n"
            "from clgym_core.entry import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("clgym-core ") and "Traceback" not in proc.stderr


def _entry_with(cli: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m`` of ``clgym_core.entry.main`` with its CLI import replaced by ``cli`` (a function body).

    Through ``-m`` as ``python -m clgym_core``: only that way does CPython consult the mark that
    an exec left behind (a script or ``-c`` leave through another exit path).
    """
    (tmp_path / "fake_clgym.py").write_text(
        "import os, signal, sys\n"
        "from clgym_core import entry\n"
        "def fake_import():\n" + "".join(f"    {line}\n" for line in cli.splitlines()) +
        "entry._import_cli = fake_import\n"
        "entry.main()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "fake_clgym"], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("swallowed_as", ["pass", "raise ValueError('half-imported')"])
def test_ctrl_c_swallowed_by_an_import_still_stops_the_command(swallowed_as: str, tmp_path: Path) -> None:
    # torch 2.4's torch._C swallows a KeyboardInterrupt raised in the imports it makes, or fails later on
    proc = _entry_with("try:\n"
                       "    os.kill(os.getpid(), signal.SIGINT)\n"
                       "except KeyboardInterrupt:\n"
                       f"    {swallowed_as}\n"
                       "return lambda: print('ran')", tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert "ran" not in proc.stdout and proc.stderr.strip() == "interrupted"


def test_ctrl_c_that_left_an_exec_still_exits_130(tmp_path: Path) -> None:
    # CI saw -2: CPython marks a KeyboardInterrupt leaving exec(str) (dataclasses) as unhandled
    proc = _entry_with("def cli():\n"
                       "    try:\n"
                       "        exec('import os, signal; os.kill(os.getpid(), signal.SIGINT)')\n"
                       "    except KeyboardInterrupt:\n"
                       "        print('interrupted', file=sys.stderr)\n"
                       "        sys.exit(130)\n"
                       "return cli", tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "interrupted"


# ---- a full disk, plots of unequal runs ----------------------------------------------------------------


def test_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from clgym_core import checkpoint

    real_save, calls = torch.save, []

    def save(obj, handle):  # noqa: ANN001
        calls.append(1)
        if len(calls) == 2:  # the checkpoint after task 1: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    run = tmp_path / "run"
    one_line_error(runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]),
                   "checkpoint.pt", "No space left on device")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["completed_tasks"] == 0
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert runner.invoke(app, ["run", "--resume", str(run)]).exit_code == 0


def test_plot_mean_over_seeds_of_runs_with_different_task_counts(tmp_path: Path) -> None:
    for n in (2, 3):
        run = tmp_path / f"run{n}"
        run.mkdir()
        matrix = [[50.0] * n for _ in range(n + 1)]
        (run / "metrics.json").write_text(json.dumps({
            "benchmark": "b", "algorithm": "a", "seed": n, "num_tasks": n, "problem": "classification",
            "accuracy_matrix": matrix, "loss_matrix": matrix, "average_accuracy": 50.0,
        }))
    result = runner.invoke(app, ["plot", str(tmp_path / "run2"), str(tmp_path / "run3"), "--mean-over-seeds",
                                 "--no-per-run", "--out", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plots" / "average_accuracy.png").stat().st_size > 0


def test_kill_during_the_first_checkpoint_leaves_a_directory_that_can_start_again(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", SPEC)
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(run), "--no-progress"]).exit_code == 0
    for name in os.listdir(run):  # what a kill in the first checkpoint's write leaves: the spec and a torn file
        if name != "spec.yaml" and not name.startswith("."):
            (run / name).unlink()
    (run / ".checkpoint.pt.tmp").write_bytes(b"torn")
    line = one_line_error(runner.invoke(app, ["run", "--resume", str(run)]), "no checkpoint.pt")
    assert f"--out {run}" in line
    assert runner.invoke(app, ["run", str(run / "spec.yaml"), "--out", str(run), "--no-progress"]).exit_code == 0
    assert (run / "metrics.json").is_file()
