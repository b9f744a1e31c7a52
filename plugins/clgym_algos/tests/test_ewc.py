"""EWC: the penalty and its gradient, the per-example Fisher, one anchor per task, and less forgetting."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.ewc import EWC
from clgym_algos.flat import FlatParams


def _trained_ewc(blobs, backbone_for, **params) -> EWC:
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"lambda": 7.0, "fisher_examples": 64, **params})
    alg.train_task_end(1)
    return alg


def test_penalty_is_zero_at_the_anchor_and_its_gradient_is_lambda_f_delta(blobs, backbone_for):
    alg = _trained_ewc(blobs, backbone_for)
    anchor, fisher = alg.anchors[0], alg.fishers[0]
    assert fisher.min() >= 0 and fisher.sum() > 0
    assert alg.penalty(anchor).item() == 0.0
    assert torch.count_nonzero(alg.penalty_gradient(anchor)) == 0

    theta = (anchor + 0.3 * torch.randn_like(anchor)).requires_grad_(True)
    value = alg.penalty(theta)
    (autograd,) = torch.autograd.grad(value, theta)
    expected = 7.0 * fisher * (theta.detach() - anchor)
    torch.testing.assert_close(autograd, expected)
    torch.testing.assert_close(alg.penalty_gradient(theta.detach()), expected)
    torch.testing.assert_close(value.detach(), 0.5 * 7.0 * (fisher * (theta.detach() - anchor) ** 2).sum())


def _manual_fisher(backbone, data, kind: str) -> torch.Tensor:
    """The diagonal Fisher with a Python loop over examples: the slow reference."""
    backbone.eval()
    flat = FlatParams(backbone)
    total = torch.zeros(flat.numel)
    for i in range(len(data)):
        x, y, t = data.inputs[i : i + 1], data.targets[i : i + 1], data.task_ids[i : i + 1]
        log_probs = F.log_softmax(backbone(x, t), dim=1)[0]
        classes = range(log_probs.shape[0]) if kind == "exact" else [int(y)]
        for c in classes:
            backbone.zero_grad()
            log_probs[c].backward(retain_graph=True)
            weight = log_probs[c].exp().item() if kind in ("exact", "empirical_weighted") else 1.0
            total += weight * flat.grads() ** 2
    return total / len(data)


@pytest.mark.parametrize("kind", ["empirical", "exact", "empirical_weighted"])
@pytest.mark.parametrize("multi_head", [False, True])
def test_fisher_matches_a_per_example_loop(blobs, backbone_for, kind, multi_head):
    bench = blobs(seed=1, multi_head=multi_head)
    backbone = backbone_for(bench, seed=1)
    alg = EWC(backbone, bench, {"fisher_examples": 24, "fisher": kind})
    from clgym_algos.memory import draw_train_examples

    data = draw_train_examples(bench, 2, 24, "ewc_fisher")  # the examples compute_fisher draws
    assert set(data.task_ids.tolist()) == {2}
    fisher = alg.compute_fisher(2)
    torch.testing.assert_close(fisher, _manual_fisher(backbone, data, kind), rtol=1e-4, atol=1e-8)
    if kind == "empirical_weighted":  # each term scaled by p(y|x) < 1: below the plain empirical Fisher
        plain = EWC(backbone, bench, {"fisher_examples": 24}).compute_fisher(2)
        assert (fisher <= plain + 1e-9).all() and fisher.sum() < plain.sum()
    if multi_head:
        # Task 2's examples only reach head 2: the other heads' rows get no Fisher.
        head = backbone.head.linear.weight.numel()
        head_fisher = fisher[-(head + 6) : -6].view(6, -1)  # 3 heads x 2 outputs, bias excluded
        assert head_fisher[2:4].sum() > 0 and head_fisher[[0, 1, 4, 5]].sum() == 0


def test_sampled_fisher_uses_model_labels(blobs, backbone_for):
    torch.manual_seed(0)
    alg = _trained_ewc(blobs, backbone_for, fisher="sample")
    assert alg.fishers[0].sum() > 0


def test_train_step_adds_the_penalty_gradient(blobs, backbone_for):
    alg = _trained_ewc(blobs, backbone_for)
    flat = alg.flat
    flat.set_values(flat.values() + 0.05 * torch.randn(flat.numel))  # away from the anchor
    batch = alg.benchmark.load_train(2).batch(slice(0, 20))
    theta = flat.values()
    alg.backbone.zero_grad()
    alg.training_loss(batch).backward()
    task_grad = flat.grads()
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.5)
    loss = alg.train_step(batch, optimizer)
    applied = (theta - flat.values()) / 0.5
    torch.testing.assert_close(applied, task_grad + 7.0 * alg.fishers[0] * (theta - alg.anchors[0]))
    assert loss.item() > alg.penalty(theta).item() > 0  # the reported loss includes the penalty


def test_reported_penalty_from_running_sums_equals_the_exact_penalty(run):
    _, alg = run(EWC, {"lambda": 100.0, "fisher_examples": 100}, epochs=1)
    assert len(alg.tasks) == 2  # two anchors, so the expansion over tasks is exercised
    theta = alg.flat.values() + 0.05 * torch.randn(alg.flat.numel)
    torch.testing.assert_close(alg._reported_penalty(theta), alg.penalty(theta), rtol=1e-4, atol=1e-6)
    assert alg._reported_penalty(alg.anchors[0]) >= 0


def test_separate_mode_keeps_every_past_task(run, weights_after_task):
    weights = weights_after_task()
    _, alg = run(EWC, {"lambda": 100.0, "fisher_examples": 100}, callbacks=[weights], epochs=2)
    assert alg.tasks == [1, 2]  # nothing follows task 3, so no anchor for it
    assert alg.fishers.shape == alg.anchors.shape == (2, alg.flat.numel)
    torch.testing.assert_close(alg.anchors[0], weights.after[1], rtol=0, atol=0)
    torch.testing.assert_close(alg.anchors[1], weights.after[2], rtol=0, atol=0)


def test_online_mode_decays_one_running_fisher(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"fisher_examples": 32, "mode": "online", "gamma": 0.5})
    first = alg.compute_fisher(1)
    alg.train_task_end(1)
    alg.flat.set_values(alg.flat.values() + 0.1 * torch.randn(alg.flat.numel))
    second = alg.compute_fisher(2)
    alg.train_task_end(2)
    assert alg.fishers.shape[0] == 1 and alg.tasks == [2]
    torch.testing.assert_close(alg.fishers[0], 0.5 * first + second)
    torch.testing.assert_close(alg.anchors[0], alg.flat.values())


def test_online_penalty_weighs_the_running_fisher_by_gamma(blobs, backbone_for):
    """Schwarz et al. 2018 Eq. 8: the penalty after task t uses gamma F*_t, the newest Fisher included."""
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"lambda": 3.0, "fisher_examples": 32, "mode": "online", "gamma": 0.5})
    alg.train_task_end(1)
    anchor, running = alg.anchors[0], alg.fishers[0]
    theta = anchor + 0.2 * torch.randn_like(anchor)
    torch.testing.assert_close(alg.penalty(theta), 0.5 * 3.0 * (0.5 * running * (theta - anchor) ** 2).sum())
    torch.testing.assert_close(alg.penalty_gradient(theta), 3.0 * 0.5 * running * (theta - anchor))
    separate = EWC(alg.backbone, bench, {"lambda": 3.0, "fisher_examples": 32})
    separate.load_state_dict(alg.state_dict())
    torch.testing.assert_close(alg.penalty(theta), 0.5 * separate.penalty(theta))  # gamma = 0.5 halves it


def _their_running_fisher(grads: list[torch.Tensor], every: int, decay: float) -> torch.Tensor:
    """The A-GEM code's schedule written out: update before adding the batch whose index + 1 is a multiple of every."""
    running, block = torch.zeros_like(grads[0]), torch.zeros_like(grads[0])
    for i, g in enumerate(grads):
        if (i + 1) % every == 0:
            running = (1 - decay) * running + decay * block / every
            block = torch.zeros_like(block)
        block = block + g**2
    return running


