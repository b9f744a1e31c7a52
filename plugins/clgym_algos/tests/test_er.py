"""Experience replay: the ring buffer's capacity and per-class FIFO order, reservoir sampling, replay, forgetting."""

from __future__ import annotations

import io
from collections import deque

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.er import ERReservoir, ERRing, ReservoirBuffer, RingBuffer


def _stream(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.arange(n, dtype=torch.float32).unsqueeze(1)  # each example's input is its stream position
    return ids, torch.randint(0, classes, (n,), generator=gen)


def _batches(n: int, seed: int) -> list[slice]:
    gen, start, out = torch.Generator().manual_seed(seed), 0, []
    while start < n:
        size = int(torch.randint(1, 26, (1,), generator=gen))  # often more than a ring's slots of one class
        out.append(slice(start, min(n, start + size)))
        start += size
    return out


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
def test_ring_buffer_keeps_the_last_examples_of_each_class_in_fifo_slots(device):
    # On CUDA this also checks that no two writes of one batch race for a slot.
    per_class, classes = 3, 4
    for seed in range(5):
        inputs, targets = _stream(300, classes, seed)
        inputs, targets = inputs.to(device), targets.to(device)
        ring = RingBuffer(per_class, classes)
        ring.start_task(1)
        reference = [deque(maxlen=per_class) for _ in range(classes)]
        seen = [0] * classes
        for part in _batches(300, seed):
            ring.add(inputs[part], targets[part])
            for x, y in zip(inputs[part, 0].tolist(), targets[part].tolist()):
                reference[y].append(x)
                seen[y] += 1
            for c in range(classes):
                # FIFO: the k-th example of class c sits in slot k mod per_class until k + per_class arrives.
                expected = [0.0] * per_class
                for k in range(max(0, seen[c] - per_class), seen[c]):
                    expected[k % per_class] = reference[c][k - max(0, seen[c] - per_class)]
                assert ring.ring(c)[:, 0].tolist() == expected, (seed, c)
        assert len(ring.filled()) == sum(min(s, per_class) for s in seen)
        ring.end_task()
        assert len(ring) == classes * per_class  # capacity kept
        assert sorted(ring.inputs[:, 0].tolist()) == sorted(x for d in reference for x in d)
        assert ring.task_ids.tolist() == [1] * len(ring)


def test_ring_buffer_freezes_each_task_and_keeps_partial_rings():
    ring = RingBuffer(per_class=4, num_classes=3)
    ring.start_task(1)
    ring.add(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0, 0, 2]))
    ring.end_task()
    ring.start_task(2)
    ring.add(torch.tensor([[7.0]]), torch.tensor([1]))
    ring.end_task()
    assert ring.inputs[:, 0].tolist() == [1.0, 2.0, 3.0, 7.0]
    assert ring.targets.tolist() == [0, 0, 2, 1] and ring.task_ids.tolist() == [1, 1, 1, 2]


def test_reservoir_fills_in_order_then_never_exceeds_capacity():
    buffer = ReservoirBuffer(capacity=10)
    inputs, targets = _stream(60, 2, 0)
    buffer.add(inputs[:7], targets[:7], torch.ones(7, dtype=torch.long))
    assert len(buffer) == 7 and buffer.inputs[:7, 0].tolist() == list(range(7))
    torch.manual_seed(0)
    for part in _batches(53, 1):
        part = slice(part.start + 7, part.stop + 7)
        buffer.add(inputs[part], targets[part], torch.full((part.stop - part.start,), 2))
        assert len(buffer) == 10
        kept = buffer.inputs[:10, 0]
        assert kept.unique().numel() == 10 and kept.max() < buffer.seen  # distinct examples already seen
        assert (buffer.targets[:10] == targets[kept.long()]).all()  # labels travel with their inputs
    assert buffer.seen == 60


def test_reservoir_keeps_every_example_with_equal_probability():
    n, capacity, trials = 100, 10, 300
    inputs, targets = _stream(n, 2, 0)
    counts = torch.zeros(n)
    torch.manual_seed(0)
    for trial in range(trials):
        buffer = ReservoirBuffer(capacity)
        for part in _batches(n, trial):
            buffer.add(inputs[part], targets[part], torch.ones(part.stop - part.start, dtype=torch.long))
        counts[buffer.inputs[:capacity, 0].long()] += 1
    frequency = counts / trials  # each should be capacity / n = 0.1
    assert abs(frequency[:50].mean() - 0.1) < 0.015 and abs(frequency[50:].mean() - 0.1) < 0.015
    assert abs(frequency[:10].mean() - 0.1) < 0.03 and abs(frequency[-10:].mean() - 0.1) < 0.03


