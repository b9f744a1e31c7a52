"""``clgym run --profile``: a valid Chrome trace with the trainer's phase ranges, and a table naming every phase."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.profiling import (
    PHASES, PROFILE_JSON, PROFILE_TABLE, PROFILE_TRACE, chrome_trace, phase_times, range_name,
)

SPEC = """\
benchmark: {name: toy_2d_classification, params: {num_tasks: 2, per_task_memory_examples: 8}}
backbone: {name: mlp, params: {hidden_sizes: [16]}}
algorithm: {name: agem}
optimizer: {name: sgd, lr: 0.05}
trainer: {epochs_per_task: 1, batch_size: 64, device: cpu, progress: false}
seed: 0
"""


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    (root / "spec.yaml").write_text(SPEC)
    result = CliRunner().invoke(app, ["run", str(root / "spec.yaml"), "--out", str(root / "run"), "--no-progress",
                                      "--profile"])
    assert result.exit_code == 0, result.output
    return root / "run", result.output


def test_the_trace_is_chrome_trace_json_with_every_phase_range(profiled):
    run_dir, _ = profiled
    trace = json.loads((run_dir / PROFILE_TRACE).read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    for phase in ("data", "forward", "algorithm_step", "algorithm_hooks", "evaluation", "callbacks"):
        assert range_name(phase) in names, phase
    assert any(str(name).startswith("autograd::engine::evaluate_function") for name in names)  # backward
    assert {range_name("task_1"), range_name("task_2")} <= names
    for event in trace["traceEvents"]:
        assert event["ph"] == "X" and event["dur"] >= 0 and isinstance(event["ts"], (int, float))


def test_the_table_names_every_phase_and_adds_up_to_the_fit(profiled):
    run_dir, output = profiled
    table = (run_dir / PROFILE_TABLE).read_text()
    payload = json.loads((run_dir / PROFILE_JSON).read_text())
    phases = [row["phase"] for row in payload["phases"]]
    assert phases == [phase for phase, _ in PHASES]
    for phase in phases:
        assert f"| {phase} |" in table
        assert phase in output  # printed at the end of the run
    seconds = {row["phase"]: row["seconds"] for row in payload["phases"]}
    assert all(value >= 0 for value in seconds.values())
    for phase in ("data", "forward", "backward", "optimizer", "algorithm_step", "evaluation"):
        assert seconds[phase] > 0, phase
    assert sum(seconds.values()) == pytest.approx(payload["wall_seconds"], rel=1e-6)


def test_a_run_without_profile_writes_no_profile(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert not any((tmp_path / "run" / name).exists() for name in (PROFILE_TRACE, PROFILE_TABLE, PROFILE_JSON))


def _event(name: str, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end))


def test_time_goes_to_the_innermost_phase():
    """A step of 100 us holding a 30 us forward, a 20 us backward and a 10 us optimizer step: 40 us are the step's own."""
    events = [
        _event(range_name("data"), 0, 10),
        _event(range_name("algorithm_step"), 10, 110),
        _event(range_name("forward"), 15, 45),
        _event("autograd::engine::evaluate_function: AddmmBackward0", 50, 70),
        _event("Optimizer.step#SGD.step", 90, 100),
        _event("autograd::engine::evaluate_function: MulBackward0", 200, 230),  # outside a step: not backward
        _event(range_name("evaluation"), 120, 300),
    ]
    times = phase_times(events, wall_seconds=400e-6)
    got = {phase: round(value * 1e6, 6) for phase, value in times.seconds.items()}
    assert got == {"data": 10, "forward": 30, "backward": 20, "optimizer": 10, "algorithm_step": 40,
                   "algorithm_hooks": 0, "evaluation": 180, "callbacks": 0, "other": 110}


def test_the_trace_keeps_every_phase_range_but_operators_only_for_the_first_steps_of_each_task():
    """Two tasks of 4 steps, detail for 2 steps each: the ops of steps 3-4 and of the second evaluation are dropped."""
    events = []
    for task, offset in ((1, 0), (2, 1000)):
        events.append(_event(range_name(f"task_{task}"), offset, offset + 900))
        for step in range(4):
            start = offset + 100 * step
            events.append(_event(range_name("algorithm_step"), start, start + 90))
            events.append(_event(f"aten::addmm t{task} s{step}", start + 10, start + 20))
        events.append(_event(range_name("evaluation"), offset + 500, offset + 600))
        events.append(_event(f"aten::mm eval{task}", offset + 510, offset + 520))
    trace = json.loads(chrome_trace(events, detail_steps=2))
    names = [event["name"] for event in trace["traceEvents"]]
    assert sorted(n for n in names if n.startswith("aten::")) == [
        "aten::addmm t1 s0", "aten::addmm t1 s1", "aten::addmm t2 s0", "aten::addmm t2 s1", "aten::mm eval1"]
    assert names.count(range_name("algorithm_step")) == 8  # every step's range stays
    assert names.count(range_name("evaluation")) == 2
