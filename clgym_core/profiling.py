"""``clgym run --profile``: a torch.profiler trace of a run and the time it spent in each phase.

While profiling, the trainer wraps its phases in ``torch.profiler.record_function``
ranges named ``clgym::<phase>`` (only then: a run without ``--profile`` enters none).
The trace (``profile_trace.json``, Chrome trace format: open it in Perfetto,
chrome://tracing or TensorBoard's profiler) holds those ranges for the whole run, one
``clgym::task_N`` range per task, and torch's own operators beneath them for the first
``DETAIL_STEPS`` training steps of each task and the first evaluation: a full trace of
every operator was 21 MB for 5 Rotated MNIST tasks of 32 steps each and grows with every step
and evaluation (beyond what the viewers open), while the table counts every step.
The table attributes every moment of ``fit`` to the innermost phase running then:
torch's backward and optimizer events inside a training step count as backward and
optimizer, the backbone's forward passes inside it as forward, and what is left of the
step (the algorithm's losses, gradient edits, memory draws) as the algorithm's step.
Times are host (CPU) times: on a GPU, kernels run asynchronously and the trace's device
rows show where the device itself was busy.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

PROFILE_TRACE = "profile_trace.json"
PROFILE_TABLE = "profile.md"
PROFILE_JSON = "profile.json"
PREFIX = "clgym::"

# (phase, what it counts): the table's rows, in order; "other" is what no phase covers.
PHASES = (
    ("data", "each task's training data (prepare_train_data, to the device) and drawing each batch"),
    ("forward", "the backbone's forward passes inside training steps"),
    ("backward", "autograd's backward passes inside training steps"),
    ("optimizer", "optimizer.step and zero_grad inside training steps"),
    ("algorithm_step", "the rest of the algorithm's train_step: its losses, gradient edits, memory draws"),
    ("algorithm_hooks", "the algorithm's prepare_optimizer, train_step_end, train_epoch_end, train_task_end"),
    ("evaluation", "evaluating every task after each one (and early stopping's validation)"),
    ("callbacks", "every callback hook: progress, loggers, plots"),
    ("other", "the rest of fit: setup (test data), checkpoints, syncing processes"),
)
RANGE_PHASES = ("data", "forward", "algorithm_step", "algorithm_hooks", "evaluation", "callbacks")
TASK_RANGE = "task_"  # clgym::task_N: one task's training, evaluation and hooks (not a phase)
# Operator-level detail in the trace: this many training steps at the start of each task.
DETAIL_STEPS = 25
BACKWARD_EVENT = "autograd::engine::evaluate_function"
OPTIMIZER_EVENT = "Optimizer."


def range_name(phase: str) -> str:
    """The ``record_function`` name of ``phase`` (the training step's range is ``clgym::algorithm_step``)."""
    return PREFIX + phase


@dataclass(frozen=True)
class PhaseRow:
    phase: str
    seconds: float
    percent: float
    description: str


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds of ``fit`` spent in each phase (exclusive of the phases nested in it)."""

    wall_seconds: float
    seconds: dict[str, float]

    def rows(self) -> list[PhaseRow]:
        total = self.wall_seconds or 1.0
        return [PhaseRow(phase, self.seconds.get(phase, 0.0), 100.0 * self.seconds.get(phase, 0.0) / total, text)
                for phase, text in PHASES]

    def to_json(self) -> str:
        payload = {"wall_seconds": self.wall_seconds, "trace": PROFILE_TRACE,
                   "phases": [{"phase": r.phase, "seconds": r.seconds, "percent": r.percent,
                               "description": r.description} for r in self.rows()]}
        return json.dumps(payload, indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# Where the time went ({self.wall_seconds:.3f} s in fit)", "",
                 f"Trace: `{PROFILE_TRACE}` (Chrome trace format: Perfetto, chrome://tracing, TensorBoard).", "",
                 "| phase | seconds | % | what it counts |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {r.phase} | {r.seconds:.3f} | {r.percent:.1f} | {r.description} |" for r in self.rows()]
        return "\n".join(lines) + "\n"


class RunProfiler:
    """The torch profiler around one ``fit``, plus the forward ranges on the backbone."""

    def __init__(self, device: torch.device, backbone: torch.nn.Module) -> None:
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._profile = profile(activities=activities, record_shapes=False, with_stack=False)
        self._backbone = backbone
        self._handles: list[Any] = []
        self._open_forward: list[Any] = []
        self.in_step = False
        self.times: PhaseTimes | None = None
        self._events: list[Any] = []

    def start(self) -> None:
        self._profile.__enter__()
        self._handles = [self._backbone.register_forward_pre_hook(self._forward_start),
                         self._backbone.register_forward_hook(self._forward_end)]

    def stop(self, wall_seconds: float) -> PhaseTimes:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._profile.__exit__(None, None, None)
        self._events = list(self._profile.events())
        self.times = phase_times(self._events, wall_seconds)
        return self.times

    # ---- ranges ----------------------------------------------------------------------------------
    @staticmethod
    def range(phase: str) -> record_function:
        return record_function(range_name(phase))

    @staticmethod
    def task_range(task: int) -> record_function:
        """The range around task ``task`` (it bounds the trace's per-task operator detail)."""
        return record_function(range_name(f"{TASK_RANGE}{task}"))

    def _forward_start(self, module: Any, args: Any) -> None:
        if self.in_step:  # evaluation, Fisher and other passes outside a training step are not "forward"
            context = record_function(range_name("forward"))
            context.__enter__()
            self._open_forward.append(context)

    def _forward_end(self, module: Any, args: Any, output: Any) -> None:
        if self._open_forward:
            self._open_forward.pop().__exit__(None, None, None)

    def step(self, train_step: Callable) -> Callable:
        """``train_step`` inside the algorithm-step range, with the backbone's forward passes marked."""
        def profiled(batch: Any, optimizer: Any) -> Any:
            self.in_step = True
            try:
                with record_function(range_name("algorithm_step")):
                    return train_step(batch, optimizer)
            finally:
                self.in_step = False
        return profiled

    def hooks(self, phase: str, hooks: list[Callable]) -> list[Callable]:
        """Each of ``hooks`` (per-step callables) inside ``phase``'s range."""
        def ranged(hook: Callable) -> Callable:
            def call(*args: Any) -> Any:
                with record_function(range_name(phase)):
                    return hook(*args)
            return call
        return [ranged(hook) for hook in hooks]

    def batches(self, batches: Iterable) -> Iterator:
        """``batches``, each draw inside the data range."""
        iterator = iter(batches)
        while True:
            with record_function(range_name("data")):
                try:
                    batch = next(iterator)
                except StopIteration:
                    return
            yield batch

    def trace_json(self) -> str:
        """The run's Chrome trace (see :func:`chrome_trace`), once ``stop`` has run."""
        return chrome_trace(self._events)


def _detail_windows(events: list[Any], detail_steps: int) -> list[tuple[float, float]]:
    """Where the trace keeps torch's operators: the first ``detail_steps`` steps of each task, the first evaluation."""
    def ranges(name: str) -> list[tuple[float, float]]:
        return sorted((float(e.time_range.start), float(e.time_range.end)) for e in events if e.name == name)

    steps = ranges(range_name("algorithm_step"))
    tasks = sorted((float(e.time_range.start), float(e.time_range.end)) for e in events
                   if e.name.startswith(range_name(TASK_RANGE)))
    windows: list[tuple[float, float]] = []
    for task_start, task_end in tasks or [(float("-inf"), float("inf"))]:
        inside = [step for step in steps if task_start <= step[0] < task_end][:detail_steps]
        if inside:
            windows.append((inside[0][0], inside[-1][1]))
    evaluations = ranges(range_name("evaluation"))
    if evaluations:
        windows.append(evaluations[0])
    return sorted(windows)


def chrome_trace(events: Iterable[Any], detail_steps: int = DETAIL_STEPS) -> str:
    """A Chrome trace (JSON) of ``events``: every ``clgym::`` range, operators only inside the detail windows."""
    events = list(events)
    windows = _detail_windows(events, detail_steps)
    starts = [start for start, _ in windows]

    def detailed(start: float) -> bool:
        i = bisect.bisect_right(starts, start) - 1
        return i >= 0 and start <= windows[i][1]

    trace = []
    for event in events:
        start, end = float(event.time_range.start), float(event.time_range.end)
        ours = event.name.startswith(PREFIX)
        if not ours and not detailed(start):
            continue
        device = str(getattr(event, "device_type", "cpu")).rsplit(".", 1)[-1].lower()
        on_host = device == "cpu"
        trace.append({
            "name": event.name, "ph": "X", "ts": start, "dur": max(end - start, 0.0),
            "cat": "clgym" if ours else ("cpu_op" if on_host else "kernel"),
            "pid": "host" if on_host else f"{device}:{getattr(event, 'device_index', 0)}",
            "tid": getattr(event, "thread", 0) if on_host else 0,
        })
    return json.dumps({"traceEvents": trace, "displayTimeUnit": "ms",
                       "otherData": {"operator_detail": f"first {detail_steps} training steps of each task "
                                                        "and the first evaluation"}})


def phase_times(events: Iterable[Any], wall_seconds: float) -> PhaseTimes:
    """Exclusive seconds per phase from profiler events: each moment goes to the innermost phase then running.

    Phase intervals are the ``clgym::`` ranges plus, inside a training step, torch's backward
    (``autograd::engine::evaluate_function``) and optimizer (``Optimizer.*``) events.
    """
    intervals: list[tuple[float, float, str]] = []
    steps: list[tuple[float, float]] = []
    for event in events:
        name = event.name
        start, end = float(event.time_range.start), float(event.time_range.end)
        if name.startswith(PREFIX):
            phase = name[len(PREFIX):]
            if phase in RANGE_PHASES:
                intervals.append((start, end, phase))
                if phase == "algorithm_step":
                    steps.append((start, end))
        elif name.startswith(BACKWARD_EVENT):
            intervals.append((start, end, "backward"))
        elif name.startswith(OPTIMIZER_EVENT):
            intervals.append((start, end, "optimizer"))
    steps.sort()
    step_starts = [s for s, _ in steps]

    def in_step(start: float) -> bool:
        i = bisect.bisect_right(step_starts, start) - 1
        return i >= 0 and start < steps[i][1]

    intervals = [iv for iv in intervals if iv[2] not in ("backward", "optimizer") or in_step(iv[0])]
    intervals.sort(key=lambda iv: (iv[0], -iv[1]))
    seconds = {phase: 0.0 for phase, _ in PHASES}
    stack: list[list[Any]] = []  # [end, phase, exclusive microseconds]

    def close(item: list[Any]) -> None:
        seconds[item[1]] += max(item[2], 0.0) / 1e6

    for start, end, phase in intervals:
        while stack and stack[-1][0] <= start:
            close(stack.pop())
        end = min(end, stack[-1][0]) if stack else end  # clamp a range that outlives its parent
        duration = max(end - start, 0.0)
        if stack:
            stack[-1][2] -= duration
        stack.append([end, phase, duration])
    while stack:
        close(stack.pop())
    seconds["other"] = max(wall_seconds - sum(seconds.values()), 0.0)
    return PhaseTimes(wall_seconds=wall_seconds, seconds=seconds)


def write_profile(run_dir: Any, profiler: RunProfiler) -> None:
    """``profile.md``, ``profile.json`` and ``profile_trace.json`` into ``run_dir`` (a RunDirectory)."""
    assert profiler.times is not None
    run_dir.write_text(PROFILE_TRACE, profiler.trace_json())
    run_dir.write_text(PROFILE_TABLE, profiler.times.to_markdown())
    run_dir.write_text(PROFILE_JSON, profiler.times.to_json())
