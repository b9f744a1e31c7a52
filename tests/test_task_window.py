"""Held-out tasks (A-GEM Section 5): benchmark.params.first_task / last_task choose a window of the sequence,
presented as a stream of its own with each task's data exactly as in the full sequence."""

from __future__ import annotations

import json

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.registry import get_registry
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_core.task_window import TaskWindow, windowed


def toy(**params):
    cls = get_registry().get("benchmark", "toy_2d_classification")
    return cls(num_tasks=4, cluster_size=30, test_cluster_size=30, **params)


def test_window_presents_later_tasks_as_a_stream_of_their_own() -> None:
    full, window = toy(), windowed(toy(first_task=3, per_task_memory_examples=6))
    assert isinstance(window, TaskWindow) and window.num_tasks == 2
    assert torch.equal(window.load_test(1).inputs, full.load_test(3).inputs)
    assert torch.equal(window.load_train(2).inputs, full.load_train(4).inputs)
    assert set(window.load_test(1).task_ids.tolist()) == {3}  # ids of the full sequence: its heads
    # Memory and joint data come from the window's tasks only.
    assert set(window.load_memory_joint(2).task_ids.tolist()) == {3, 4}
    assert set(window.load_joint(1).task_ids.tolist()) == {3}
    with pytest.raises(Exception, match="out of range"):
        window.load_test(3)


def test_whole_sequence_is_not_wrapped() -> None:
    bench = toy(first_task=1, last_task=4)
    assert windowed(bench) is bench


def test_bad_window_names_the_field() -> None:
    with pytest.raises(SpecError, match="last_task"):
        toy(first_task=3, last_task=2)
    with pytest.raises(SpecError, match="within the 4 tasks"):
        toy(first_task=5)


SPEC = {
    "benchmark": {"name": "toy_2d_classification",
                  "params": {"num_tasks": 4, "cluster_size": 30, "test_cluster_size": 30}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
    "algorithm": "finetune",
    "optimizer": {"name": "sgd", "lr": 0.1},
    "trainer": {"epochs_per_task": 2, "batch_size": 16, "device": "cpu"},
}


def spec_with(**params):
    data = json.loads(json.dumps(SPEC))
    data["benchmark"]["params"].update(params)
    return parse_spec(data)


def test_searching_on_the_first_tasks_is_the_start_of_the_full_run(tmp_path) -> None:
    full = run_spec(spec_with(), write=False, progress=False)
    first_two = run_spec(spec_with(last_task=2), out_dir=tmp_path / "w", progress=False)
    # Same seed, same first tasks: the same model after tasks 1 and 2, the same numbers on them.
    assert first_two.accuracy_matrix == [row[:2] for row in full.accuracy_matrix[:3]]
    assert json.loads((tmp_path / "w" / "metrics.json").read_text())["tasks"] == [1, 2]


def test_evaluating_on_held_out_tasks_reports_only_them(tmp_path) -> None:
    result = run_spec(spec_with(first_task=3), out_dir=tmp_path / "r", progress=False)
    assert len(result.accuracy_matrix) == 3 and len(result.accuracy_matrix[0]) == 2
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["tasks"] == [3, 4]