def test_agem_variant_running_fisher_follows_their_schedule(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"variant": "agem", "running_every": 3, "running_decay": 0.9})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    grads = []
    for batch in bench.load_train(1).batches(20):  # 10 batches
        alg.backbone.zero_grad()
        alg.training_loss(batch).backward()
        grads.append(alg.flat.grads())
        alg.train_step(batch, optimizer)
    expected = _their_running_fisher(grads, 3, 0.9)
    assert expected.sum() > 0
    torch.testing.assert_close(alg.running_fisher, expected)


def test_agem_variant_normalises_keeps_one_anchor_and_drops_the_half(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"lambda": 4.0, "variant": "agem", "running_every": 2})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for task in (1, 2):
        for batch in bench.load_train(task).batches(20):
            alg.train_step(batch, optimizer)
        running = alg.running_fisher.clone()
        alg.train_task_end(task)
    fisher, anchor = alg.fishers[0], alg.anchors[0]
    assert alg.fishers.shape[0] == 1 and alg.tasks == [2]  # one anchor: the latest weights
    torch.testing.assert_close(anchor, alg.flat.values())
    assert fisher.min().item() == 0.0 and abs(fisher.max().item() - 1.0) < 1e-6
    torch.testing.assert_close(fisher, (running - running.min()) / (running.max() - running.min()))
    theta = anchor + 0.1 * torch.randn_like(anchor)
    torch.testing.assert_close(alg.penalty(theta), 4.0 * (fisher * (theta - anchor) ** 2).sum())
    torch.testing.assert_close(alg.penalty_gradient(theta), 2 * 4.0 * fisher * (theta - anchor))


