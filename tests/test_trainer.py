"""The trainer: event order, evaluation of every task, determinism, multi-head, end-to-end runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.callback import HOOKS, Callback
from clgym_core.collector import MetricCollector
from clgym_core.errors import ClgymError
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from clgym_core.trainer import ContinualTrainer, resolve_device


class Recorder(Callback):
    """Records every hook call."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple] = []


def _recording(hook: str):
    def method(self, trainer, *args):
        shown = tuple(a for a in args if isinstance(a, int) and not isinstance(a, bool))
        self.events.append((hook, *shown))

    return method


for _hook in HOOKS:
    setattr(Recorder, _hook, _recording(_hook))


class RecordingAlgorithm(Algorithm):
    """Plain training that also records its own hooks."""

    name = "recording"

    def __init__(self, *args, log: list | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = log if log is not None else []

    def prepare_optimizer(self, task):
        self.log.append(("prepare_optimizer", task))
        return super().prepare_optimizer(task)

    def train_step_end(self, task, step):
        self.log.append(("train_step_end", task, step))

    def train_epoch_end(self, task, epoch):
        self.log.append(("train_epoch_end", task, epoch))

    def train_task_end(self, task):
        self.log.append(("train_task_end", task))


def make_trainer(num_tasks=2, epochs=2, seed=0, heads="single", callbacks=None, log=None, **bench):
    torch.manual_seed(seed)
    benchmark = SyntheticBlobs(num_tasks=num_tasks, train_examples=32, test_examples=16, heads=heads,
                               seed=seed, **bench)
    backbone = MLP(input_size=8, hidden_sizes=[16], output_size=2, num_heads=benchmark.num_heads)
    algorithm = RecordingAlgorithm(backbone, benchmark, optimizer={"lr": 0.1}, log=log)
    return ContinualTrainer(algorithm, callbacks=callbacks, epochs_per_task=epochs, batch_size=16,
                            device="cpu", seed=seed)


def test_event_order_follows_algorithm_1() -> None:
    recorder = Recorder()
    log: list = []
    make_trainer(callbacks=[recorder], log=log).fit()
    expected = [("setup",), ("on_validation_start", 0), ("on_validation_end", 0), ("on_fit_start",)]
    for task in (1, 2):
        expected.append(("on_task_start", task))
        for epoch in (1, 2):
            expected.append(("on_train_epoch_start", task, epoch))
            for step in (0, 1):  # 32 examples / batch 16
                expected += [("on_train_batch_start", step), ("on_train_batch_end", step)]
            expected.append(("on_train_epoch_end", task, epoch))
        expected += [("on_validation_start", task), ("on_validation_end", task), ("on_task_end", task)]
    expected += [("on_fit_end",), ("teardown",)]
    assert recorder.events == expected
    # The algorithm's hooks run inside the same timeline.
    assert log[:3] == [("prepare_optimizer", 1), ("train_step_end", 1, 0), ("train_step_end", 1, 1)]
    assert ("train_task_end", 2) == log[-1]
    assert log.count(("train_epoch_end", 2, 2)) == 1


def test_exception_reaches_callbacks_and_teardown_runs() -> None:
    class Failing(Algorithm):
        name = "failing"

        def train_step(self, batch, optimizer):
            raise RuntimeError("step failed")

    recorder = Recorder()
    benchmark = SyntheticBlobs(num_tasks=1)
    trainer = ContinualTrainer(Failing(MLP(input_size=8, output_size=2), benchmark), callbacks=[recorder],
                               device="cpu")
    with pytest.raises(RuntimeError, match="step failed"):
        trainer.fit()
    assert ("on_exception",) in recorder.events and recorder.events[-1] == ("teardown",)


def test_every_task_is_evaluated_after_every_task_including_unseen() -> None:
    trainer = make_trainer(num_tasks=3, epochs=3)
    summary = trainer.fit()
    matrix = trainer.accuracy_matrix
    assert len(matrix) == 4 and all(len(row) == 3 for row in matrix)
    assert all(0.0 <= v <= 100.0 for row in matrix for v in row)
    # Each task is learned when trained on (blobs are separable), so the diagonal is high.
    assert all(matrix[t][t - 1] >= 90.0 for t in (1, 2, 3))
    assert summary["learning_accuracy"] == pytest.approx(sum(matrix[t][t - 1] for t in (1, 2, 3)) / 3)
    assert summary["average_accuracy"] == pytest.approx(sum(matrix[3]) / 3)
    # Evaluation equals a direct computation on the test set.
    trainer.backbone.eval()
    data = trainer.benchmark.load_test(2)
    with torch.no_grad():
        direct = (trainer.backbone(data.inputs, data.task_ids).argmax(1) == data.targets).double().mean() * 100
    assert matrix[3][1] == pytest.approx(float(direct))


def test_same_seed_same_metrics_different_seed_differs() -> None:
    a = make_trainer(seed=5)
    b = make_trainer(seed=5)
    c = make_trainer(seed=6)
    a.fit(), b.fit(), c.fit()
    assert a.accuracy_matrix == b.accuracy_matrix and a.loss_matrix == b.loss_matrix
    assert a.loss_matrix != c.loss_matrix


def test_multi_head_backbone_routes_by_task_id() -> None:
    trainer = make_trainer(num_tasks=3, heads="multi")
    trainer.fit()
    assert trainer.backbone.head.num_heads == 3
    x = torch.randn(6, 8)
    out = trainer.backbone(x, torch.tensor([1, 2, 3, 1, 2, 3]))
    full = trainer.backbone.head.linear(trainer.backbone.features(x)).view(6, 3, 2)
    assert torch.equal(out, full[torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])])
    with pytest.raises(ValueError, match="needs task_ids"):
        trainer.backbone(x)


