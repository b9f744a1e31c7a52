"""Logger callbacks write what they should: per-task accuracies, training loss, summary and spec."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from clgym_core import loggers, rundir
from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.errors import ClgymError
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from clgym_core.trainer import ContinualTrainer


class Plain(Algorithm):
    """Finetuning (test algorithm)."""

    name = "plain"


SPEC = {
    "benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 3, "train_examples": 48, "test_examples": 24}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
    "algorithm": "plain",
    "optimizer": {"lr": 0.1},
    "trainer": {"epochs_per_task": 2, "batch_size": 16, "device": "cpu", "progress": False},
    "seed": 1,
}


@pytest.fixture(scope="module")
def registry():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "write_plots", lambda *args: None)
        with isolated_registry({"loggers_test": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Plain])}) as reg:
            yield reg


@pytest.fixture(scope="module")
def run_dir(registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("logged") / "run"
    run_spec(parse_spec(SPEC), out_dir=out, progress=False)
    return out


def test_every_run_directory_gets_the_csv_and_jsonl_logs(run_dir):
    assert (run_dir / "events.jsonl").is_file() and (run_dir / "scalars.csv").is_file()


def test_jsonl_events_follow_the_timeline_and_match_metrics(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    expected = ["start", "evaluation"]
    for _ in range(3):
        expected += ["epoch", "epoch", "evaluation", "task_end"]
    assert [e["event"] for e in events] == expected + ["end"]
    start = events[0]
    assert start["spec"] == yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert start["seed"] == 1 and start["num_tasks"] == 3 and start["device"] == "cpu"
    evaluations = [e for e in events if e["event"] == "evaluation"]
    assert [e["after_task"] for e in evaluations] == [0, 1, 2, 3]
    assert [e["accuracy"] for e in evaluations] == metrics["accuracy_matrix"]
    assert [e["loss"] for e in evaluations] == metrics["loss_matrix"]
    epochs = {f"{e['task']}/{e['epoch']}": e["train_loss"] for e in events if e["event"] == "epoch"}
    assert epochs == metrics["train_loss"]
    assert [e["global_step"] for e in events if e["event"] == "task_end"] == [6, 12, 18]
    summary = events[-1]["summary"]
    for key in ("average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer"):
        assert summary[key] == pytest.approx(metrics[key])


def test_csv_scalars_hold_the_accuracy_matrix_train_loss_and_summary(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "scalars.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(loggers.CSV_COLUMNS)
    accuracy = {(int(r["task"]), r["tag"]): float(r["value"]) for r in rows if r["tag"].startswith("accuracy/task_")}
    for after, row in enumerate(metrics["accuracy_matrix"]):
        for j, value in enumerate(row, start=1):
            assert accuracy[(after, f"accuracy/task_{j}")] == value
    seen = {int(r["task"]): float(r["value"]) for r in rows if r["tag"] == "accuracy/seen_tasks"}
    assert seen[3] == pytest.approx(metrics["average_accuracy"])
    assert seen[1] == pytest.approx(metrics["accuracy_matrix"][1][0])
    losses = {f"{r['task']}/{r['epoch']}": float(r["value"]) for r in rows if r["tag"] == "train/loss"}
    assert losses == metrics["train_loss"]
    summary = {r["tag"]: float(r["value"]) for r in rows if r["tag"].startswith("summary/")}
    assert summary["summary/average_accuracy"] == pytest.approx(metrics["average_accuracy"])
    assert summary["summary/backward_transfer"] == pytest.approx(metrics["backward_transfer"])
    assert len([r for r in rows if r["tag"] == "time/task_seconds"]) == 3


def test_loggers_are_registered_callbacks(registry):
    assert {"csv_logger", "jsonl_logger", "tensorboard", "mlflow"} <= set(registry.names("callback"))


def test_named_logger_is_not_added_twice_and_honours_its_params(registry, tmp_path):
    spec = parse_spec({**SPEC, "benchmark": {**SPEC["benchmark"], "params": {"num_tasks": 1}},
                       "callbacks": [{"name": "csv_logger", "params": {"filename": "mine.csv"}}]})
    result = run_spec(spec, out_dir=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "mine.csv").is_file() and not (tmp_path / "run" / "scalars.csv").exists()
    assert sum(isinstance(c, loggers.CSVLogger) for c in result.trainer.callbacks) == 1


@pytest.mark.parametrize("cls", [loggers.JSONLinesLogger, loggers.CSVLogger])
def test_file_logger_without_a_folder_warns_and_writes_nothing(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bench = SyntheticBlobs(num_tasks=1, train_examples=8, test_examples=8)
    trainer = ContinualTrainer(Plain(MLP(input_size=8, hidden_sizes=[4], output_size=2), bench),
                               callbacks=[cls()], device="cpu")
    with pytest.warns(UserWarning, match=f"callback {cls.name}: no folder to write to .set params.dir."):
        trainer.fit()
    assert len(trainer.accuracy_matrix) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cls, module", [(loggers.TensorBoardLogger, "tensorboard"), (loggers.MLflowLogger, "mlflow")])
def test_optional_loggers_say_what_to_install(monkeypatch, cls, module):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(ClgymError, match=rf"{cls.name} needs {module}.*pip install clgym-core\[{module}\]"):
        cls()


def test_tensorboard_logger_writes_scalars_and_spec(registry, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install clgym-core[tensorboard])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_spec(parse_spec({**SPEC, "callbacks": ["tensorboard"]}), out_dir=tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = events.Tags()
    task1 = [(e.step, e.value) for e in events.Scalars("accuracy/task_1")]
    assert [s for s, _ in task1] == [0, 6, 12, 18]
    assert [v for _, v in task1] == pytest.approx([row[0] for row in run.accuracy_matrix])
    assert events.Scalars("summary/average_accuracy")[0].value == pytest.approx(run.summary["average_accuracy"])
    assert len(events.Scalars("train/loss")) == 6
    assert "spec" in " ".join(tags.get("tensors", []))


def test_mlflow_logger_logs_to_a_local_store_by_default(registry, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install clgym-core[mlflow])")
    from mlflow.tracking import MlflowClient

    run = run_spec(parse_spec({**SPEC, "callbacks": ["mlflow"]}), out_dir=tmp_path / "run", progress=False)
    store = (tmp_path / "run" / "mlflow.db").resolve()
    assert store.is_file()  # nothing configured, nothing leaves the run directory
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    logger = next(c for c in run.trainer.callbacks if isinstance(c, loggers.MLflowLogger))
    record = client.get_run(logger.run_id)
    assert record.info.status == "FINISHED"
    assert record.data.params["algorithm.name"] == "plain"
    assert record.data.metrics["summary/average_accuracy"] == pytest.approx(run.summary["average_accuracy"])
    history = client.get_metric_history(logger.run_id, "accuracy/task_2")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [row[1] for row in run.accuracy_matrix]
    )
    assert not math.isnan(record.data.metrics["train/loss"])


def test_flatten_for_params():
    assert loggers.flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}


def test_resumed_file_log_drops_what_came_after_the_checkpoint(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text('{"event": "a"}\n{"event": "after checkpoint"}\n'
                   '{"event": "exception", "type": "KeyboardInterrupt", "message": "", "task": 2, "epoch": 1}\n')
    logger = loggers.JSONLinesLogger()
    logger.load_state_dict({"offset": len('{"event": "a"}\n')})

    class FakeTrainer:
        run_dir = tmp_path
        completed_tasks = resumed_from = 1
        global_step = 5

    logger.setup(FakeTrainer())
    logger.teardown(FakeTrainer())
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in records] == ["a", "resume"]
    assert records[1]["completed_tasks"] == 1 and records[1]["interrupted_by"]["type"] == "KeyboardInterrupt"
    assert records[1]["interrupted_by"]["task"] == 2
    assert Path(logger.path) == log


class _FakeWandbRun:
    def __init__(self, **kwargs):
        self.init = kwargs
        self.id = kwargs.get("id") or "fake123"
        self.logged: list[tuple[dict, int]] = []
        self.summary: dict = {}
        self.finished = None

    def log(self, values, step):
        self.logged.append((values, step))

    def finish(self, exit_code=0):
        self.finished = exit_code


def test_wandb_logger_sends_the_shared_tags_and_the_spec(registry, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install clgym-core[wandb])")
    runs = []
    monkeypatch.setattr(wandb, "init", lambda **kw: runs.append(_FakeWandbRun(**kw)) or runs[-1])
    run = run_spec(parse_spec({**SPEC, "callbacks": ["wandb"]}), out_dir=tmp_path / "run", progress=False)
    (fake,) = runs
    assert fake.init["mode"] == "offline" and fake.init["config"]["algorithm"]["name"] == "plain"
    assert Path(fake.init["dir"]).resolve() == (tmp_path / "run").resolve()
    task2 = [(step, values["accuracy/task_2"]) for values, step in fake.logged if "accuracy/task_2" in values]
    assert [v for _, v in task2] == pytest.approx([row[1] for row in run.accuracy_matrix])
    assert fake.summary["average_accuracy"] == pytest.approx(run.summary["average_accuracy"])
    assert fake.finished == 0


def test_wandb_logger_offline_writes_inside_the_run_directory(registry, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install clgym-core[wandb])")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run = run_spec(parse_spec({**SPEC, "callbacks": ["wandb"]}), out_dir=tmp_path / "run", progress=False)
    logger = next(c for c in run.trainer.callbacks if isinstance(c, loggers.WandbLogger))
    offline = list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{logger.run_id}/run-{logger.run_id}.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["callbacks"]["wandb"]["run_id"] == logger.run_id  # a resumed run continues the same W&B run
