"""DER and DER++: buffered logits are those of the step that stored them, reservoir memory, the loss terms."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from clgym_core.testing import AlgorithmConformance

from clgym_algos.der import DER, DERPP
from clgym_algos.er import ReservoirBuffer


def _stream_with_logits(alg, task: int, batch_size: int = 20):
    """Train one pass over ``task``; returns every example's inputs and the logits the network had for it
    just before the step that saw it (computed independently on a copy of the weights)."""
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    inputs, logits = [], []
    for batch in alg.benchmark.load_train(task).batches(batch_size):
        before = copy.deepcopy(alg.backbone)
        with torch.no_grad():
            logits.append(before(batch.inputs, batch.task_ids))
        inputs.append(batch.inputs)
        alg.train_step(batch, optimizer)
    return torch.cat(inputs), torch.cat(logits)


@pytest.mark.parametrize("cls", [DER, DERPP])
def test_buffer_keeps_the_logits_seen_when_each_example_was_stored(cls, blobs, backbone_for):
    bench = blobs(seed=0)
    alg = cls(backbone_for(bench), bench, {"memory_size": 50, "replay_batch_size": 10})
    assert isinstance(alg.buffer, ReservoirBuffer)
    torch.manual_seed(0)
    inputs, logits = _stream_with_logits(alg, 1)
    inputs2, logits2 = _stream_with_logits(alg, 2)
    inputs, logits = torch.cat([inputs, inputs2]), torch.cat([logits, logits2])
    buffer = alg.buffer
    assert len(buffer) == 50 and buffer.seen == 400  # reservoir: capacity kept, every example offered
    stored_inputs, stored_logits = buffer.inputs[:50], buffer.extras["logits"][:50]
    # Which stream example sits in each slot (inputs are distinct real vectors).
    position = torch.cdist(stored_inputs, inputs).argmin(dim=1)
    torch.testing.assert_close(stored_inputs, inputs[position])
    torch.testing.assert_close(stored_logits, logits[position])
    assert position.max() >= 200  # the reservoir holds examples of both tasks
    assert (position < 200).any()
    with torch.no_grad():
        now = alg.backbone(stored_inputs, buffer.task_ids[:50])
    assert not torch.allclose(now, stored_logits, atol=1e-3)  # not today's logits: the network moved on


def _fixed_replay(alg, rows: torch.Tensor) -> None:
    alg.buffer.sample_rows = lambda k: rows


def test_der_loss_is_ce_plus_alpha_logit_mse_and_derpp_adds_the_label_term(blobs, backbone_for):
    bench = blobs(seed=1)
    batches = list(bench.load_train(1).batches(20))
    losses = {}
    for cls, params in ((DER, {"alpha": 0.7}), (DERPP, {"alpha": 0.7, "beta": 0.4})):
        alg = cls(backbone_for(bench, seed=1), bench, {"memory_size": 100, **params})
        optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.1)
        for batch in batches[:3]:
            alg.train_step(batch, optimizer)
        rows = torch.tensor([0, 5, 17, 42, 59])
        _fixed_replay(alg, rows)
        batch = batches[3]
        with torch.no_grad():
            ce = F.cross_entropy(alg.backbone(batch.inputs), batch.targets)
            replay_out = alg.backbone(alg.buffer.inputs[rows])
            mse = F.mse_loss(replay_out, alg.buffer.extras["logits"][rows])
            label = F.cross_entropy(replay_out, alg.buffer.targets[rows])
        losses[cls] = (alg.train_step(batch, optimizer), ce, mse, label)
    loss, ce, mse, label = losses[DER]
    assert mse > 0 and label > 0
    torch.testing.assert_close(loss, ce + 0.7 * mse)
    loss, ce, mse, label = losses[DERPP]
    torch.testing.assert_close(loss, ce + 0.7 * mse + 0.4 * label)


def test_derpp_draws_its_label_batch_independently(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = DERPP(backbone_for(bench), bench, {"memory_size": 100, "replay_batch_size": 8})
    draws = []
    original = alg.buffer.sample_rows

    def spy(k):
        rows = original(k)
        draws.append(rows)
        return rows

    alg.buffer.sample_rows = spy
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.1)
    torch.manual_seed(0)
    for batch in list(bench.load_train(1).batches(20))[:6]:
        alg.train_step(batch, optimizer)
    assert len(draws) == 10  # two draws per step once the buffer holds anything (steps 2..6)
    assert any(not torch.equal(a, b) for a, b in zip(draws[::2], draws[1::2]))


def test_der_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(DER, {"memory_size": 60, "alpha": 1.0})


def test_derpp_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(DERPP, {"memory_size": 60, "alpha": 0.5, "beta": 1.0})


class TestDERConformance(AlgorithmConformance):
    component = DER
    params = {"memory_size": 12, "replay_batch_size": 8}


class TestDERPPConformance(AlgorithmConformance):
    component = DERPP
    params = {"memory_size": 12, "replay_batch_size": 8}
