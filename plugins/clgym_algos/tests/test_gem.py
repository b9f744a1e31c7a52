"""GEM: the projected step never conflicts with a previous task's memory gradient; per-task memories."""

from __future__ import annotations

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.agem import agem_project
from clgym_algos.gem import GEM, gem_project


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_projection_has_non_negative_inner_products(margin):
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        memory = torch.randn(4, 60, generator=gen, dtype=torch.float64)
        g = torch.randn(60, generator=gen, dtype=torch.float64) - 2 * memory[trial % 4]  # conflicts with one row
        assert (memory @ g).min() < 0
        projected = gem_project(g, memory, margin=margin, eps=1e-9)
        assert (memory @ projected).min() >= -1e-6, (trial, memory @ projected)


def test_one_constraint_without_margin_is_the_agem_projection():
    gen = torch.Generator().manual_seed(1)
    row = torch.randn(30, generator=gen, dtype=torch.float64)
    g = torch.randn(30, generator=gen, dtype=torch.float64) - row
    assert torch.dot(g, row) < 0
    torch.testing.assert_close(gem_project(g, row.unsqueeze(0), margin=0.0, eps=1e-12), agem_project(g, row))


def test_a_margin_pushes_the_step_further_inside():
    # The margin bounds the dual variables from below: constraints that the plain projection leaves
    # inactive (v = 0) still pull the step towards their gradient.
    gen = torch.Generator().manual_seed(2)
    memory = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    g = -memory[0]
    plain = memory @ gem_project(g, memory, margin=0.0, eps=1e-9)
    pushed = memory @ gem_project(g, memory, margin=0.5, eps=1e-9)
    assert (pushed >= plain - 1e-9).all() and pushed.sum() > plain.sum() + 1e-3


def _train_task(alg, task: int) -> None:
    alg.current_task = task
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    for batch in alg.benchmark.load_train(task).batches(20):
        alg.train_step(batch, optimizer)
    alg.train_task_end(task)


@pytest.mark.parametrize("multi_head", [False, True])
def test_applied_step_never_increases_a_previous_memory_loss_to_first_order(blobs, backbone_for, multi_head):
    bench = blobs(seed=0, multi_head=multi_head)
    alg = GEM(backbone_for(bench), bench, {"memory_per_task": 16, "margin": 0.0, "eps": 1e-6})
    _train_task(alg, 1)
    _train_task(alg, 2)
    assert [m["task_ids"].unique().tolist() for m in alg.memories] == [[1], [2]]
    assert [len(m["targets"]) for m in alg.memories] == [16, 16]
    assert [m["targets"].bincount().tolist() for m in alg.memories] == [[8, 8], [8, 8]]  # class-balanced
    conflicts = 0
    for batch in bench.load_train(3).batches(20):
        memory_grads = alg.memory_gradients()
        alg.backbone.zero_grad()
        alg.training_loss(batch).backward()
        raw = alg.flat.grads()
        alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.0))  # leaves the applied step in .grad
        applied = alg.flat.grads()
        conflicts += int((memory_grads @ raw < 0).any())
        scale = memory_grads.norm(dim=1) * applied.norm()
        assert ((memory_grads @ applied) >= -1e-4 * scale).all()
        if (memory_grads @ raw >= 0).all():
            torch.testing.assert_close(applied, raw)  # no conflict: the step is left alone
    assert conflicts > 0  # the tasks conflict, so the check above met projected steps


def test_uniform_memory_sampling_draws_distinct_rows_as_they_fall_and_is_seeded(blobs, backbone_for):
    bench = blobs(seed=0)
    drawn = []
    for _ in range(2):
        alg = GEM(backbone_for(bench), bench, {"memory_per_task": 7, "memory_sampling": "uniform"})
        _train_task(alg, 1)
        memory = alg.memories[0]
        train = bench.load_train(1)
        rows = [int(torch.nonzero((train.inputs == x).all(1))[0]) for x in memory["inputs"]]
        assert len(set(rows)) == 7  # distinct training examples of task 1
        assert torch.equal(train.targets[rows], memory["targets"])
        drawn.append(rows)
    assert drawn[0] == drawn[1]  # the same draw for the same benchmark seed
    balanced = GEM(backbone_for(bench), bench, {"memory_per_task": 7})
    _train_task(balanced, 1)
    assert sorted(balanced.memories[0]["targets"].bincount().tolist()) == [3, 4]  # balanced: 7 = 3 + 4
    other = blobs(seed=5)
    alg = GEM(backbone_for(other), other, {"memory_per_task": 7, "memory_sampling": "uniform"})
    _train_task(alg, 1)
    other_rows = [int(torch.nonzero((other.load_train(1).inputs == x).all(1))[0]) for x in alg.memories[0]["inputs"]]
    assert other_rows != drawn[0]  # another seed, another draw


def test_gem_needs_a_memory_size(blobs, backbone_for):
    bench = blobs()
    with pytest.raises(SpecError, match="memory_per_task"):
        GEM(backbone_for(bench), bench)
    bench = blobs(per_task_memory_examples=10)
    assert GEM(backbone_for(bench), bench).memory_per_task == 10


def test_gem_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(GEM, {"memory_per_task": 30})


class TestGEMConformance(AlgorithmConformance):
    component = GEM
    params = {"memory_per_task": 6}
