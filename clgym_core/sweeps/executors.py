"""Executors: where the runs of a sweep (or the workers of a study) execute.

- ``process`` (the default): N worker processes on this machine, started with
  ``spawn`` (a fresh interpreter: no state forked from the parent, safe with
  torch's thread pools), each pinned to its share of the cores. A worker takes
  the next job as soon as it is free and keeps its imports between jobs, so a
  run costs its own time plus a little bookkeeping.
- ``inline``: every job in this process, one after another (debugging, notebooks).
- ``ray``: every job a Ray task on an existing cluster (``--address``) or a local
  instance, with the CPUs (and GPUs) the run asks for; see
  :mod:`clgym_core.sweeps.ray_executor`.

An executor calls ``on_event(kind, index, payload)`` with ``kind`` ``"start"``
or ``"done"`` (payload: the job's return value) from the calling thread.
Ctrl-C stops the workers (a run in progress keeps its last checkpoint) and
re-raises ``KeyboardInterrupt`` once they are gone.
"""

from __future__ import annotations

import os
import queue
import signal
from collections.abc import Callable, Sequence
from typing import Any

Event = Callable[[str, int, Any], None]
EXECUTORS = ("process", "inline", "ray")


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class InlineExecutor:
    """Runs every job in this process, in order."""

    name = "inline"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, fn: Callable[..., Any], jobs: Sequence[tuple], on_event: Event) -> None:
        for index, args in enumerate(jobs):
            on_event("start", index, None)
            result = fn(*args)
            on_event("done", index, result)
            if isinstance(result, dict) and result.get("status") == "interrupted":
                raise KeyboardInterrupt


def _worker(fn: Callable[..., Any], jobs: Any, results: Any, threads: int) -> None:
    """A worker process: take jobs until the sentinel, report start and result of each."""
    # Before torch is imported in this interpreter: its thread pool sizes from these.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        while True:
            item = jobs.get()
            if item is None:
                break
            index, args = item
            results.put(("start", index, os.getpid(), None))
            result = fn(*args)
            results.put(("done", index, os.getpid(), result))
            if isinstance(result, dict) and result.get("status") == "interrupted":
                break
    except KeyboardInterrupt:
        pass


class ProcessExecutor:
    """``workers`` processes on this machine, each with ``threads`` torch threads."""

    name = "process"

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.workers = max(1, int(workers))
        self.threads = max(1, int(threads))

    def run(self, fn: Callable[..., Any], jobs: Sequence[tuple], on_event: Event) -> None:
        import multiprocessing

        if not jobs:
            return
        ctx = multiprocessing.get_context("spawn")
        job_queue, result_queue = ctx.Queue(), ctx.Queue()
        for index, args in enumerate(jobs):
            job_queue.put((index, args))
        count = min(self.workers, len(jobs))
        for _ in range(count):
            job_queue.put(None)
        procs: dict[int, Any] = {}

        def start() -> None:
            proc = ctx.Process(target=_worker, args=(fn, job_queue, result_queue, self.threads))
            proc.start()
            procs[proc.pid] = proc

        for _ in range(count):
            start()
        pending = set(range(len(jobs)))
        running: dict[int, int] = {}  # pid -> job index
        try:
            while pending:
                try:
                    kind, index, pid, payload = result_queue.get(timeout=0.5)
                except queue.Empty:
                    self._reap(procs, running, pending, on_event, start)
                    continue
                if kind == "start":
                    running[pid] = index
                else:
                    running.pop(pid, None)
                    pending.discard(index)
                on_event(kind, index, payload)
                if kind == "done" and isinstance(payload, dict) and payload.get("status") == "interrupted":
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._stop(procs, result_queue, running, on_event)
            raise
        finally:
            job_queue.cancel_join_thread()
            for proc in procs.values():
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)

    def _reap(self, procs: dict[int, Any], running: dict[int, int], pending: set[int], on_event: Event,
              start: Callable[[], None]) -> None:
        """A worker that died (killed, out of memory) fails its job; a replacement takes the rest."""
        for pid, proc in list(procs.items()):
            if proc.is_alive():
                continue
            del procs[pid]
            if pid in running:
                index = running.pop(pid)
                pending.discard(index)
                reason = f"worker process died (exit code {proc.exitcode})"
                on_event("done", index, {"status": "failed", "reason": reason, "seconds": 0.0, "resumed": False})
                start()

    def _stop(self, procs: dict[int, Any], results: Any, running: dict[int, int], on_event: Event) -> None:
        """Ctrl-C: workers interrupt their runs (they keep their checkpoints) and exit.

        A Ctrl-C at a terminal reaches the workers too; a worker that has not
        reported after a moment (the parent alone was signalled) is sent SIGINT.
        """
        signalled = False
        for tick in range(70):  # up to 35 s to write what they have
            if tick == 4 and not signalled:
                signalled = True
                for proc in procs.values():
                    if proc.is_alive():
                        try:
                            os.kill(proc.pid, signal.SIGINT)
                        except ProcessLookupError:
                            pass
            try:
                kind, index, pid, payload = results.get(timeout=0.5)
                if kind == "done":
                    running.pop(pid, None)
                    on_event(kind, index, payload)
            except queue.Empty:
                if not any(p.is_alive() for p in procs.values()):
                    break
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                break


def make_executor(name: str, workers: int, threads: int, address: str | None = None) -> Any:
    from clgym_core.sweeps.plan import SweepError

    if name == "process":
        return ProcessExecutor(workers, threads)
    if name == "inline":
        return InlineExecutor(threads)
    if name == "ray":
        from clgym_core.sweeps.ray_executor import RayExecutor

        return RayExecutor(address=address, threads=threads, workers=workers)
    raise SweepError(f"--executor: unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
