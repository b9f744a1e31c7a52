"""MAS: label-free importance from the squared output norm, accumulated over tasks, and its penalty."""

from __future__ import annotations

import pytest
import torch

from clgym_core.testing import AlgorithmConformance

from clgym_algos.flat import FlatParams
from clgym_algos.mas import MAS
from clgym_algos.memory import draw_train_examples


def _manual_importance(backbone, data) -> torch.Tensor:
    """Mean over examples of |d ||F(x)||^2 / d theta|, one example at a time (the slow reference); no labels."""
    backbone.eval()
    flat = FlatParams(backbone)
    total = torch.zeros(flat.numel)
    for i in range(len(data)):
        backbone.zero_grad()
        out = backbone(data.inputs[i : i + 1], data.task_ids[i : i + 1])
        out.pow(2).sum().backward()
        total += flat.grads().abs()
    return total / len(data)


@pytest.mark.parametrize("multi_head", [False, True])
def test_importance_is_the_mean_abs_gradient_of_the_squared_output_norm(blobs, backbone_for, multi_head):
    bench = blobs(seed=1, multi_head=multi_head)
    backbone = backbone_for(bench, seed=1)
    alg = MAS(backbone, bench, {"importance_examples": 24})
    importance = alg.compute_importance(2)
    data = draw_train_examples(bench, 2, 24, "mas_importance")
    torch.testing.assert_close(importance, _manual_importance(backbone, data), rtol=1e-4, atol=1e-8)
    assert importance.min() >= 0 and importance.sum() > 0


def test_importance_ignores_labels(blobs, backbone_for):
    bench = blobs(seed=1)
    alg = MAS(backbone_for(bench, seed=1), bench, {"importance_examples": 32})
    before = alg.compute_importance(1)
    data = bench.load_train(1)
    object.__setattr__(data, "targets", 1 - data.targets)  # flip every label in place
    torch.testing.assert_close(alg.compute_importance(1), before)


def test_importances_accumulate_over_tasks_with_the_latest_anchor(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = MAS(backbone_for(bench), bench, {"importance_examples": 32})
    computed = []
    original = alg.compute_importance
    alg.compute_importance = lambda task: computed.append(original(task)) or computed[-1]
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for task in (1, 2):
        for batch in bench.load_train(task).batches(20):
            alg.train_step(batch, optimizer)
        alg.train_task_end(task)
        torch.testing.assert_close(alg.anchor, FlatParams(alg.backbone).values())
    assert not torch.allclose(computed[0], computed[1])
    torch.testing.assert_close(alg.importance, computed[0] + computed[1])
    alg.train_task_end(3)  # the last task regularises nothing
    assert len(computed) == 2


def test_train_step_adds_the_penalty_gradient(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = MAS(backbone_for(bench), bench, {"lambda": 3.0, "importance_examples": 32})
    alg.train_task_end(1)
    flat = alg.flat
    flat.set_values(flat.values() + 0.05 * torch.randn(flat.numel))
    batch = bench.load_train(2).batch(slice(0, 20))
    theta = flat.values()
    alg.backbone.zero_grad()
    task_loss = alg.training_loss(batch)
    task_loss.backward()
    task_grad = flat.grads()
    loss = alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.0))
    delta = theta - alg.anchor
    torch.testing.assert_close(flat.grads(), task_grad + 2 * 3.0 * alg.importance * delta)
    torch.testing.assert_close(loss, task_loss.detach() + alg.penalty(theta))
    torch.testing.assert_close(alg.penalty(theta), 3.0 * (alg.importance * delta**2).sum())


def test_mas_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(MAS, {"lambda": 1.0}, margin=10.0)


class TestMASConformance(AlgorithmConformance):
    component = MAS
    params = {"lambda": 1.0, "importance_examples": 32}
