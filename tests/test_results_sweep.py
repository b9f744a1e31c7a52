"""Issue 18 item 5: results group by any spec path and show what a sweep varied; both forgettings."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

import yaml

from clgym_core import results
from clgym_core.cli import app


def write_run(folder, benchmark, algorithm, seed, acc, forgetting, bwt, fwt, wall, lam=100.0):
    """A finished run's metrics.json and spec.yaml, as ``clgym run`` leaves them."""
    folder.mkdir(parents=True)
    metrics = {"problem": "classification", "benchmark": benchmark, "algorithm": algorithm, "backbone": "mlp",
               "seed": seed, "num_tasks": 5, "average_accuracy": acc, "average_forgetting": forgetting,
               "backward_transfer": bwt, "forward_transfer": fwt, "wall_seconds": wall}
    spec = {"benchmark": {"name": benchmark, "params": {"num_tasks": 5, "seed": seed}},
            "algorithm": {"name": algorithm, "params": {"lambda": lam} if algorithm == "ewc" else {}},
            "trainer": {"epochs_per_task": 1, "device": "cpu"}, "seed": seed, "output_dir": "runs",
            "versions": {"clgym-core": "0.1.0"}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder


def sweep(tmp_path):
    # EWC at two lambdas (two seeds each) and finetune, whose params do not count as a difference.
    root = tmp_path / "runs"
    for i, (algorithm, seed, lam, acc) in enumerate([
        ("ewc", 0, 1.0, 70.0), ("ewc", 1, 1.0, 72.0), ("ewc", 0, 100.0, 80.0), ("ewc", 1, 100.0, 84.0),
        ("finetune", 0, 0.0, 50.0),
    ]):
        write_run(root / f"r{i}", "rotated_mnist", algorithm, seed, acc, 10.0, -9.0, 1.0, 100.0, lam=lam)
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, ["results", *args])


def test_group_by_a_spec_path(tmp_path):
    result = invoke(str(sweep(tmp_path)), "--group-by", "algorithm,algorithm.params.lambda", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = {(r["algorithm"], r["algorithm.params.lambda"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert set(rows) == {("ewc", "1"), ("ewc", "100"), ("finetune", "-")}
    assert float(rows[("ewc", "100")]["average_accuracy_mean"]) == 82.0
    assert rows[("ewc", "1")]["runs"] == "2" and rows[("ewc", "1")]["configs"] == "1"


def test_the_table_shows_the_spec_fields_that_differ(tmp_path):
    frame = results.load_runs([sweep(tmp_path)])
    assert results.differing_paths(frame) == ["algorithm.params.lambda"]  # not seeds, not finetune's empty params
    result = invoke(str(tmp_path / "runs"), "--group-by", "algorithm,config", "--format", "markdown")
    assert result.exit_code == 0, result.output
    header, _, *rows = result.stdout.strip().splitlines()
    assert header.startswith("| algorithm | config | algorithm.params.lambda | runs |")
    assert sorted(r.split(" | ")[2] for r in rows) == ["-", "1", "100"]


def test_unknown_spec_path_is_one_line_with_the_close_match(tmp_path):
    result = invoke(str(sweep(tmp_path)), "--group-by", "algorithm.params.lamda")
    assert result.exit_code == 2
    assert "unknown column 'algorithm.params.lamda'" in result.stderr
    assert "did you mean algorithm.params.lambda" in result.stderr


def test_both_forgettings_are_read_and_the_help_says_which_is_which(tmp_path):
    run = write_run(tmp_path / "r", "rotated_mnist", "ewc", 0, 80.0, 12.0, -10.0, 1.0, 10.0)
    data = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**data, "chaudhry_forgetting": 10.0}))
    records = json.loads(invoke(str(run), "--format", "json").stdout)
    assert records[0]["average_forgetting_mean"] == 12.0 and records[0]["chaudhry_forgetting_mean"] == 10.0
    help_text = " ".join(invoke("--help").stdout.split())
    assert "CL-Gym's Eq. 2" in help_text and "Chaudhry et al. 2018" in help_text
    assert "algorithm.params.lambda" in help_text


def test_metrics_json_holds_chaudhry_forgetting(tmp_path):
    from clgym_core.algorithm import Algorithm
    from clgym_core.runner import run_spec
    from clgym_core.spec import parse_spec
    from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
    from clgym_core.metrics import chaudhry_forgetting

    class Plain(Algorithm):
        """Plain SGD (test)."""

        name = "plain"

    spec = parse_spec({"algorithm": "plain", "benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 3}},
                       "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
                       "trainer": {"device": "cpu", "batch_size": 32, "progress": False}})
    with isolated_registry({"t": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Plain])}):
        run_spec(spec, out_dir=tmp_path / "run", progress=False)
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert data["chaudhry_forgetting"] == chaudhry_forgetting(data["accuracy_matrix"])