def test_agem_variant_accumulates_the_unregularised_gradient(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = EWC(backbone_for(bench), bench, {"lambda": 50.0, "variant": "agem"})
    alg.train_task_end(1)  # a (zero) Fisher and an anchor exist
    alg.fishers = torch.ones_like(alg.fishers)
    alg._refresh_sums()
    alg.flat.set_values(alg.flat.values() + 0.3)  # far from the anchor: a large penalty gradient
    batch = bench.load_train(2).batch(slice(0, 20))
    alg.backbone.zero_grad()
    alg.training_loss(batch).backward()
    data_grad = alg.flat.grads()
    alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.0))
    torch.testing.assert_close(alg._squared_sum, data_grad**2)


def test_agem_variant_rejects_online_mode(blobs, backbone_for):
    bench = blobs()
    with pytest.raises(SpecError, match="ewc.params.mode"):
        EWC(backbone_for(bench), bench, {"variant": "agem", "mode": "online"})


def test_agem_variant_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(EWC, {"lambda": 50.0, "variant": "agem"}, margin=10.0)


def test_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(EWC, {"lambda": 5e3, "fisher_examples": 200})


def test_online_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(EWC, {"lambda": 5e3, "fisher_examples": 200, "mode": "online", "gamma": 0.9})


def test_state_dict_round_trips_through_weights_only_load(blobs, backbone_for):
    alg = _trained_ewc(blobs, backbone_for)
    alg.train_task_end(2)
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    bench = blobs(seed=0)
    fresh = EWC(backbone_for(bench), bench, {"lambda": 7.0})
    fresh.load_state_dict(state)
    theta = torch.randn(alg.flat.numel)
    assert fresh.tasks == [1, 2]
    torch.testing.assert_close(fresh.penalty(theta), alg.penalty(theta))
    torch.testing.assert_close(fresh.penalty_gradient(theta), alg.penalty_gradient(theta))


def test_lambda_is_spelled_lambda_in_specs(blobs, backbone_for):
    bench = blobs()
    assert EWC(backbone_for(bench), bench, {"lambda": 5}).params.lambda_ == 5
    assert EWC(backbone_for(bench), bench).params.lambda_ == 100.0
    with pytest.raises(SpecError, match="ewc.params.lamda: unknown parameter"):
        EWC(backbone_for(bench), bench, {"lamda": 5})


class TestEWCConformance(AlgorithmConformance):
    component = EWC
    params = {"lambda": 10.0, "fisher_examples": 32}