class _SizeSpy:
    """Records the size of every batch the criterion sees."""

    def __init__(self, alg) -> None:
        self.sizes: list[int] = []
        original = alg.criterion

        def criterion(outputs, targets):
            self.sizes.append(int(targets.shape[0]))
            return original(outputs, targets)

        alg.criterion = criterion


def test_ring_replays_completed_tasks_joined_to_the_batch(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True)
    alg = ERRing(backbone_for(bench), bench, {"memory_per_class": 4, "replay_batch_size": 6})
    spy = _SizeSpy(alg)
    optimizer = alg.prepare_optimizer(1)
    for batch in bench.load_train(1).batches(20):
        alg.train_step(batch, optimizer)
    assert spy.sizes == [20] * 10  # nothing to replay during task 1
    alg.train_task_end(1)
    assert len(alg.buffer) == 8 and alg.buffer.task_ids.tolist() == [1] * 8
    train_1 = bench.load_train(1)
    last = {c: train_1.inputs[train_1.targets == c][-4:] for c in (0, 1)}  # the stream's last 4 per class
    for c in (0, 1):
        stored = alg.buffer.inputs[alg.buffer.targets == c]
        assert sorted(stored[:, 0].tolist()) == sorted(last[c][:, 0].tolist())
    optimizer = alg.prepare_optimizer(2)
    spy.sizes.clear()
    for batch in bench.load_train(2).batches(20):
        alg.train_step(batch, optimizer)
    assert spy.sizes == [26] * 10
    alg.train_task_end(2)
    assert alg.buffer.task_ids.tolist() == [1] * 8 + [2] * 8


def test_reservoir_replays_from_the_first_step(blobs, backbone_for):
    bench = blobs(seed=0)
    alg = ERReservoir(backbone_for(bench), bench, {"memory_size": 30, "replay_batch_size": 8})
    spy = _SizeSpy(alg)
    optimizer = alg.prepare_optimizer(1)
    for batch in bench.load_train(1).batches(20):
        alg.train_step(batch, optimizer)
    assert spy.sizes == [20] + [28] * 9
    assert len(alg.buffer) == 30 and alg.buffer.seen == 200


def test_defaults_follow_the_benchmark_memory_size(blobs, backbone_for):
    bench = blobs(per_task_memory_examples=10)
    ring = ERRing(backbone_for(bench), bench)
    ring.prepare_optimizer(1)
    assert ring.buffer.per_class == 5  # 10 examples over the task's 2 classes
    assert ERReservoir(backbone_for(bench), bench).buffer.capacity == 30
    assert ERRing(backbone_for(bench), bench, {"memory_per_class": 3}).slots_per_class(1) == 3
    bench = blobs()
    assert ERRing(backbone_for(bench), bench).slots_per_class(1) == 1
    assert ERReservoir(backbone_for(bench), bench).buffer.capacity == 6


def test_ring_needs_classes(blobs, backbone_for):
    bench = blobs()
    bench.problem = "regression"
    try:
        ERRing(backbone_for(bench), bench)
    except SpecError as error:
        assert "er_reservoir" in str(error)
    else:
        raise AssertionError("er_ring accepted a regression benchmark")


def test_ring_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(ERRing, {"memory_per_class": 10})


def test_reservoir_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(ERReservoir, {"memory_size": 60})


def test_state_dicts_round_trip_through_weights_only_load(run):
    for cls, params in ((ERRing, {"memory_per_class": 3}), (ERReservoir, {"memory_size": 12})):
        _, alg = run(cls, params, epochs=1)
        buffer = io.BytesIO()
        torch.save(alg.state_dict(), buffer)
        buffer.seek(0)
        fresh = cls(alg.backbone, alg.benchmark, params)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert len(fresh.buffer) == len(alg.buffer) > 0
        torch.testing.assert_close(fresh.buffer.inputs, alg.buffer.inputs)
        torch.testing.assert_close(fresh.buffer.task_ids, alg.buffer.task_ids)


class TestERRingConformance(AlgorithmConformance):
    component = ERRing
    params = {"memory_per_class": 2, "replay_batch_size": 8}


class TestERReservoirConformance(AlgorithmConformance):
    component = ERReservoir
    params = {"memory_size": 12, "replay_batch_size": 8}
