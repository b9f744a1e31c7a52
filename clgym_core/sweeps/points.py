"""One sweep point in its run directory: its state on disk, and running it in a worker.

A point's directory is an ordinary run directory. Its state is read from the files
in it, so a sweep needs no bookkeeping of its own to pick up where it stopped:

- ``done``: ``metrics.json`` is there; never run again, never overwritten;
- ``failed``: ``failed.txt`` holds the one-line reason (``traceback.txt`` the
  traceback when the cause was a bug rather than a user error);
- ``resumable``: a checkpoint and no metrics: continued from its last finished task;
- ``partial``: a spec but no checkpoint (stopped before the untrained model was
  evaluated, or run with checkpointing off): nothing finished, started afresh;
- ``new``: nothing there yet.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from clgym_core.plain import first_difference

FAILED_FILE = "failed.txt"
TRACEBACK_FILE = "traceback.txt"
STATES = ("done", "failed", "resumable", "partial", "new")


def point_state(run_dir: Path) -> str:
    if (run_dir / "metrics.json").is_file():
        return "done"
    if (run_dir / FAILED_FILE).is_file():
        return "failed"
    if (run_dir / "checkpoint.pt").is_file() or (run_dir / "checkpoint.prev.pt").is_file():
        return "resumable"
    if (run_dir / "spec.yaml").is_file():
        return "partial"
    return "new"


def failure_reason(run_dir: Path) -> str:
    try:
        return (run_dir / FAILED_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def spec_mismatch(run_dir: Path, resolved_yaml: str) -> str | None:
    """Where the run already in ``run_dir`` differs from the point's resolved spec (None: same run)."""
    path = run_dir / "spec.yaml"
    if not path.is_file():
        return None
    try:
        existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return "spec.yaml (unreadable)"
    wanted = yaml.safe_load(resolved_yaml) or {}
    drop = {"versions"}
    differs = first_difference({k: v for k, v in existing.items() if k not in drop},
                               {k: v for k, v in wanted.items() if k not in drop})
    if differs is None or not isinstance(existing, dict):
        return differs
    # A run made before a component gained a parameter: the same run when that parameter is at its default.
    from clgym_core.build import resolved_now

    existing = resolved_now(existing)
    return first_difference({k: v for k, v in existing.items() if k not in drop},
                            {k: v for k, v in wanted.items() if k not in drop})


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def record_failure(run_dir: Path, exc: BaseException, user_error: bool) -> str:
    reason = _one_line(exc) if user_error else f"{type(exc).__name__}: {_one_line(exc)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED_FILE).write_text(reason + "\n", encoding="utf-8")
    if not user_error:
        (run_dir / TRACEBACK_FILE).write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    return reason


def run_point(run_dir: str, spec_data: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Run (or resume) one point in ``run_dir``; never raises for a failing run.

    Returns ``{"status": "done" | "failed" | "interrupted", "reason", "seconds", "resumed"}``.
    Called in a worker process (or in-process by the inline executor).
    """
    from clgym_core.errors import ClgymError
    from clgym_core.runner import RunInterrupted, resume_run, run_spec
    from clgym_core.spec import parse_spec

    if threads:
        import torch

        torch.set_num_threads(int(threads))
    path = Path(run_dir)
    started = time.perf_counter()
    state = point_state(path)
    result: dict[str, Any] = {"status": "done", "reason": "", "resumed": state == "resumable"}
    try:
        if state == "done":
            result["status"] = "skipped"
        else:
            for name in (FAILED_FILE, TRACEBACK_FILE):  # a retry: the old reason no longer holds
                (path / name).unlink(missing_ok=True)
            state = point_state(path)
            if state == "resumable":
                resume_run(path, progress=False)
            else:
                if state == "partial":  # nothing finished in it: start again from nothing
                    shutil.rmtree(path)
                run_spec(parse_spec(spec_data, str(path / "spec.yaml")), out_dir=path, progress=False)
    except RunInterrupted:
        result["status"] = "interrupted"
    except KeyboardInterrupt:
        result["status"] = "interrupted"
    except ClgymError as exc:
        result.update(status="failed", reason=record_failure(path, exc, user_error=True))
    except Exception as exc:  # a bug in a plugin: keep its traceback, let the other runs go on
        result.update(status="failed", reason=record_failure(path, exc, user_error=False))
    result["seconds"] = time.perf_counter() - started
    result["pid"] = os.getpid()
    return result
