"""The validation split: held out from each task's training data, seeded, class-balanced, disjoint from
what training and memory draw from; evaluated after each task and reported apart from the test numbers."""

from __future__ import annotations

import json

import pytest
import torch

from clgym_core.errors import DataError
from clgym_core.registry import get_registry
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec


def toy(**params):
    cls = get_registry().get("benchmark", "toy_2d_classification")
    return cls(num_tasks=2, cluster_size=50, test_cluster_size=20, **params)


def rows(data) -> set[tuple[float, float]]:
    return {tuple(r) for r in data.inputs.tolist()}


def test_validation_is_held_out_of_training_and_memory() -> None:
    bench = toy(validation_fraction=0.2, per_task_memory_examples=30)
    for task in (1, 2):
        full = bench._split(task, "train")
        val, train, memory = bench.load_validation(task), bench.load_train(task), bench.load_memory(task)
        assert len(val) == 20 and len(train) == 80
        assert rows(val).isdisjoint(rows(train))
        assert rows(val) | rows(train) == rows(full)
        assert rows(memory) <= rows(train)  # memory draws from training data only
        assert torch.bincount(val.targets).tolist() == [10, 10]  # class-balanced


def test_validation_rows_are_seeded() -> None:
    assert rows(toy(validation_fraction=0.2).load_validation(1)) == rows(toy(validation_fraction=0.2).load_validation(1))
    a = toy(validation_fraction=0.2, seed=0)
    b = toy(validation_fraction=0.2, seed=1)
    # Different seeds give different points too, so compare which rows were held out.
    held = lambda bench: set(bench._validation_rows(bench._split(1, "train"), 1).tolist())  # noqa: E731
    assert held(a) != held(b)


def test_without_a_fraction_nothing_is_held_out() -> None:
    bench = toy()
    assert len(bench.load_train(1)) == 100
    with pytest.raises(DataError, match="validation_fraction"):
        bench.load_validation(1)


def test_bad_fraction_names_the_field() -> None:
    from clgym_core.errors import SpecError

    with pytest.raises(SpecError, match="validation_fraction"):
        toy(validation_fraction=1.5)


SPEC = {
    "benchmark": {"name": "toy_2d_classification",
                  "params": {"num_tasks": 2, "cluster_size": 40, "test_cluster_size": 40}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
    "algorithm": "finetune",
    "optimizer": {"name": "sgd", "lr": 0.1},
    "trainer": {"epochs_per_task": 2, "batch_size": 16, "device": "cpu"},
}


def test_run_reports_validation_matrix_apart_from_test(tmp_path) -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["benchmark"]["params"]["validation_fraction"] = 0.25
    result = run_spec(parse_spec(spec), out_dir=tmp_path / "v", progress=False)
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    validation = metrics["validation"]
    assert len(validation["accuracy_matrix"]) == 3 and len(validation["accuracy_matrix"][0]) == 2
    assert validation["accuracy_matrix"] != metrics["accuracy_matrix"]
    assert validation["average_accuracy"] == pytest.approx(sum(validation["accuracy_matrix"][-1]) / 2)
    assert metrics["average_accuracy"] == pytest.approx(result.summary["average_accuracy"])
    plain = run_spec(parse_spec(SPEC), out_dir=tmp_path / "p", progress=False)
    assert "validation" not in json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert plain.accuracy_matrix != result.accuracy_matrix  # trained on fewer examples


def test_validation_rows_survive_resume(tmp_path) -> None:
    from clgym_core.collector import MetricCollector

    collector = MetricCollector()
    collector.validation_accuracy = [[50.0, 50.0], [90.0, 40.0]]
    collector.validation_loss = [[0.7, 0.7], [0.2, 0.9]]
    restored = MetricCollector()
    restored.load_state_dict(collector.state_dict())
    assert restored.validation_accuracy == collector.validation_accuracy and restored.validation_summary() is not None
