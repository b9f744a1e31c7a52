"""A-GEM: the projection rule, a reference gradient from past memories alone, and less forgetting."""

from __future__ import annotations

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.agem import AGEM, agem_project


def test_projection_never_conflicts_and_leaves_agreeing_gradients_alone():
    gen = torch.Generator().manual_seed(0)
    conflicts = agreements = 0
    for _ in range(500):
        g, g_ref = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
        out = agem_project(g, g_ref)
        if torch.dot(g, g_ref) >= 0:
            agreements += 1
            assert torch.equal(out, g)
        else:
            conflicts += 1
            expected = g - torch.dot(g, g_ref) / torch.dot(g_ref, g_ref) * g_ref
            torch.testing.assert_close(out, expected)
            assert abs(torch.dot(out, g_ref)) <= 1e-4 * g.norm() * g_ref.norm()
        assert torch.dot(out, g_ref) >= -1e-4 * g.norm() * g_ref.norm()
    assert conflicts > 100 and agreements > 100
    assert torch.equal(agem_project(torch.ones(3), torch.zeros(3)), torch.ones(3))  # empty memory gradient


def _agem(blobs, backbone_for, lr: float = 0.5, **bench):
    benchmark = blobs(seed=0, per_task_memory_examples=10, **bench)
    # A reference batch larger than memory uses all of it, so the test can recompute g_ref exactly.
    alg = AGEM(backbone_for(benchmark), benchmark, {"reference_batch_size": 1000},
               optimizer={"name": "sgd", "lr": lr})
    return alg


def test_train_step_applies_the_projected_gradient(blobs, backbone_for):
    alg = _agem(blobs, backbone_for)
    optimizer = alg.prepare_optimizer(1)
    for batch in alg.benchmark.load_train(1).batches(20):
        alg.train_step(batch, optimizer)
    alg.prepare_optimizer(2)
    assert alg.memory is not None and len(alg.memory) == 10
    flat, seen = alg.flat, {"conflict": 0, "agree": 0}
    for task in (2, 1):  # task 2's gradients fight task 1's memory; task 1's agree with it
        for batch in alg.benchmark.load_train(task).batches(20):
            memory = alg.memory.all()
            alg.backbone.zero_grad()
            alg.criterion(alg.forward(memory), memory.targets).backward()
            g_ref = flat.grads()
            alg.backbone.zero_grad()
            alg.training_loss(batch).backward()
            g = flat.grads()
            before = flat.values()
            alg.train_step(batch, torch.optim.SGD(alg.backbone.parameters(), lr=0.5))
            applied = (before - flat.values()) / 0.5
            tol = 1e-4 * g.norm() * g_ref.norm()
            assert torch.dot(applied, g_ref) >= -tol
            if torch.dot(g, g_ref) >= 0:
                seen["agree"] += 1
                torch.testing.assert_close(applied, g, rtol=1e-4, atol=1e-6)
            else:
                seen["conflict"] += 1
                assert abs(torch.dot(applied, g_ref)) <= tol
                torch.testing.assert_close(applied, agem_project(g, g_ref), rtol=1e-4, atol=1e-6)
    assert seen["conflict"] >= 3 and seen["agree"] >= 3, seen


def test_reference_memory_holds_past_tasks_only(blobs, backbone_for):
    alg = _agem(blobs, backbone_for)
    alg.prepare_optimizer(1)
    assert alg.memory is None  # task 1 trains as plain SGD
    alg.prepare_optimizer(3)
    assert sorted(set(alg.memory.task_ids.tolist())) == [1, 2] and len(alg.memory) == 20
    train_inputs = torch.cat([alg.benchmark.load_train(t).inputs for t in (1, 2)])
    assert all((train_inputs == x).all(dim=1).any() for x in alg.memory.inputs)  # drawn from training data


def test_memory_goes_through_its_own_heads(blobs, backbone_for):
    alg = _agem(blobs, backbone_for, multi_head=True)
    alg.prepare_optimizer(3)
    alg.reference_gradient()
    head = alg.backbone.head.linear.weight.grad.view(3, 2, -1)  # heads x outputs x features
    assert head[0].abs().sum() > 0 and head[1].abs().sum() > 0 and head[2].abs().sum() == 0


def test_needs_episodic_memory(blobs, backbone_for):
    bench = blobs()
    with pytest.raises(SpecError, match="per_task_memory_examples") as info:
        AGEM(backbone_for(bench), bench)
    assert "\n" not in str(info.value)


def test_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(AGEM, {}, benchmark={"per_task_memory_examples": 20})


def test_keeps_no_state_beyond_the_benchmark_memory(blobs, backbone_for):
    alg = _agem(blobs, backbone_for)
    alg.prepare_optimizer(2)
    assert alg.state_dict() == {}  # the memory is the benchmark's, re-drawn identically from its seed


class TestAGEMConformance(AlgorithmConformance):
    component = AGEM
    params = {"reference_batch_size": 8}
