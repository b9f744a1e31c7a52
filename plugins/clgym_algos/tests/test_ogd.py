"""OGD: an orthonormal basis of each task's output gradients, stored after that task, and projected steps."""

from __future__ import annotations

import io

import torch

from clgym_core.callback import Callback
from clgym_core.testing import AlgorithmConformance

from clgym_algos.flat import orthonormal_extend
from clgym_algos.ogd import OGD


def _ogd(blobs, backbone_for, **params) -> OGD:
    bench = blobs(seed=0, **params.pop("bench", {}))
    alg = OGD(backbone_for(bench), bench, {"examples_per_task": 30, **params})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for _ in range(3):
        for batch in bench.load_train(1).batches(20):
            alg.train_step(batch, optimizer)
    return alg


def _assert_orthonormal(basis: torch.Tensor) -> None:
    gram = basis @ basis.T
    torch.testing.assert_close(gram, torch.eye(basis.shape[0]), atol=1e-5, rtol=0)


def _residual(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Norm of each vector's part outside span(basis), relative to its norm."""
    rest = vectors - (vectors @ basis.T) @ basis
    return rest.norm(dim=1) / vectors.norm(dim=1)


def test_basis_is_orthonormal_and_spans_the_stored_gradients(blobs, backbone_for):
    alg = _ogd(blobs, backbone_for)
    directions = alg.directions(1)
    assert directions.shape == (30, alg.flat.numel)
    alg.train_task_end(1)
    assert alg.tasks_stored == [1]
    _assert_orthonormal(alg.basis)
    assert alg.basis.shape[0] == 30  # 30 examples, independent gradients
    assert _residual(directions, alg.basis).max() < 1e-4


def test_ground_truth_logit_directions_match_autograd(blobs, backbone_for):
    alg = _ogd(blobs, backbone_for, bench={"multi_head": True})
    sample = alg.sample_of(2)
    directions = alg.directions(2)
    alg.backbone.eval()
    for i in (0, 7, 29):
        alg.backbone.zero_grad()
        out = alg.backbone(sample.inputs[i : i + 1], sample.task_ids[i : i + 1])
        out[0, sample.targets[i]].backward()
        torch.testing.assert_close(directions[i], alg.flat.grads(), rtol=1e-5, atol=1e-6)
    head = alg.backbone.head.linear.weight.numel()
    by_head = directions[:, -(head + 6) : -6].reshape(30, 3, -1)  # task 2's logits live in head 2 only
    assert by_head[:, 1].abs().sum() > 0 and by_head[:, [0, 2]].abs().sum() == 0


def test_steps_are_orthogonal_to_every_stored_direction(blobs, backbone_for):
    alg = _ogd(blobs, backbone_for)
    alg.train_task_end(1)
    flat = alg.flat
    for batch in list(alg.benchmark.load_train(2).batches(20))[:5]:
        alg.backbone.zero_grad()
        alg.training_loss(batch).backward()
        raw = flat.grads()
        before = flat.values()
        alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.05))
        step = before - flat.values()
        assert (alg.basis @ raw).norm() > 0.05 * raw.norm()  # the raw gradient would have interfered
        assert (alg.basis @ step).norm() < 1e-4 * step.norm()
        assert (step / 0.05 - alg.project(raw)).norm() < 1e-4 * raw.norm()  # up to float round-off of the update


class _DirectionsAfterTask(Callback):
    name = "directions_after_task"

    def __init__(self, alg: OGD) -> None:
        super().__init__()
        self.alg = alg
        self.directions: dict[int, torch.Tensor] = {}
        self.rows: dict[int, int] = {}

    def on_task_end(self, trainer, task: int) -> None:
        self.directions[task] = self.alg.directions(task)
        self.rows[task] = 0 if self.alg.basis is None else self.alg.basis.shape[0]


def test_each_task_stores_its_own_directions_after_it(blobs, backbone_for):
    from clgym_core.trainer import ContinualTrainer

    bench = blobs(seed=0)
    alg = OGD(backbone_for(bench), bench, {"examples_per_task": 20}, optimizer={"name": "sgd", "lr": 0.02})
    spy = _DirectionsAfterTask(alg)
    ContinualTrainer(alg, callbacks=[spy], epochs_per_task=2, batch_size=20, device="cpu").fit()
    assert alg.tasks_stored == [1, 2]  # task 3 has no successor to protect it from
    assert spy.rows == {1: 20, 2: 40, 3: 40}
    _assert_orthonormal(alg.basis)
    # Task 2's gradients at the end of task 2 are in the span: the basis was not filled with task 1 again.
    assert _residual(spy.directions[2], alg.basis).max() < 1e-4
    assert _residual(spy.directions[2], alg.basis[:20]).min() > 0.1


