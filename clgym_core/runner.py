"""Run a spec end to end and write the run directory.

A run directory holds:

- ``spec.yaml``: the resolved spec (every default filled in) with the versions of the
  distributions that ran it; ``clgym run RUN_DIR/spec.yaml`` repeats the run.
- ``accuracy_matrix.csv`` / ``loss_matrix.csv``: row ``untrained`` then ``after_task_i``,
  a column per task.
- ``metrics.json``: the matrices, the summary metrics (accuracies in percent, as the
  paper reports them), wall time per task and what ran where.
- ``accuracy_matrix.png`` and ``task_curves.png`` when matplotlib is installed.
- ``checkpoint.pt`` (and ``checkpoint.prev.pt``): written after every task, so that
  ``clgym run --resume RUN_DIR`` continues a run that crashed or was interrupted
  (see :mod:`clgym_core.checkpoint`).
- ``events.jsonl`` and ``scalars.csv``: the logs of :mod:`clgym_core.loggers`.

A resumed run continues in the same directory and ends with the same files, and
the same numbers (timings aside), as a run that was never interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import Backbone
from clgym_core.benchmark import Benchmark
from clgym_core.callback import Callback, ProgressBar
from clgym_core.errors import ClgymError
from clgym_core.registry import Registry, get_registry
from clgym_core.spec import RunSpec, dump_spec, load_spec, resolve_spec
from clgym_core.task_window import windowed
from clgym_core.trainer import ContinualTrainer, check_mixed_precision, peak_host_memory_mb, resolve_device

RUN_MARKERS = ("spec.yaml", "metrics.json", "checkpoint.pt")
CHECKPOINT_NAME = "checkpoint.pt"
ACCURACY_KEYS = ("average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer", "learning_accuracy")


@dataclass
class Components:
    benchmark: Benchmark
    backbone: Backbone
    algorithm: Algorithm
    callbacks: list[Callback] = field(default_factory=list)


@dataclass
class RunResult:
    run_dir: Path | None
    spec: RunSpec
    summary: dict[str, float]
    accuracy_matrix: list[list[float]]
    loss_matrix: list[list[float]]
    problem: str
    wall_seconds: float
    trainer: ContinualTrainer


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; finished tasks are in its checkpoint (when checkpointing was on)."""

    def __init__(self, run_dir: Path | None, completed_tasks: int, resumable: bool, checkpointing: bool = True) -> None:
        super().__init__(f"interrupted after {completed_tasks} finished task(s)")
        self.run_dir = run_dir
        self.completed_tasks = completed_tasks
        self.resumable = resumable
        self.checkpointing = checkpointing


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model initialisation happens after this)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build_components(spec: RunSpec, registry: Registry | None = None) -> Components:
    """Instantiate the resolved spec's components (seeded, so initial weights are reproducible)."""
    registry = registry or get_registry()
    if spec.trainer.num_threads is not None:
        torch.set_num_threads(spec.trainer.num_threads)
    seed_everything(spec.seed)
    benchmark = registry.get("benchmark", spec.benchmark.name)(spec.benchmark.params)
    benchmark = windowed(benchmark)  # first_task / last_task: the held-out-tasks protocol
    backbone = registry.get("backbone", spec.backbone.name)(spec.backbone.params)
    algorithm = registry.get("algorithm", spec.algorithm.name)(
        backbone, benchmark, spec.algorithm.params, optimizer=spec.optimizer
    )
    callbacks = [registry.get("callback", c.name)(c.params) for c in spec.callbacks]
    return Components(benchmark, backbone, algorithm, callbacks)


def build_trainer(spec: RunSpec, components: Components, progress: bool | None = None) -> ContinualTrainer:
    callbacks = list(components.callbacks)
    show = spec.trainer.progress if progress is None else progress
    if show and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.insert(0, ProgressBar())
    t = spec.trainer
    return ContinualTrainer(
        components.algorithm,
        callbacks=callbacks,
        epochs_per_task=t.epochs_per_task,
        batch_size=t.batch_size,
        eval_batch_size=t.eval_batch_size,
        device=t.device,
        seed=spec.seed,
        shuffle=t.shuffle,
        stop_on_nonfinite=t.stop_on_nonfinite,
        checkpoint=t.checkpoint,
        mixed_precision=t.mixed_precision,
    )


def default_loggers(callbacks: list[Callback]) -> list[Callback]:
    """The CSV and JSON-lines loggers every run directory gets, unless the spec already names them."""
    from clgym_core.loggers import DEFAULT_LOGGERS

    return [cls() for cls in DEFAULT_LOGGERS if not any(isinstance(c, cls) for c in callbacks)]


