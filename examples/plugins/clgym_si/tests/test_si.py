"""Synaptic Intelligence: the conformance kit, and the paper's defining quantities checked step by step."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from clgym_core import ContinualTrainer
from clgym_core.backbone import MLP
from clgym_core.testing import AlgorithmConformance, SyntheticBlobs

from clgym_si.synaptic_intelligence import SynapticIntelligence

LR = 0.1


class TestSIConformance(AlgorithmConformance):
    component = SynapticIntelligence
    params = {"strength": 1.0, "damping": 0.1}


# Not named `setup`: pytest 8.0 calls a module-level setup() as an xunit fixture, with the module as argument.
def make_si(strength: float = 2.0, damping: float = 0.1, clip_negative: bool = True, momentum: float = 0.0):
    torch.manual_seed(0)
    bench = SyntheticBlobs(num_tasks=2, input_size=4, classes_per_task=3, train_examples=48)
    backbone = MLP(input_size=4, hidden_sizes=[8], output_size=3)
    si = SynapticIntelligence(
        backbone, bench, {"strength": strength, "damping": damping, "clip_negative": clip_negative},
        optimizer={"name": "sgd", "lr": LR, "momentum": momentum},
    )
    return si, bench, backbone


def flat(backbone: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in backbone.parameters()])


def task_gradient(backbone: torch.nn.Module, batch) -> torch.Tensor:
    """Gradient of the task loss alone, computed independently of the algorithm."""
    loss = F.cross_entropy(backbone(batch.inputs, batch.task_ids), batch.targets)
    grads = torch.autograd.grad(loss, list(backbone.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def train_task(si: SynapticIntelligence, bench: SyntheticBlobs, task: int, steps: int = 6):
    """Train ``task`` for a few steps, recomputing what SI should accumulate; returns (omega, start, end)."""
    backbone = si.backbone
    optimizer = si.prepare_optimizer(task)
    start = flat(backbone)
    omega = torch.zeros_like(start)
    for batch in list(bench.load_train(task).batches(8))[:steps]:
        before = flat(backbone)
        g = task_gradient(backbone, batch)
        si.train_step(batch, optimizer)
        omega -= g * (flat(backbone) - before)  # Eq. 3, one step
    return omega, start, flat(backbone)


def test_first_sgd_step_accumulates_lr_times_squared_gradient() -> None:
    """With plain SGD and no penalty, delta_theta = -lr g, so -g * delta_theta = lr g^2 >= 0."""
    si, bench, backbone = make_si()
    optimizer = si.prepare_optimizer(1)
    batch = next(iter(bench.load_train(1).batches(8)))
    g = task_gradient(backbone, batch)
    si.train_step(batch, optimizer)
    assert g.abs().sum() > 0
    torch.testing.assert_close(si.omega, LR * g.pow(2), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_path_integral_sums_minus_task_gradient_times_update(momentum: float) -> None:
    si, bench, _ = make_si(momentum=momentum)
    expected, _, _ = train_task(si, bench, 1)
    torch.testing.assert_close(si.omega, expected, rtol=1e-5, atol=1e-8)
    assert si.omega.abs().sum() > 0


def test_importance_is_omega_over_squared_displacement_plus_damping_summed_over_tasks() -> None:
    damping = 0.1
    si, bench, _ = make_si(damping=damping, clip_negative=False)
    omega1, start1, end1 = train_task(si, bench, 1)
    si.train_task_end(1)
    importance1 = omega1 / ((end1 - start1).pow(2) + damping)  # Eq. 5 after one task
    torch.testing.assert_close(si.importance, importance1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(si.anchor, end1)
    omega2, start2, end2 = train_task(si, bench, 2)
    torch.testing.assert_close(si.omega, omega2, rtol=1e-5, atol=1e-8)
    si.train_task_end(2)
    torch.testing.assert_close(si.importance, importance1 + omega2 / ((end2 - start2).pow(2) + damping),
                               rtol=1e-5, atol=1e-7)


def test_clip_negative_clips_the_accumulated_importance_at_zero() -> None:
    """A parameter pushed uphill (momentum, noise) has a negative path integral; clipping zeroes its importance."""
    results = {}
    for clip in (True, False):
        si, _, backbone = make_si(clip_negative=clip)
        si.prepare_optimizer(1)
        start = flat(backbone)
        with torch.no_grad():
            for p in backbone.parameters():
                p.add_(0.1)
        omega = torch.linspace(-1.0, 1.0, start.numel())
        si.omega = omega.clone()
        si.train_task_end(1)
        results[clip] = si.importance
    raw = omega / ((flat(backbone) - start).pow(2) + 0.1)
    torch.testing.assert_close(results[False], raw)
    assert (results[False] < 0).any()
    torch.testing.assert_close(results[True], raw.clamp(min=0))


def test_step_on_a_later_task_follows_the_surrogate_loss_but_omega_uses_the_task_gradient() -> None:
    """Eq. 4: the update is -lr * grad(L + c sum Omega (theta - theta~)^2); omega keeps -g_task * delta."""
    strength = 3.0
    si, bench, backbone = make_si(strength=strength)
    train_task(si, bench, 1)
    si.train_task_end(1)
    optimizer = si.prepare_optimizer(2)
    batch = next(iter(bench.load_train(2).batches(8)))
    # Move away from the anchor first so the penalty's gradient is not zero.
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    si._previous = flat(backbone)  # the parameters before the step (the algorithm tracks them between steps)
    before = flat(backbone)
    params = list(backbone.parameters())
    task_loss = F.cross_entropy(backbone(batch.inputs, batch.task_ids), batch.targets)
    theta = torch.cat([p.reshape(-1) for p in params])
    surrogate = task_loss + strength * (si.importance * (theta - si.anchor).pow(2)).sum()
    full_gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate, params)])
    g_task = task_gradient(backbone, batch)
    reported = si.train_step(batch, optimizer)
    after = flat(backbone)
    torch.testing.assert_close(after - before, -LR * full_gradient, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(si.omega, -g_task * (after - before), rtol=1e-5, atol=1e-9)
    assert not torch.allclose(full_gradient, g_task), "the penalty must change the step"
    torch.testing.assert_close(reported, surrogate.detach(), rtol=1e-5, atol=1e-6)


def _run(algorithm_cls, params: dict, seed: int = 0):
    torch.manual_seed(seed)
    bench = SyntheticBlobs(num_tasks=3, input_size=8, classes_per_task=3, seed=seed)
    backbone = MLP(input_size=8, hidden_sizes=[32], output_size=3)
    algorithm = algorithm_cls(backbone, bench, params, optimizer={"name": "sgd", "lr": 0.1})
    trainer = ContinualTrainer(algorithm, epochs_per_task=2, batch_size=16, device="cpu", seed=seed)
    trainer.fit()
    return trainer, backbone


def test_zero_strength_is_plain_sequential_training() -> None:
    from clgym_core import Algorithm

    class Plain(Algorithm):
        """Plain sequential training."""

        name = "plain"

    si_trainer, si_backbone = _run(SynapticIntelligence, {"strength": 0.0})
    plain_trainer, plain_backbone = _run(Plain, {})
    assert si_trainer.accuracy_matrix == plain_trainer.accuracy_matrix
    for a, b in zip(si_backbone.state_dict().values(), plain_backbone.state_dict().values()):
        assert torch.equal(a, b)


def test_state_dict_rejects_foreign_keys() -> None:
    si, _, _ = make_si()
    with pytest.raises(Exception, match="unexpected keys in the saved state: fisher"):
        si.load_state_dict({"fisher": torch.zeros(3)})