def test_all_and_average_logit_variants(blobs, backbone_for):
    all_logits = _ogd(blobs, backbone_for, variant="ALL", examples_per_task=10)
    assert all_logits.directions(1).shape == (20, all_logits.flat.numel)  # 10 examples x 2 logits
    all_logits.train_task_end(1)
    _assert_orthonormal(all_logits.basis)
    average = _ogd(blobs, backbone_for, variant="AVE", examples_per_task=10)
    per_logit = all_logits.directions(1).view(10, 2, -1)
    torch.testing.assert_close(average.directions(1), per_logit.mean(dim=1), rtol=1e-4, atol=1e-7)


def test_max_directions_drops_the_oldest_tasks_whole_block(blobs, backbone_for):
    bench = blobs(seed=0, num_tasks=4)
    alg = OGD(backbone_for(bench), bench, {"examples_per_task": 12, "max_directions": 30})
    alg.train_task_end(1)
    first = alg.basis.clone()
    alg.train_task_end(2)
    assert alg.block_sizes == [12, 12] and alg.tasks_stored == [1, 2]
    torch.testing.assert_close(alg.basis[:12], first)  # under the cap nothing moves
    second_block = alg.basis[12:].clone()
    alg.train_task_end(3)
    # 36 rows would exceed 30: task 1's block goes as a whole, none of task 1's rows survive,
    # task 2's block is kept unchanged, and task 3's directions are placed against task 2's alone.
    assert alg.tasks_stored == [2, 3] and alg.block_sizes == [12, 12]
    torch.testing.assert_close(alg.basis[:12], second_block)
    assert (alg.basis @ first.T).abs().max() < 1.0 - 1e-3  # no row of task 1's block is still there
    _assert_orthonormal(alg.basis)
    assert _residual(alg.directions(3), alg.basis).max() < 1e-3  # task 3 fully covered


def test_max_directions_smaller_than_one_block_keeps_its_strongest_directions(blobs, backbone_for):
    alg = _ogd(blobs, backbone_for, examples_per_task=20, max_directions=5)
    alg.train_task_end(1)
    full = orthonormal_extend(None, alg.directions(1))
    assert alg.basis.shape[0] == 5 and alg.block_sizes == [5]
    torch.testing.assert_close((alg.basis @ full[:5].T).abs(), torch.eye(5), atol=1e-4, rtol=0)


def test_orthonormal_extend_drops_dependent_directions():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 100, generator=gen)
    basis = orthonormal_extend(None, a)
    mixed = torch.cat([a[:2] * 3 + a[2:], torch.randn(2, 100, generator=gen)])  # 2 dependent, 2 new
    grown = orthonormal_extend(basis, mixed)
    assert grown.shape[0] == 6
    _assert_orthonormal(grown)
    # Every input, dependent or new, lies inside the span of the result.
    assert _residual(torch.cat([a, mixed]), grown).max() < 1e-4


def test_orthonormal_extend_keeps_later_directions_after_a_dependent_one():
    gen = torch.Generator().manual_seed(1)
    a, b, c = torch.randn(3, 8, generator=gen)
    vectors = torch.stack([a, 2 * a, b, a + b, c])  # a dependent column before independent ones
    basis = orthonormal_extend(None, vectors)
    assert basis.shape[0] == 3
    _assert_orthonormal(basis)
    assert _residual(vectors, basis).max() < 1e-4


def test_orthonormal_extend_with_more_directions_than_parameters():
    vectors = torch.randn(12, 5, generator=torch.Generator().manual_seed(2))
    basis = orthonormal_extend(None, vectors)
    assert basis.shape == (5, 5)
    _assert_orthonormal(basis)
    assert orthonormal_extend(basis, torch.randn(3, 5)).shape == (5, 5)  # nothing left to add


def test_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(OGD, {"examples_per_task": 50})


def test_state_dict_round_trips_through_weights_only_load(blobs, backbone_for):
    alg = _ogd(blobs, backbone_for)
    alg.train_task_end(1)
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    fresh = OGD(alg.backbone, alg.benchmark)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.tasks_stored == [1]
    torch.testing.assert_close(fresh.basis, alg.basis)


class TestOGDConformance(AlgorithmConformance):
    component = OGD
    params = {}