def default_run_dir(spec: RunSpec) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = spec.name or f"{spec.benchmark.name}-{spec.algorithm.name}-s{spec.seed}"
    base = Path(spec.output_dir) / f"{stamp}-{label}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def prepare_run_dir(path: Path) -> Path:
    """Create ``path``; refuse one that already holds a run so that nothing written is lost."""
    if path.exists() and not path.is_dir():
        raise ClgymError(f"--out {path}: exists and is not a directory")
    if path.is_dir() and any((path / marker).exists() for marker in RUN_MARKERS):
        raise ClgymError(f"--out {path}: already holds a run; choose another directory or remove it first")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClgymError(f"--out {path}: cannot create directory ({exc.strerror or exc})") from None
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a crash never leaves a half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def matrix_csv(matrix: list[list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    num_tasks = len(matrix[0]) if matrix else 0
    writer.writerow(["after", *[f"task_{j}" for j in range(1, num_tasks + 1)]])
    for i, row in enumerate(matrix):
        writer.writerow(["untrained" if i == 0 else f"task_{i}", *[f"{v:.4f}" for v in row]])
    return buffer.getvalue()


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


def metrics_payload(result: RunResult, versions: dict[str, str]) -> dict[str, Any]:
    """What ``metrics.json`` holds (plain JSON: NaN becomes null)."""
    classification = result.problem == "classification"
    payload: dict[str, Any] = {
        "problem": result.problem,
        "benchmark": result.spec.benchmark.name,
        "algorithm": result.spec.algorithm.name,
        "backbone": result.spec.backbone.name,
        "seed": result.spec.seed,
        "num_tasks": len(result.loss_matrix[0]) if result.loss_matrix else 0,
        "accuracy_matrix": result.accuracy_matrix if classification else None,
        "loss_matrix": result.loss_matrix,
    }
    if classification:
        payload.update({key: result.summary.get(key) for key in ACCURACY_KEYS})
    else:
        payload.update({key: None for key in ACCURACY_KEYS})
        payload["loss_metrics"] = result.summary
    trainer = result.trainer
    if getattr(trainer.benchmark, "inner", None) is not None:  # a task window: which tasks of the sequence
        payload["tasks"] = [trainer.benchmark.first, trainer.benchmark.last]
    # ---- validation split: its matrices and summary, apart from the test ones ----
    validation = trainer.metrics.validation_summary()
    if validation is not None:
        payload["validation"] = {
            "accuracy_matrix": trainer.metrics.validation_accuracy if classification else None,
            "loss_matrix": trainer.metrics.validation_loss,
            **validation,
        }
    payload.update(
        {
            "train_loss": trainer.metrics.train_loss,
            "task_seconds": {str(k): v for k, v in trainer.metrics.task_seconds.items()},
            "wall_seconds": result.wall_seconds,
            "peak_memory_mb": max(trainer.peak_memory_before_mb, peak_memory_mb()),
            "peak_gpu_memory_mb": trainer.peak_gpu_memory_mb(),
            "device": str(trainer.device),
            "device_name": device_name(trainer.device),
            "versions": versions,
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
    )
    return _finite_or_none(payload)


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB."""
    return peak_host_memory_mb()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def write_outputs(result: RunResult, versions: dict[str, str]) -> None:
    run_dir = result.run_dir
    if run_dir is None:
        return
    if result.problem == "classification":
        write_atomic(run_dir / "accuracy_matrix.csv", matrix_csv(result.accuracy_matrix))
    write_atomic(run_dir / "loss_matrix.csv", matrix_csv(result.loss_matrix))
    write_atomic(run_dir / "metrics.json", json.dumps(metrics_payload(result, versions), indent=2, allow_nan=False) + "\n")
    write_plots(result)


def write_plots(result: RunResult) -> None:
    """Heatmap and per-task curves (skipped when matplotlib or the plots module is unavailable)."""
    try:
        from clgym_core import plots
    except ImportError:
        return
    kind = "accuracy" if result.problem == "classification" else "loss"
    matrix = result.accuracy_matrix if kind == "accuracy" else result.loss_matrix
    if len(matrix) < 2:
        return
    title = f"{result.spec.algorithm.name} on {result.spec.benchmark.name} (seed {result.spec.seed})"
    try:
        plots.plot_accuracy_matrix(matrix, result.run_dir / f"{kind}_matrix.png", title=title, kind=kind)
        plots.plot_task_curves(matrix, result.run_dir / "task_curves.png", title=title, kind=kind)
    except ImportError:
        return


def run_spec(
    spec: RunSpec,
    out_dir: str | Path | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
    write: bool = True,
    callbacks: list[Callback] | None = None,
) -> RunResult:
    """Resolve, build, train and evaluate ``spec``; write its run directory unless ``write`` is false.

    ``callbacks``: callback objects attached to this run only, after the spec's own
    (not written into spec.yaml; e.g. a tuning study's reporter).
    """
    registry = registry or get_registry()
    resolved = resolve_spec(spec, registry)
    versions = registry.versions()
    resolved = resolved.model_copy(update={"versions": versions})
    # Fail on a missing device, or components that refuse their settings (no data is loaded yet),
    # before a run directory exists: a rejected spec leaves nothing behind to block a retry.
    check_mixed_precision(resolved.trainer.mixed_precision, resolve_device(resolved.trainer.device))
    try:
        components = build_components(resolved, registry)
    except KeyboardInterrupt:
        raise RunInterrupted(None, 0, False) from None
    run_dir = None
    if write:
        run_dir = prepare_run_dir(Path(out_dir) if out_dir is not None else default_run_dir(resolved))
        write_atomic(run_dir / "spec.yaml", dump_spec(resolved))
    trainer = build_trainer(resolved, components, progress)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    return _execute(trainer, resolved, run_dir, versions)


def _execute(trainer: ContinualTrainer, spec: RunSpec, run_dir: Path | None, versions: dict[str, str]) -> RunResult:
    """Fit (from the start or a restored checkpoint) and write the outputs."""
    trainer.run_dir = run_dir
    trainer.spec = spec
    if run_dir is None:
        trainer.checkpoint = False
    else:
        for logger in default_loggers(trainer.callbacks):
            trainer.add_callback(logger)
    try:
        summary = trainer.fit()
        result = RunResult(
            run_dir=run_dir,
            spec=spec,
            summary=summary,
            accuracy_matrix=trainer.accuracy_matrix,
            loss_matrix=trainer.loss_matrix,
            problem=trainer.problem,
            wall_seconds=trainer.wall_seconds,
            trainer=trainer,
        )
        if run_dir is not None:
            trainer.release_data()  # before plotting: the plots' memory must not stack on the data's
            write_outputs(result, versions)
    except KeyboardInterrupt:
        resumable = run_dir is not None and trainer.checkpoint and (run_dir / CHECKPOINT_NAME).exists()
        raise RunInterrupted(run_dir, trainer.completed_tasks, resumable, bool(trainer.checkpoint)) from None
    return result


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first place two plain structures differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(dict.fromkeys([*a, *b])):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    return None if a == b else (path or "(top level)")


def resume_run(
    run_dir: str | Path,
    progress: bool | None = None,
    registry: Registry | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult | None:
    """Continue the run in ``run_dir`` from its last checkpoint; ``None`` when it had already finished.

    The spec comes from ``run_dir/spec.yaml`` (which must still match the one in the
    checkpoint); components are rebuilt from it, then weights, algorithm and callback
    states, counters and RNG states are restored, and training goes on with the next task.
    """
    from clgym_core.checkpoint import PREVIOUS_NAME, CheckpointError, load_checkpoint

    notify = notify or (lambda message: None)
    registry = registry or get_registry()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ClgymError(f"--resume {run_dir}: no such run directory")
    spec_path = run_dir / "spec.yaml"
    if not spec_path.is_file():
        raise ClgymError(f"--resume {run_dir}: not a clgym run directory (no spec.yaml)")
    finished = (run_dir / "metrics.json").is_file()
    if finished and not (run_dir / CHECKPOINT_NAME).exists():
        return None  # finished before checkpoints existed, or with checkpointing off
    spec = load_spec(spec_path)
    state, path = load_checkpoint(run_dir)
    if path.name == PREVIOUS_NAME:
        notify(f"{run_dir / CHECKPOINT_NAME} is damaged; resuming from {path.name} instead")
    if finished and int(state["completed_tasks"]) >= int(state["num_tasks"]):
        return None
    saved = yaml.safe_load(state["spec"]) if isinstance(state.get("spec"), str) else None
    if saved is not None:
        current = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
        differs = _first_difference(
            {k: v for k, v in current.items() if k != "versions"}, {k: v for k, v in saved.items() if k != "versions"}
        )
        if differs is not None:
            raise CheckpointError(
                f"{spec_path}: {differs} differs from the spec saved in {path.name}; "
                "restore spec.yaml or start a new run with the edited spec"
            )
    resolved = resolve_spec(spec, registry, source=str(spec_path))
    versions = registry.versions()
    changed = {d: (v, versions.get(d)) for d, v in (resolved.versions or {}).items() if versions.get(d) != v}
    if changed:
        notify("versions changed since the run started: "
               + ", ".join(f"{d} {old} -> {new or 'missing'}" for d, (old, new) in changed.items()))
    try:
        components = build_components(resolved, registry)
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir, int(state["completed_tasks"]), True) from None
    trainer = build_trainer(resolved, components, progress)
    trainer.checkpoint = True
    trainer.restore(state)
    # The spec as written, not re-resolved: later checkpoints must keep matching spec.yaml.
    return _execute(trainer, spec, run_dir, versions)
