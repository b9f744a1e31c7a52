"""`clgym run` with no spec: the quickstart runs end to end and shows forgetting beside a method that avoids it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.build import resolve_spec
from clgym_core.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
QUICKSTART = ROOT / "clgym_core" / "quickstart"  # packaged with clgym-core: what `clgym run` runs


def test_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run directories go under ./runs
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 0, result.output
    for text in ("toy2d_finetune", "toy2d_joint", "average_accuracy", "average_forgetting"):
        assert text in result.output

    runs = {}
    for run_dir in sorted((tmp_path / "runs").iterdir()):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        runs[metrics["algorithm"]] = (run_dir, metrics)
    assert {"finetune", "joint"} <= set(runs)
    for run_dir, metrics in runs.values():
        for name in ("spec.yaml", "accuracy_matrix.csv", "accuracy_matrix.png", "task_curves.png"):
            assert (run_dir / name).stat().st_size > 0, name
        num_tasks = metrics["num_tasks"]
        assert len(metrics["accuracy_matrix"]) == num_tasks + 1
        for task in range(1, num_tasks + 1):
            assert (run_dir / f"decision_boundary_task{task}.png").stat().st_size > 0
    # The point of the quickstart: tasks are learned, finetune forgets them, joint does not.
    finetune, joint = runs["finetune"][1], runs["joint"][1]
    assert finetune["learning_accuracy"] > 95.0
    assert finetune["average_forgetting"] > 30.0
    assert joint["average_forgetting"] < 5.0
    assert joint["average_accuracy"] > finetune["average_accuracy"] + 25.0
    assert {"er_ring", "agem"} <= set(runs)
    for method in set(runs) - {"finetune", "joint"}:  # the replay methods: far less forgetting than finetune
        assert runs[method][1]["learning_accuracy"] > 95.0
        assert runs[method][1]["average_forgetting"] < finetune["average_forgetting"] - 30.0


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.yaml")) + sorted(QUICKSTART.glob("*.yaml")), ids=lambda p: p.name
)
def test_example_specs_are_valid(path):
    """Every component named exists and every parameter validates (raises SpecError/RegistryError otherwise)."""
    spec = resolve_spec(load_spec(path), source=str(path))
    assert spec.benchmark.params and spec.backbone.params  # defaults were filled in
