"""The example spec runs end to end through `clgym run`, with SI found through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.registry import get_registry

SPEC = Path(__file__).resolve().parent.parent / "si_toy_2d.yaml"


def run(out: Path, *overrides: str) -> dict:
    args = ["run", str(SPEC), "--out", str(out), "--no-progress"]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_example_spec_runs_si_from_its_entry_point_and_keeps_task_one(tmp_path: Path) -> None:
    registry = get_registry()
    if "toy_2d_classification" not in registry.names("benchmark"):
        pytest.skip("the example spec needs clgym-toy (toy_2d_classification)")
    assert registry.info("algorithm", "si").plugin.distribution == "clgym-si", "clgym-si is not installed"
    si = run(tmp_path / "si")
    assert si["algorithm"] == "si"
    written = yaml.safe_load((tmp_path / "si" / "spec.yaml").read_text())
    assert written["algorithm"]["params"]["strength"] == 100.0 and "clgym-si" in written["versions"]
    finetune = run(tmp_path / "finetune", "algorithm={name: finetune}")
    # Task 2 flips task 1's labels at the same x positions: fine-tuning forgets task 1, SI keeps it.
    assert si["learning_accuracy"] >= 95 and finetune["learning_accuracy"] >= 95
    assert si["average_forgetting"] <= 10, si["accuracy_matrix"]
    assert finetune["average_forgetting"] >= si["average_forgetting"] + 30, finetune["accuracy_matrix"]
