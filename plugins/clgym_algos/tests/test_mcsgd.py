"""MC-SGD: the line phase ends where its objective's minimum is, starts where alpha says, and runs every step."""

from __future__ import annotations

import io
import math

import pytest
import torch
from pydantic import Field
from torch import nn

from clgym_core.backbone import Backbone
from clgym_core.benchmark import Benchmark, BenchmarkParams
from clgym_core.data import TaskData
from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance
from clgym_core.trainer import ContinualTrainer

import clgym_algos.mcsgd as mcsgd_module
from clgym_algos.mcsgd import MCSGD


class _LinearTasksParams(BenchmarkParams):
    num_tasks: int = Field(2, ge=1, description="Tasks.")


class LinearTasks(Benchmark):
    """Linear regression tasks y = x . w_t + noise, with a different w_t per task."""

    name = "linear_tasks"
    problem = "regression"
    Params = _LinearTasksParams

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3,)

    @property
    def head_size(self) -> int:
        return 1

    def prepare_datasets(self) -> None:
        pass

    def build_task(self, task: int, split: str) -> TaskData:
        gen = self.generator(f"data/{split}", task)
        weights = torch.randn(3, generator=self.generator("weights", task)) * 2
        inputs = torch.randn(40, 3, generator=gen)
        targets = inputs @ weights + 0.1 * torch.randn(40, generator=gen)
        return TaskData.for_task(inputs, targets, task)


class LinearNet(Backbone):
    name = "linear_net"

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1, bias=False)

    def forward(self, x, task_ids=None):
        return self.linear(x)


def _moments(data: TaskData) -> tuple[torch.Tensor, torch.Tensor]:
    """``A = X'X / n`` and ``c = X'y / n``: the mean squared error is ``v'Av - 2c'v + const``."""
    x, y = data.inputs.double(), data.targets.double()
    return x.T @ x / len(data), x.T @ y / len(data)


def test_line_phase_converges_to_the_minimum_of_its_objective(weights_after_task):
    bench = LinearTasks(per_task_memory_examples=40, per_task_subset_examples=25, seed=3)
    torch.manual_seed(0)
    alg = MCSGD(LinearNet(), bench,
                {"alpha": 0.3, "line_samples": 4, "line_lr": 0.05, "line_batch_size": 1000, "line_epochs": 300},
                optimizer={"name": "sgd", "lr": 0.05})
    weights = weights_after_task()
    ContinualTrainer(alg, callbacks=[weights], epochs_per_task=20, batch_size=10, device="cpu").fit()
    a, b = weights.after[1].double(), alg.w_hat.double()  # w_bar_1 and the continual solution of task 2
    a1, c1 = _moments(bench.load_memory_joint(2))  # the memories of tasks 1..t, task t's included
    a2, c2 = _moments(bench.load_subset(2))
    alphas = torch.arange(1, 5, dtype=torch.float64) / 4
    s1, s2 = alphas.sum(), (alphas**2).sum()
    # d/dw sum_i L1(a + t_i (w - a)) + L2(b + t_i (w - b)) = 0, solved for w.
    optimum = torch.linalg.solve(s2 * (a1 + a2), s1 * (c1 + c2) - (s1 - s2) * (a1 @ a + a2 @ b))
    start = a + 0.3 * (b - a)
    final = alg.flat.values().double()
    assert (optimum - start).norm() > 0.1 and (optimum - b).norm() > 0.1  # the phase had somewhere to go
    assert (final - optimum).norm() < 1e-3 * (start - optimum).norm()
    assert alg.line_steps == {2: 300}
    torch.testing.assert_close(weights.after[2].double(), final)  # evaluated after the line phase


def test_line_phase_starts_at_alpha_along_the_segment(run, weights_after_task):
    weights = weights_after_task()
    _, alg = run(MCSGD, {"alpha": 0.3, "line_lr": 1e-12}, benchmark={"num_tasks": 2, "per_task_memory_examples": 10},
                 callbacks=[weights], epochs=2)
    expected = weights.after[1] + 0.3 * (alg.w_hat - weights.after[1])
    torch.testing.assert_close(alg.flat.values(), expected, rtol=0, atol=1e-6)


def test_runs_every_step_of_every_epoch(run, monkeypatch):
    line_optimizers = []
    original = mcsgd_module.build_optimizer

    def counting_build(parameters, config, lr=None):
        optimizer = original(parameters, config, lr)
        if lr == 0.07:  # the line phase's rate
            optimizer.steps = 0
            step = optimizer.step

            def counted(*args, **kwargs):
                optimizer.steps += 1
                return step(*args, **kwargs)

            optimizer.step = counted
            line_optimizers.append(optimizer)
        return optimizer

    monkeypatch.setattr(mcsgd_module, "build_optimizer", counting_build)
    _, alg = run(MCSGD, {"line_lr": 0.07, "line_batch_size": 16, "line_epochs": 2},
                 benchmark={"per_task_memory_examples": 20, "per_task_subset_examples": 30}, epochs=1)
    # Memories of tasks 1..t: task 2 holds 40 -> 3 batches (subset 30 -> 2); task 3 holds 60 -> 4.
    assert alg.line_steps == {2: 2 * 3, 3: 2 * 4}
    assert [o.steps for o in line_optimizers] == [6, 8]
    assert 1 not in alg.line_steps


