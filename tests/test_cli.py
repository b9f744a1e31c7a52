"""The clgym CLI through typer's CliRunner: list, show, plugins, validate, run, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.algorithm import Algorithm
from clgym_core.cli import app
from clgym_core.hookspecs import hookimpl
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin

runner = CliRunner()


class Plain(Algorithm):
    """Plain sequential SGD (test algorithm)."""

    name = "plain"


class NoDataBenchmark(SyntheticBlobs):
    """Fails if anything tries to load its data."""

    name = "no_data"

    def prepare_datasets(self) -> None:
        raise AssertionError("validate must not load data")


@pytest.fixture
def registry():
    plugin = make_plugin(benchmarks=[SyntheticBlobs, NoDataBenchmark], algorithms=[Plain])
    with isolated_registry({"testplugin": plugin}) as reg:
        yield reg


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "benchmark: {name: synthetic_blobs, params: {num_tasks: 2}}\n"
        "backbone: {name: mlp, params: {hidden_sizes: [16]}}\n"
        "algorithm: plain\n"
        "optimizer: {name: sgd, lr: 0.1}\n"
        "trainer: {batch_size: 16, device: cpu}\n"
        "seed: 0\n"
    )
    return path


def test_list_shows_name_plugin_and_summary(registry) -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "synthetic_blobs" in result.output and "Gaussian blobs with task-specific" in result.output
    assert "plain" in result.output and "Plain sequential SGD" in result.output
    assert "clgym-core" in result.output  # the mlp backbone's provider
    only = runner.invoke(app, ["list", "algorithms"])
    assert "plain" in only.output and "synthetic_blobs" not in only.output
    assert runner.invoke(app, ["list", "widgets"]).exit_code == 2


def test_show_lists_parameters(registry) -> None:
    result = runner.invoke(app, ["show", "mlp"])
    assert result.exit_code == 0
    for text in ("hidden_sizes", "list[int]", "[256, 256]", "Width of each hidden layer"):
        assert text in result.output
    missing = runner.invoke(app, ["show", "plian"])
    assert missing.exit_code == 2
    assert "error: no component named 'plian'; did you mean plain?" in missing.output


def test_plugins_lists_versions_and_fails_on_broken_plugin(registry) -> None:
    ok = runner.invoke(app, ["plugins"])
    assert ok.exit_code == 0 and "testplugin" in ok.output and "clgym-core" in ok.output

    class Broken:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms():
            raise RuntimeError("broken on purpose")

    registry.register(Broken(), name="broken")
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 1
    assert "broken on purpose" in result.output


def test_validate_checks_without_loading_data(registry, tmp_path: Path) -> None:
    spec = tmp_path / "v.yaml"
    spec.write_text("benchmark: no_data\nalgorithm: plain\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok: benchmark no_data, backbone mlp, algorithm plain" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "trainer.batch_size=0"], "trainer.batch_size: Input should be greater than or equal to 1"),
        (["--set", "algorithm=plian"], "algorithm.name: unknown algorithm 'plian'; did you mean plain?"),
        (["--set", "backbone.params.depth=3"], "backbone.params.depth: unknown parameter"),
        (["--set", "nonsense"], "--set 'nonsense': expected KEY=VALUE"),
    ],
)
def test_bad_specs_exit_2_with_one_line(registry, spec_file: Path, args: list[str], message: str) -> None:
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(spec_file), *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert "Traceback" not in result.output


def test_missing_spec_file_is_a_clear_error(registry, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nope.yaml'}: no such spec file"


def test_run_prints_matrix_and_summary_and_writes_run_dir(registry, spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(spec_file), "--out", str(out), "--no-progress",
                                 "--set", "trainer.epochs_per_task=2"])
    assert result.exit_code == 0, result.output
    assert "accuracy matrix" in result.output and "untrained" in result.output
    assert "average_forgetting" in result.output and str(out) in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["accuracy_matrix"]) == 3
    assert "epochs_per_task: 2" in (out / "spec.yaml").read_text()
    before = (out / "metrics.json").read_bytes()
    # A second run into the same directory is refused and changes nothing.
    again = runner.invoke(app, ["run", str(spec_file), "--out", str(out), "--no-progress"])
    assert again.exit_code == 2 and "already holds a run" in again.output
    assert (out / "metrics.json").read_bytes() == before


def test_help_is_useful_on_every_command() -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in ("list", "show", "plugins", "validate", "run"):
        assert command in top.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage:" in sub.output
    assert "--set" in runner.invoke(app, ["run", "--help"]).output


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmark: {name: x}\ntrainer: {epochs_per_task: zero}\n")
    proc = subprocess.run([sys.executable, "-m", "clgym_core", "validate", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "trainer.epochs_per_task: Input should be a valid integer" in proc.stderr
    assert "Traceback" not in proc.stderr


class NeedsMemory(Algorithm):
    """Refuses a benchmark without episodic memory (as A-GEM does)."""

    name = "needs_memory"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.benchmark.params.per_task_memory_examples:
            from clgym_core.errors import SpecError

            raise SpecError("needs_memory needs episodic memory: set benchmark.params.per_task_memory_examples")


def test_component_refusal_is_caught_by_validate_and_leaves_no_run_dir(tmp_path: Path) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text("benchmark: synthetic_blobs\nalgorithm: needs_memory\ntrainer: {device: cpu}\n")
    plugin = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[NeedsMemory])
    with isolated_registry({"t": plugin}):
        checked = runner.invoke(app, ["validate", str(spec)])
        assert checked.exit_code == 2 and "set benchmark.params.per_task_memory_examples" in checked.output
        ran = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
        assert ran.exit_code == 2 and not (tmp_path / "out").exists()
        fixed = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--no-progress",
                                    "--set", "benchmark.params.per_task_memory_examples=4"])
        assert fixed.exit_code == 0, fixed.output


def test_version_prints_the_installed_core_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"clgym-core {version('clgym-core')}\n"
    assert "--version" in runner.invoke(app, ["--help"]).output
    done = subprocess.run([sys.executable, "-m", "clgym_core", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("clgym-core ") and not done.stderr
