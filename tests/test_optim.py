"""Run-wide optimizer options: per-task decay, schedules within a task, gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.errors import SpecError
from clgym_core.optim import OptimizerConfig, build_optimizer, prepare_for_task
from clgym_core.spec import parse_spec
from clgym_core.testing import SyntheticBlobs, make_plugin
from clgym_core.trainer import ContinualTrainer


class RecordsRates(Algorithm):
    """Plain training that records the learning rate of every step."""

    name = "records_rates"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rates: list[tuple[int, float]] = []

    def train_step(self, batch, optimizer):
        self.rates.append((self.current_task, optimizer.param_groups[0]["lr"]))
        return super().train_step(batch, optimizer)


def _rates(optimizer: dict, epochs: int = 2) -> list[tuple[int, float]]:
    bench = SyntheticBlobs(num_tasks=3, train_examples=16, test_examples=8)
    algo = RecordsRates(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench, optimizer=optimizer)
    ContinualTrainer(algo, batch_size=16, epochs_per_task=epochs, device="cpu").fit()
    return algo.rates


def test_task_decay_starts_task_t_at_lr_times_decay_to_the_t_minus_1() -> None:
    rates = _rates({"lr": 0.1, "task_decay": 0.5}, epochs=1)
    assert rates == [(1, pytest.approx(0.1)), (2, pytest.approx(0.05)), (3, pytest.approx(0.025))]


def test_step_schedule_decays_per_epoch_and_restarts_every_task() -> None:
    rates = _rates({"lr": 0.1, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}}, epochs=3)
    per_task = [[r for t, r in rates if t == task] for task in (1, 2, 3)]
    for task_rates in per_task:
        assert task_rates == pytest.approx([0.1, 0.05, 0.025])


def test_cosine_schedule_reaches_min_lr_shape() -> None:
    rates = _rates({"lr": 0.1, "scheduler": {"name": "cosine", "min_lr": 0.0}}, epochs=2)
    first = [r for t, r in rates if t == 1]
    assert first == pytest.approx([0.1, 0.1 * (1 + math.cos(math.pi / 2)) / 2])


def test_clipping_bounds_every_step_after_the_gradient_is_final() -> None:
    model = torch.nn.Linear(4, 1)
    config = OptimizerConfig(lr=1.0, clip_grad_norm=1e-3)
    optimizer = build_optimizer(model.parameters(), config)
    prepare_for_task(optimizer, config, task=1, epochs=1)
    before = [p.detach().clone() for p in model.parameters()]
    (model(torch.full((8, 4), 100.0)) ** 2).mean().backward()  # a huge gradient
    optimizer.step()
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert moved.norm() <= 1e-3 * 1.0001  # plain SGD: the step is lr times the clipped gradient


@pytest.mark.parametrize("optimizer, field", [
    ({"scheduler": {"name": "exponential"}}, "optimizer.scheduler.name"),
    ({"task_decay": 1.5}, "optimizer.task_decay"),
    ({"clip_grad_norm": 0}, "optimizer.clip_grad_norm"),
])
def test_bad_optimizer_options_name_the_field(optimizer: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec({"benchmark": "synthetic_blobs", "optimizer": optimizer})


def test_scheduler_short_form() -> None:
    assert OptimizerConfig(scheduler="cosine").scheduler.name == "cosine"


class CountsEpochs(Algorithm):
    """Plain training that records every finished epoch."""

    name = "counts_epochs"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epochs: list[tuple[int, int]] = []

    def train_epoch_end(self, task, epoch):
        self.epochs.append((task, epoch))


def _epochs(patience, lr: float, validation: float | None = 0.25) -> list[tuple[int, int]]:
    bench = SyntheticBlobs(num_tasks=2, train_examples=64, test_examples=8, validation_fraction=validation)
    algo = CountsEpochs(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench, optimizer={"lr": lr})
    ContinualTrainer(algo, batch_size=16, epochs_per_task=20, device="cpu", early_stopping_patience=patience).fit()
    return algo.epochs


def test_early_stopping_ends_a_task_after_patience_epochs_without_improvement() -> None:
    # A learning rate too small to change the validation accuracy: epoch 1 sets the best, 2 and 3 do not beat it.
    epochs = _epochs(patience=2, lr=1e-12)
    assert epochs == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert len(_epochs(patience=None, lr=1e-12)) == 40  # off: every epoch runs


def test_early_stopping_needs_a_validation_split() -> None:
    from clgym_core.build import build, resolve
    from clgym_core.testing import isolated_registry

    spec = parse_spec({"benchmark": "synthetic_blobs", "backbone": {"name": "mlp", "params": {"hidden_sizes": [4]}},
                       "algorithm": "plain_for_optim", "trainer": {"early_stopping_patience": 2, "device": "cpu"}})
    with isolated_registry({"t": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[PlainForOptim])}) as registry:
        with pytest.raises(SpecError, match="trainer.early_stopping_patience needs a validation split"):
            build(resolve(spec, registry))


class PlainForOptim(Algorithm):
    """Plain training."""

    name = "plain_for_optim"