def test_line_gradient_is_the_exact_gradient_of_the_objective(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True, per_task_memory_examples=10)
    alg = MCSGD(backbone_for(bench), bench, {"line_samples": 3})
    flat = alg.flat
    start = flat.values() + 0.1 * torch.randn(flat.numel)
    here = flat.values()
    batch = bench.load_memory_joint(2).all()
    alg.backbone.zero_grad()
    alg.line_loss(start, batch).backward()
    autograd = flat.grads()
    manual = torch.zeros(flat.numel)
    for a in (1 / 3, 2 / 3, 1.0):
        flat.set_values(start + a * (here - start))
        alg.backbone.zero_grad()
        alg.criterion(alg.forward(batch), batch.targets).backward()
        manual += a * flat.grads() / 3  # chain rule: d point / d w = a; the objective averages the points
    torch.testing.assert_close(autograd, manual, rtol=1e-4, atol=1e-7)


def _their_line_gradient(alg: MCSGD, start: torch.Tensor, batch) -> torch.Tensor:
    """CL-LinearModeConnectivity's get_line_loss written out: points t_j = j/n, j = 0..n, each batch-mean
    loss divided by the batch size again, back-propagated at the point into one model whose .grad is never
    cleared, the running .grad summed over the points (so point j counts n + 1 - j times)."""
    n, flat = alg.params.line_samples, alg.flat
    here = flat.values()
    accumulated, total = torch.zeros(flat.numel), torch.zeros(flat.numel)
    for j in range(n + 1):
        flat.set_values(start + (j / n) * (here - start))
        alg.backbone.zero_grad()
        (alg.criterion(alg.forward(batch), batch.targets) / len(batch.targets)).backward()
        accumulated += flat.grads()
        total += accumulated
    flat.set_values(here)
    return total


def test_default_line_lr_takes_the_authors_step_where_the_gradient_is_constant_along_the_line(blobs, backbone_for):
    bench = blobs(seed=0, per_task_memory_examples=32)
    alg = MCSGD(backbone_for(bench), bench)
    assert (alg.params.line_samples, alg.params.line_batch_size, alg.params.alpha) == (5, 64, 0.01)
    batch = bench.load_train(1).batch(slice(0, 64))
    # A short segment: the gradient is (nearly) the same at every point, the case the mapping is derived for.
    start = alg.flat.values() + 1e-4 * torch.randn(alg.flat.numel)
    alg.backbone.zero_grad()
    alg.line_loss(start, batch).backward()
    ours = alg.params.line_lr * alg.flat.grads()
    theirs = mcsgd_module.AUTHORS_LINE_LR * _their_line_gradient(alg, start, batch)
    assert (ours - theirs).norm() < 1e-2 * theirs.norm()  # (a plain sum of the points would be 3.5x off)
    # A long segment: same size of step, not the same step (their weights lean to the start).
    far = alg.flat.values() + 0.5 * torch.randn(alg.flat.numel)
    alg.backbone.zero_grad()
    alg.line_loss(far, batch).backward()
    ours, theirs = alg.params.line_lr * alg.flat.grads(), mcsgd_module.AUTHORS_LINE_LR * _their_line_gradient(alg, far, batch)
    assert (ours - theirs).norm() > 0.05 * theirs.norm()


def test_current_subset_is_a_few_hundred_class_balanced_examples_of_the_task(blobs, backbone_for):
    bench = blobs(seed=0, per_task_memory_examples=4, train_examples=1000)
    default = MCSGD(backbone_for(bench), bench)._current_subset(2)
    assert len(default) == 500 and set(default.task_ids.tolist()) == {2}
    assert torch.bincount(default.targets).tolist() == [250, 250]
    chosen = MCSGD(backbone_for(bench), bench, {"current_examples": 120})._current_subset(2)
    assert len(chosen) == 120
    with_subset = blobs(seed=0, per_task_memory_examples=4, per_task_subset_examples=30)
    assert len(MCSGD(backbone_for(with_subset), with_subset)._current_subset(2)) == 30


def test_first_task_epoch_factor_trains_task_one_longer(run, monkeypatch):
    steps: dict[tuple[int, int], int] = {}
    original = MCSGD.train_step

    def counting(self, batch, optimizer):
        key = (self.params.first_task_epoch_factor, self.current_task)
        steps[key] = steps.get(key, 0) + 1
        return original(self, batch, optimizer)

    monkeypatch.setattr(MCSGD, "train_step", counting)
    for factor in (1, 2):
        run(MCSGD, {"first_task_epoch_factor": factor}, benchmark={"per_task_memory_examples": 10}, epochs=3)
    per_epoch = 200 // 20  # blobs: 200 training examples per task, batch 20
    assert steps[(1, 1)] == 3 * per_epoch and steps[(2, 1)] == 2 * 3 * per_epoch
    assert steps[(1, 2)] == steps[(2, 2)] == 3 * per_epoch  # later tasks unchanged


def test_needs_episodic_memory(blobs, backbone_for):
    bench = blobs()
    with pytest.raises(SpecError, match="per_task_memory_examples"):
        MCSGD(backbone_for(bench), bench)


def test_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(MCSGD, {"line_epochs": 5, "alpha": 0.5, "line_lr": 0.05},
                       benchmark={"per_task_memory_examples": 40})


def test_state_dict_round_trips_through_weights_only_load(run):
    _, alg = run(MCSGD, {}, benchmark={"per_task_memory_examples": 10}, epochs=1)
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    fresh = MCSGD(alg.backbone, alg.benchmark)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(fresh.w_prev, alg.w_prev)
    torch.testing.assert_close(fresh.w_hat, alg.w_hat)
    # Batches of 64: the current-task subset (all 200 examples of a blobs task, fewer than the default 500)
    # outlasts the memories of tasks 1..t (20 and 30 examples).
    assert fresh.line_steps == alg.line_steps == {2: math.ceil(200 / 64), 3: math.ceil(200 / 64)}


class TestMCSGDConformance(AlgorithmConformance):
    component = MCSGD
    params = {"line_epochs": 2, "alpha": 0.5, "line_lr": 0.05}
