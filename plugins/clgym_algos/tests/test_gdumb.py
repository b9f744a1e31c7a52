"""GDumb: the greedy class-balanced memory, and retraining from scratch on the memory alone."""

from __future__ import annotations

import copy

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.flat import FlatParams
from clgym_algos.gdumb import GDumb, GreedyBalancedBuffer


def _offer(buffer, labels: list[int], batch_size: int, start: int = 0) -> None:
    """Offer examples whose input is their stream position, in batches."""
    labels_t = torch.tensor(labels)
    for i in range(0, len(labels), batch_size):
        part = labels_t[i : i + batch_size]
        ids = torch.arange(start + i, start + i + len(part), dtype=torch.float32).unsqueeze(1)
        buffer.add(ids, part, torch.ones_like(part), part)


def _stored(buffer) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for x, y in zip(buffer.inputs[: len(buffer), 0].tolist(), buffer.targets[: len(buffer)].tolist()):
        out.setdefault(y, []).append(int(x))
    return {y: sorted(v) for y, v in out.items()}


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_memory_fills_greedily_then_balances_classes(batch_size):
    torch.manual_seed(0)
    buffer = GreedyBalancedBuffer(capacity=30, num_keys=4)
    # 40 examples of class 0 first: the first 30 fill the memory in stream order, the rest are refused.
    _offer(buffer, [0] * 40, batch_size)
    assert len(buffer) == 30 and _stored(buffer) == {0: list(range(30))}
    # Classes 1 and 2 arrive interleaved, 20 each: each is admitted up to ceil(30 / 3) = 10, in stream order,
    # and class 0 gives up its slots at random.
    labels = [1, 2] * 20
    _offer(buffer, labels, batch_size, start=40)
    stored = _stored(buffer)
    assert buffer.counts.tolist() == [10, 10, 10, 0] and len(buffer) == 30
    firsts = {c: [40 + i for i, y in enumerate(labels) if y == c][:10] for c in (1, 2)}
    assert stored[1] == firsts[1] and stored[2] == firsts[2]
    assert set(stored[0]) <= set(range(30))
    assert buffer.keys[:30].bincount(minlength=4).tolist() == [10, 10, 10, 0]
    # A fourth class takes ceil(30/4) = 8 slots; the others are cut level by level (8 or 7 each).
    _offer(buffer, [3] * 12, batch_size, start=100)
    counts = buffer.counts.tolist()
    assert counts[3] == 8 and sum(counts) == 30 and sorted(counts[:3]) in ([7, 7, 8], [7, 8, 7], [7, 8, 8])


def test_batched_memory_matches_one_by_one_counts_on_a_random_stream():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 5, (300,), generator=gen)
    labels[:80] = 0  # an imbalanced start
    labels = labels.tolist()
    one, batched = GreedyBalancedBuffer(40, 5), GreedyBalancedBuffer(40, 5)
    torch.manual_seed(0)
    _offer(one, labels, 1)
    _offer(batched, labels, 10)
    for buffer in (one, batched):
        counts = buffer.counts.tolist()
        assert sum(counts) == 40 and max(counts) - min(counts) <= 1, counts  # balanced: 8 each
        stored = _stored(buffer)
        assert all(labels[x] == y for y, xs in stored.items() for x in xs)  # labels travel with their inputs


def test_retrains_from_scratch_on_the_memory_only(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = GDumb(backbone_for(bench), bench, {"memory_size": 40, "epochs": 3, "batch_size": 8})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    before = FlatParams(alg.backbone).values()
    for batch in bench.load_train(1).batches(20):
        alg.train_step(batch, optimizer)
    assert torch.equal(FlatParams(alg.backbone).values(), before)  # the stream only feeds the memory
    assert len(alg.buffer) == 40
    twin = copy.deepcopy(alg)
    seen_rows = []
    original = alg.training_loss

    def spy(batch):
        seen_rows.append(batch.inputs)
        return original(batch)

    alg.training_loss = spy
    FlatParams(twin.backbone).set_values(torch.randn(FlatParams(twin.backbone).numel))  # other starting weights
    torch.manual_seed(5)
    alg.train_task_end(1)
    torch.manual_seed(5)
    twin.train_task_end(1)
    # From scratch: where the weights were before does not matter.
    torch.testing.assert_close(FlatParams(alg.backbone).values(), FlatParams(twin.backbone).values())
    assert not torch.equal(FlatParams(alg.backbone).values(), before)
    memory = alg.buffer.inputs[:40]
    rows = torch.cat(seen_rows)
    assert len(rows) == 3 * 40 and (rows[:, None] == memory[None]).all(-1).any(1).all()  # memory rows only


def test_gdumb_needs_resettable_modules(blobs):
    from clgym_core.backbone import Backbone

    class Scaled(Backbone):
        name = "scaled"

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(2))

        def forward(self, x, task_ids=None):
            return x * self.scale

    with pytest.raises(SpecError, match="reset_parameters"):
        GDumb(Scaled(), blobs())


def test_multi_head_balances_task_classes(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True)
    alg = GDumb(backbone_for(bench), bench, {"memory_size": 30, "epochs": 2})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for task in (1, 2, 3):
        for batch in bench.load_train(task).batches(20):
            alg.train_step(batch, optimizer)
    assert alg.buffer.counts.tolist() == [5] * 6  # (task, class) pairs: six classes of 5


class TestGDumbConformance(AlgorithmConformance):
    component = GDumb
    params = {"memory_size": 96, "epochs": 20}
