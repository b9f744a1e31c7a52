"""ER-ACE: the incoming loss sees only the batch's classes, the replayed loss every class seen so far."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clgym_core.data import Batch
from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.er_ace import ERACE


def _bias_grad_after_step(alg, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.0)  # the step leaves weights (and .grad) as they are
    loss = alg.train_step(batch, optimizer)
    return loss, alg.backbone.head.linear.bias.grad.clone()


def test_incoming_loss_only_reaches_the_classes_in_the_batch(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg = ERACE(backbone_for(bench), bench, {"memory_size": 50})
    batch = bench.load_train(2).batch(slice(0, 20))  # classes 2 and 3 of six
    loss, grad = _bias_grad_after_step(alg, batch)
    assert torch.count_nonzero(grad[[0, 1, 4, 5]]) == 0 and torch.count_nonzero(grad[[2, 3]]) == 2
    with torch.no_grad():
        logits = alg.backbone(batch.inputs)
        expected = F.cross_entropy(logits[:, 2:4], batch.targets - 2)
    torch.testing.assert_close(loss, expected)
    # Plain cross-entropy would push the absent classes down: the check above can fail.
    alg.backbone.zero_grad()
    F.cross_entropy(alg.backbone(batch.inputs), batch.targets).backward()
    assert torch.count_nonzero(alg.backbone.head.linear.bias.grad[[0, 1, 4, 5]]) == 4


def test_replay_loss_covers_every_seen_class(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg = ERACE(backbone_for(bench), bench, {"memory_size": 40, "replay_batch_size": 40})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for task in (1, 2):
        for batch in bench.load_train(task).batches(20):
            alg.train_step(batch, optimizer)
    assert alg.seen_classes.tolist() == [True] * 4 + [False] * 2
    stored = set(alg.buffer.targets[:40].tolist())
    assert stored <= {0, 1, 2, 3} and len(stored) >= 3
    # An incoming batch of class 4 only: replay (the whole buffer: 40 rows) brings the old classes.
    task3 = bench.load_train(3)
    batch = task3.batch(torch.nonzero(task3.targets == 4).flatten()[:10])
    with torch.no_grad():
        replay_logits = alg.backbone(alg.buffer.inputs[:40])
        incoming = F.cross_entropy(alg.backbone(batch.inputs)[:, 4:5], batch.targets - 4)  # one class: zero
        seen = torch.tensor([True] * 5 + [False])  # classes 0..4 after this batch
        replayed = F.cross_entropy(replay_logits.masked_fill(~seen, torch.finfo(replay_logits.dtype).min),
                                   alg.buffer.targets[:40])
    loss, grad = _bias_grad_after_step(alg, batch)
    torch.testing.assert_close(loss, incoming + replayed)
    assert grad[5] == 0  # never seen: masked everywhere
    assert torch.count_nonzero(grad[:4]) == 4  # old classes absent from the batch still learn through replay


def test_er_ace_needs_classes(blobs, backbone_for):
    bench = blobs()
    bench.problem = "regression"
    with pytest.raises(SpecError, match="er_reservoir"):
        ERACE(backbone_for(bench), bench)


def test_er_ace_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(ERACE, {"memory_size": 60})


class TestERACEConformance(AlgorithmConformance):
    component = ERACE
    params = {"memory_size": 12, "replay_batch_size": 8}