def test_nonfinite_loss_stops_with_task_epoch_and_step() -> None:
    class Exploding(Algorithm):
        name = "exploding"

        def training_loss(self, batch):
            loss = super().training_loss(batch)
            return loss * float("nan") if self.current_task == 2 else loss

    benchmark = SyntheticBlobs(num_tasks=2, train_examples=32)
    trainer = ContinualTrainer(Exploding(MLP(input_size=8, output_size=2), benchmark), batch_size=16, device="cpu")
    with pytest.raises(ClgymError, match="NaN or infinite at task 2, epoch 1, step 0"):
        trainer.fit()
    trainer = ContinualTrainer(Exploding(MLP(input_size=8, output_size=2), benchmark), batch_size=16,
                               device="cpu", stop_on_nonfinite=False)
    trainer.fit()  # the switch turns the check off


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ClgymError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ClgymError, match="not a device"):
        resolve_device("tpu:what")


def test_end_to_end_run_writes_the_run_directory(tmp_path: Path) -> None:
    plugin = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[RecordingAlgorithm])
    spec = parse_spec({
        "benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 2}},
        "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
        "algorithm": "recording",
        "optimizer": {"lr": 0.1},
        "trainer": {"batch_size": 16, "device": "cpu", "progress": False},
        "seed": 1,
    })
    with isolated_registry({"t": plugin}):
        first = run_spec(spec, out_dir=tmp_path / "a")
        second = run_spec(spec, out_dir=tmp_path / "b")
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in ("accuracy_matrix", "average_accuracy", "average_forgetting", "backward_transfer",
                "forward_transfer", "learning_accuracy"):
        assert key in metrics
    assert metrics["accuracy_matrix"] == first.accuracy_matrix
    assert metrics["average_accuracy"] == pytest.approx(first.summary["average_accuracy"])
    assert metrics["versions"]["clgym-core"]
    csv_rows = (tmp_path / "a" / "accuracy_matrix.csv").read_text().splitlines()
    assert csv_rows[0] == "after,task_1,task_2" and csv_rows[1].startswith("untrained,")
    assert len(csv_rows) == 4
    spec_text = (tmp_path / "a" / "spec.yaml").read_text()
    assert "input_size: 8" in spec_text and "clgym-core" in spec_text
    # Same spec and seed, same metrics (CPU).
    assert second.accuracy_matrix == first.accuracy_matrix


def test_a_diverged_run_that_goes_on_reports_nan_metrics(tmp_path: Path) -> None:
    class Diverging(Algorithm):
        name = "diverging"

        def train_task_end(self, task):
            if task == 2:
                with torch.no_grad():
                    for p in self.backbone.parameters():
                        p.fill_(float("nan"))

    plugin = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Diverging])
    spec = parse_spec({"benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 2}},
                       "algorithm": "diverging", "trainer": {"device": "cpu", "progress": False}})
    with isolated_registry({"t": plugin}):
        run_spec(spec, out_dir=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # written, NaN as null
    assert metrics["loss_matrix"][2] == [None, None]
    # A regression run summarises its loss matrix: a NaN there gives NaN metrics, not a crash.
    collector = MetricCollector()
    collector.problem = "regression"
    collector.loss = [[1.0, 1.0], [0.1, 2.0], [float("nan"), float("nan")]]
    summary = collector.summary()
    assert set(summary) >= {"average_loss", "average_forgetting"}
    assert all(v != v for v in summary.values())
