"""Running a sweep: every point an ordinary run directory under DIR, picked up where it stopped."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clgym_core.sweeps.executors import available_cores, make_executor
from clgym_core.sweeps.plan import SweepError, SweepPlan, check_points, read_sweep_file
from clgym_core.sweeps.points import failure_reason, point_state, run_point, spec_mismatch

STATUS_COLUMNS = ("name", "status", "reason")


@dataclass
class SweepProgress:
    """What the live display shows: counts and an estimate of the time left."""

    total: int
    done: int = 0
    failed: int = 0
    running: set[int] = field(default_factory=set)
    durations: list[float] = field(default_factory=list)
    workers: int = 1

    def seconds_left(self) -> float | None:
        if not self.durations:
            return None
        left = self.total - self.done - self.failed
        per_run = sum(self.durations) / len(self.durations)
        return per_run * math.ceil(left / max(1, min(self.workers, left or 1)))

    def line(self) -> str:
        left = self.seconds_left()
        eta = "-" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        return f"{self.done} done, {len(self.running)} running, {self.failed} failed, time left ~{eta}"


class _Display:
    def __init__(self, progress: SweepProgress, enabled: bool) -> None:
        self.progress = progress
        self._bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[info]}"), console=Console(file=sys.stderr),
                                 refresh_per_second=2)
            self._task = self._bar.add_task("sweep", total=progress.total, info="")

    def __enter__(self) -> _Display:
        if self._bar is not None:
            self._bar.start()
            self.refresh()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self.refresh()
            self._bar.stop()

    def refresh(self) -> None:
        if self._bar is not None:
            p = self.progress
            self._bar.update(self._task, completed=p.done + p.failed, info=p.line())


def default_workers(threads: int) -> int:
    """As many runs at once as fit the cores, given each run's threads."""
    return max(1, available_cores() // max(1, threads))


def run_threads(resolved: list[Any]) -> int | None:
    """The threads a run asks for (trainer.num_threads; the largest over the points), None if unset."""
    asked = [s.trainer.num_threads for s in resolved if s.trainer.num_threads]
    return max(asked) if asked else None


def prepare_out(plan: SweepPlan, out: Path, resolved: list[Any], source_text: str | None) -> None:
    """Check DIR can take the sweep (no point dir holds another spec's run) before anything is written."""
    from clgym_core.spec import dump_spec

    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out}: exists and is not a directory")
    for point, spec in zip(plan.points, resolved):
        run_dir = out / point.name
        if run_dir.exists() and not run_dir.is_dir():
            raise SweepError(f"--out {out}: {point.name} exists and is not a directory")
        differs = spec_mismatch(run_dir, dump_spec(spec))
        if differs is not None:
            raise SweepError(
                f"{run_dir}: holds a run whose {differs} differs from this sweep's point {point.name}; "
                "use another --out, or remove that run directory"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"--out {out}: cannot create directory ({exc.strerror or exc})") from None
    if source_text is not None:  # keep every distinct sweep file run into DIR
        target, n = out / "sweep.yaml", 1
        while target.exists() and target.read_text(encoding="utf-8") != source_text:
            n += 1
            target = out / f"sweep-{n}.yaml"
        if not target.exists():
            target.write_text(source_text, encoding="utf-8")


def sweep_rows(plan: SweepPlan, out: Path) -> list[dict[str, Any]]:
    """One row per point: its swept values, state, failure reason and (when done) its numbers."""
    from clgym_core.results import ALL_METRICS, read_run

    rows = []
    for point in plan.points:
        run_dir = out / point.name
        state = point_state(run_dir)
        row: dict[str, Any] = {"name": point.name, "status": state, "reason": ""}
        row.update({path: point.values[path] for path in plan.fields})
        if state == "done":
            row.update(read_run(run_dir))
        else:
            row.update({k: math.nan for k in ALL_METRICS})
            row["run"] = str(run_dir)
            if state == "failed":
                row["reason"] = failure_reason(run_dir)
        rows.append(row)
    return rows


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    workers: int | None = None,
    executor: str = "process",
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    registry: Any = None,
    source_text: str | None = None,
    on_result: Any = None,
) -> Any:
    """Run every point of ``plan`` not yet done under ``out``; the results frame (one row per point).

    Finished points are skipped, interrupted ones resumed from their checkpoints,
    failed ones (``failed.txt``) left as they are unless ``retry_failed``. Raises
    ``KeyboardInterrupt`` after a clean stop on Ctrl-C.
    """
    import pandas as pd

    out = Path(out)
    resolved = check_points(plan, registry)
    prepare_out(plan, out, resolved, source_text)
    asked = run_threads(resolved)
    threads = asked or 1
    if workers is None:
        workers = default_workers(threads)
    todo = []
    for point in plan.points:
        state = point_state(out / point.name)
        if state == "done" or (state == "failed" and not retry_failed):
            continue
        todo.append(point)
    stats = SweepProgress(total=len(plan.points), workers=workers)
    for point in plan.points:
        state = point_state(out / point.name)
        stats.done += state == "done"
        stats.failed += state == "failed" and not retry_failed
    jobs = [(str(out / p.name), p.data, None if asked else threads) for p in todo]
    runner = make_executor(executor, workers, threads, address)

    with _Display(stats, progress) as display:
        def on_event(kind: str, index: int, payload: Any) -> None:
            if kind == "start":
                stats.running.add(index)
            else:
                stats.running.discard(index)
                status = payload.get("status") if isinstance(payload, dict) else "failed"
                if status == "done":
                    stats.done += 1
                    stats.durations.append(float(payload.get("seconds", 0.0)))
                elif status == "failed":
                    stats.failed += 1
                if on_result is not None:
                    on_result(todo[index], payload)
            display.refresh()

        runner.run(run_point, jobs, on_event)
    frame = pd.DataFrame(sweep_rows(plan, out))
    return frame


def sweep(
    path: str | Path,
    out: str | Path,
    workers: int | None = None,
    executor: str = "process",
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = False,
    registry: Any = None,
) -> Any:
    """Run the sweep file at ``path`` into ``out`` (the Python API of ``clgym sweep``); the results frame.

    One row per point: ``name``, ``status`` (done, failed, resumable, partial, new),
    ``reason`` (why it failed), the swept fields that differ, then the columns of
    :func:`clgym_core.results.read_run` (benchmark, algorithm, seed, metrics, ...).
    """
    path = Path(path)
    plan = read_sweep_file(path, registry, check=False)
    text = path.read_text(encoding="utf-8")
    return run_sweep(plan, out, workers, executor, address, retry_failed, progress, registry, source_text=text)


def dry_run_rows(plan: SweepPlan, out: Path | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, state, differing values) per point, without running anything."""
    rows = []
    for point in plan.points:
        state = point_state(out / point.name) if out is not None else "new"
        rows.append((point.name, state, {f: point.values[f] for f in plan.fields}))
    return rows


def dump_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                     for k, v in values.items())
