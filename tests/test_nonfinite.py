"""A NaN or infinite training loss stops the run, naming the task, epoch and step; an option turns it off."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from clgym_core import rundir
from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.checkpoint import load_checkpoint
from clgym_core.cli import app
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from clgym_core.trainer import ContinualTrainer, NonFiniteLossError


class PoisonedStep(Algorithm):
    """Plain training whose loss is multiplied by NaN at one (task, epoch, step) (test algorithm)."""

    name = "poisoned_step"
    at = (2, 2, 3)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch, self.step = 1, 0

    def prepare_optimizer(self, task):
        self.epoch, self.step = 1, 0
        return super().prepare_optimizer(task)

    def train_epoch_end(self, task, epoch):
        self.epoch, self.step = epoch + 1, 0

    def training_loss(self, batch):
        loss = super().training_loss(batch)
        if (self.current_task, self.epoch, self.step) == self.at:
            loss = loss * float("nan")
        self.step += 1
        return loss


def make_trainer(**kwargs) -> ContinualTrainer:
    torch.manual_seed(0)
    bench = SyntheticBlobs(num_tasks=3, train_examples=48, test_examples=16)
    algo = PoisonedStep(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench)
    return ContinualTrainer(algo, epochs_per_task=2, batch_size=8, device="cpu", **kwargs)


def test_nan_loss_stops_with_task_epoch_and_step():
    trainer = make_trainer()
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    assert "task 2, epoch 2, step 3" in str(info.value)
    assert "stop_on_nonfinite: false" in str(info.value)
    assert trainer.completed_tasks == 1  # task 1 is finished and kept


def test_option_off_lets_the_run_go_on():
    trainer = make_trainer(stop_on_nonfinite=False)
    trainer.fit()
    assert trainer.completed_tasks == 3
    assert math.isnan(trainer.metrics.train_loss["2/2"])  # it really did go NaN


def test_cli_reports_nan_on_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "write_plots", lambda *args: None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "benchmark: {name: synthetic_blobs, params: {num_tasks: 3, train_examples: 48, test_examples: 16}}\n"
        "backbone: {name: mlp, params: {hidden_sizes: [8]}}\n"
        "algorithm: poisoned_step\n"
        "trainer: {epochs_per_task: 2, batch_size: 8, device: cpu, progress: false}\n"
    )
    with isolated_registry({"nan": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[PoisonedStep])}):
        result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "task 2, epoch 2, step 3" in lines[0]
    assert load_checkpoint(tmp_path / "run")[0]["completed_tasks"] == 1
