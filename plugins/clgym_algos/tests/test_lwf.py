"""LwF: distillation against the frozen previous model, with temperature, over old heads or old classes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.lwf import LwF


def _train(alg, task: int, lr: float = 0.05, end: bool = True) -> None:
    alg.current_task = task
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=lr)
    for batch in alg.benchmark.load_train(task).batches(20):
        alg.train_step(batch, optimizer)
    if end:
        alg.train_task_end(task)


def _weights(module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def _soft_ce(new: torch.Tensor, old: torch.Tensor, t: float) -> torch.Tensor:
    return -(F.softmax(old / t, dim=1) * F.log_softmax(new / t, dim=1)).sum(1)


def test_previous_model_is_a_frozen_copy_that_never_changes(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = LwF(backbone_for(bench), bench)
    _train(alg, 1)
    after_task_1 = _weights(alg.backbone)
    previous = alg.previous.module
    assert previous is not alg.backbone and not previous.training
    assert all(not p.requires_grad for p in previous.parameters())
    _train(alg, 2, end=False)
    assert not torch.equal(_weights(alg.backbone), after_task_1)  # the network learned task 2
    assert torch.equal(_weights(alg.previous.module), after_task_1)  # the previous model did not move
    assert all(p.grad is None for p in alg.previous.module.parameters())
    alg.train_task_end(2)  # now the previous model is the one after task 2
    assert torch.equal(_weights(alg.previous.module), _weights(alg.backbone))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_loss_is_ce_plus_alpha_soft_cross_entropy_at_temperature(blobs, backbone_for, temperature):
    bench = blobs(seed=0)
    alg = LwF(backbone_for(bench), bench, {"alpha": 0.6, "temperature": temperature})
    _train(alg, 1)
    alg.current_task = 2
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    batches = list(bench.load_train(2).batches(20))
    for batch in batches[:3]:
        alg.train_step(batch, optimizer)
    batch = batches[3]
    with torch.no_grad():
        new, old = alg.backbone(batch.inputs), alg.previous.module(batch.inputs)
        expected = F.cross_entropy(new, batch.targets) + 0.6 * _soft_ce(new, old, temperature).mean()
    assert not torch.allclose(new, old)  # the two models differ, so the distillation term is not trivial
    torch.testing.assert_close(alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.0)), expected)


def test_multi_head_distils_every_old_head(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True)
    alg = LwF(backbone_for(bench), bench, {"temperature": 2.0})
    _train(alg, 1)
    _train(alg, 2)
    alg.current_task = 3
    batch = bench.load_train(3).batch(slice(0, 20))
    outputs = alg.forward(batch)
    with torch.no_grad():
        expected = sum(
            _soft_ce(alg.backbone(batch.inputs, torch.full_like(batch.task_ids, h)),
                     alg.previous.module(batch.inputs, torch.full_like(batch.task_ids, h)), 2.0)
            for h in (1, 2)
        ).mean()
    torch.testing.assert_close(alg.distillation_loss(batch, outputs), expected)


def test_class_incremental_distils_old_classes_only(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg = LwF(backbone_for(bench), bench, {"temperature": 2.0})
    _train(alg, 1)
    assert alg.old_classes.tolist() == [True, True, False, False, False, False]
    alg.current_task = 2
    batch = bench.load_train(2).batch(slice(0, 20))
    outputs = alg.forward(batch)
    with torch.no_grad():
        expected = _soft_ce(outputs[:, :2], alg.previous.module(batch.inputs)[:, :2], 2.0).mean()
    loss = alg.distillation_loss(batch, outputs)
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, outputs)
    assert torch.count_nonzero(grad[:, 2:]) == 0 and torch.count_nonzero(grad[:, :2]) > 0


def _head_rows(alg) -> torch.Tensor:
    linear = alg.backbone.head.linear
    return torch.cat([linear.weight, linear.bias.unsqueeze(1)], 1).detach().clone()


def test_warm_up_trains_only_the_new_classes_units_on_frozen_features(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg = LwF(backbone_for(bench), bench, {"warmup_epochs": 3, "warmup_lr": 0.1})
    assert alg.prepare_train_data(1) is not None and alg.old_classes.sum() == 0  # task 1: no warm-up
    _train(alg, 1)
    features, rows = _weights(alg.backbone.features), _head_rows(alg)
    data = bench.load_train(2)
    new = data.targets >= 2

    def new_class_loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(alg.backbone(data.inputs[new])[:, 2:4], data.targets[new] - 2))

    before = new_class_loss()
    alg.current_task = 2
    alg.prepare_train_data(2)
    after = _head_rows(alg)
    assert torch.equal(_weights(alg.backbone.features), features)  # frozen features
    assert torch.equal(after[[0, 1, 4, 5]], rows[[0, 1, 4, 5]])  # old and future classes' units untouched
    assert not torch.equal(after[2:4], rows[2:4])
    assert new_class_loss() < before
    assert alg.backbone.training and all(p.grad is None for p in alg.backbone.parameters())


def test_warm_up_with_heads_moves_only_the_new_head_and_skips_shared_classes(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True)
    alg = LwF(backbone_for(bench), bench, {"warmup_epochs": 2})
    _train(alg, 1)
    rows, size = _head_rows(alg), bench.head_size
    alg.current_task = 2
    alg.prepare_train_data(2)
    after = _head_rows(alg)
    assert not torch.equal(after[size:2 * size], rows[size:2 * size])  # task 2's head
    assert torch.equal(after[:size], rows[:size]) and torch.equal(after[2 * size:], rows[2 * size:])
    shared = blobs(seed=0)  # one head, every task the same classes: no new units, no warm-up
    alg = LwF(backbone_for(shared), shared, {"warmup_epochs": 2})
    _train(alg, 1)
    before = _weights(alg.backbone)
    alg.current_task = 2
    alg.prepare_train_data(2)
    assert torch.equal(_weights(alg.backbone), before)


def test_warm_up_needs_features_and_a_head(blobs, featureless):
    with pytest.raises(SpecError, match="warmup_epochs needs a backbone with `features` and a `head`"):
        LwF(featureless, blobs(), {"warmup_epochs": 1})


def test_lwf_needs_classes(blobs, backbone_for):
    bench = blobs()
    bench.problem = "regression"
    with pytest.raises(SpecError, match="classification"):
        LwF(backbone_for(bench), bench)


def test_lwf_forgets_less_than_finetune_with_heads(run):
    from clgym_algos.finetune import Finetune
    from clgym_core.metrics import average_forgetting

    for seed in (0, 1):
        ours = average_forgetting(run(LwF, {"alpha": 1.0}, benchmark={"multi_head": True}, seed=seed)[0].accuracy_matrix)
        plain = average_forgetting(run(Finetune, benchmark={"multi_head": True}, seed=seed)[0].accuracy_matrix)
        assert ours <= plain, (seed, ours, plain)


class TestLwFConformance(AlgorithmConformance):
    component = LwF
    params = {"alpha": 1.0, "temperature": 2.0}
