"""toy_1d_regression: seeded generation, the task functions, loading options, loss metrics."""

from __future__ import annotations

import math

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.registry import get_registry
from clgym_toy.regression_1d import TASKS, Toy1DRegression


def test_registered_as_a_regression_benchmark():
    cls = get_registry().get("benchmark", "toy_1d_regression")
    assert cls is Toy1DRegression and cls.problem == "regression"
    bench = Toy1DRegression()
    assert bench.num_tasks == 3 and bench.input_shape == (1,) and bench.head_size == 1


@pytest.mark.parametrize("num_tasks", [1, 6])
def test_two_to_five_tasks(num_tasks):
    with pytest.raises(SpecError, match="num_tasks"):
        Toy1DRegression(num_tasks=num_tasks)


def test_same_seed_same_points_other_seed_other_points():
    a, b, c = (Toy1DRegression(num_tasks=5, seed=s) for s in (7, 7, 8))
    for task in range(1, 6):
        for split in ("train", "test"):
            da, db, dc = (x._split(task, split) for x in (a, b, c))
            assert torch.equal(da.inputs, db.inputs) and torch.equal(da.targets, db.targets)
            assert not torch.allclose(da.inputs, dc.inputs)


def test_the_paper_functions_on_disjoint_intervals():
    # von Oswald et al. 2020: x + 3 on [-4, -2], 2x^2 - 1 on [-1, 1], (x - 3)^3 on [2, 4].
    probes = {1: (-3.0, 0.0), 2: (0.5, -0.5), 3: (4.0, 1.0), 4: (6.5, 1.0), 5: (8.5, 0.0)}
    for task, (x, y) in probes.items():
        assert float(TASKS[task - 1].function(torch.tensor(x))) == pytest.approx(y, abs=1e-6)
    bench = Toy1DRegression(num_tasks=5, examples_per_task=200, noise_std=0.0)
    previous_high = -math.inf
    for task in range(1, 6):
        spec = Toy1DRegression.task_definition(task)
        assert spec.low > previous_high  # intervals do not overlap
        previous_high = spec.high
        data = bench.load_train(task)
        x = data.inputs[:, 0]
        assert data.inputs.shape == (200, 1) and data.targets.shape == (200,)
        assert x.min() >= spec.low and x.max() <= spec.high and x.max() - x.min() > 0.8 * (spec.high - spec.low)
        assert torch.allclose(data.targets, spec.function(x))  # no noise asked for, none added
        assert data.targets.abs().max() <= 1.0 + 1e-6


def test_noise_has_the_requested_spread():
    bench = Toy1DRegression(num_tasks=2, examples_per_task=4000, noise_std=0.1)
    data = bench.load_train(2)
    residual = data.targets - TASKS[1].function(data.inputs[:, 0])
    assert float(residual.std()) == pytest.approx(0.1, rel=0.08)
    assert abs(float(residual.mean())) < 0.01


def test_memory_and_joint_use_distinct_training_examples():
    bench = Toy1DRegression(num_tasks=3, examples_per_task=40, per_task_memory_examples=7, per_task_joint_examples=10)
    for task in (1, 2, 3):
        memory = bench.load_memory(task)
        values = set(memory.inputs[:, 0].tolist())
        assert len(memory) == 7 and len(values) == 7
        assert values <= set(bench.load_train(task).inputs[:, 0].tolist())
        assert not values & set(bench.load_test(task).inputs[:, 0].tolist())
    joint = bench.load_joint(3)
    assert len(joint) == 30 and joint.task_ids.bincount().tolist() == [0, 10, 10, 10]


def test_metrics_are_losses_and_show_forgetting(trainer_factory):
    # Measured over seeds 0-2 (3 tasks, 50 epochs): finetune's loss forgetting 0.73-1.10, joint's at most 0.002,
    # with MSE of 0.02 on every task after joint training.
    results = {}
    for algorithm in ("finetune", "joint"):
        trainer = trainer_factory(Toy1DRegression(num_tasks=3, seed=0), algorithm, epochs=50)
        results[algorithm] = (trainer.fit(), trainer)
    summary, trainer = results["finetune"]
    assert set(summary) == {"average_loss", "average_forgetting", "chaudhry_forgetting", "backward_transfer",
                            "forward_transfer", "learning_loss"}
    assert all(math.isnan(a) for row in trainer.accuracy_matrix for a in row)
    assert summary["learning_loss"] < 0.05  # every task is fitted right after training it ...
    assert summary["average_forgetting"] > 0.3  # ... and its loss climbs afterwards
    assert summary["backward_transfer"] < -0.3
    joint, _ = results["joint"]
    assert abs(joint["average_forgetting"]) < 0.05 and joint["average_loss"] < 0.1
