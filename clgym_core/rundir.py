"""The run directory: its name, claiming it (one run per directory), safe paths and what is written in it.

A run directory holds:

- ``spec.yaml``: the resolved spec (every default filled in, every callback that ran)
  with the versions of the distributions that ran it; ``clgym run RUN_DIR/spec.yaml`` repeats the run;
- ``accuracy_matrix.csv`` / ``loss_matrix.csv``: row ``untrained`` then ``task_i``, a column per task;
- ``metrics.json``: the matrices, the summary metrics (accuracies in percent, as the paper
  reports them; forgetting both as CL-Gym's Eq. 2, ``average_forgetting``, and as Chaudhry et
  al. 2018, ``chaudhry_forgetting``), wall time per task and what ran where;
- ``accuracy_matrix.png`` and ``task_curves.png``;
- ``checkpoint.pt`` (and ``checkpoint.prev.pt``), written after every task (:mod:`clgym_core.checkpoint`);
- ``events.jsonl`` and ``scalars.csv``, the logs of :mod:`clgym_core.loggers`;
- ``.clgym.lock``: held (``flock``) by the process running the run, naming its process id.

Everything a run writes stays inside its directory: paths a spec names are resolved and
refused when absolute, when they climb out with ``..`` or when a symbolic link leads out,
and no write follows a symbolic link or replaces a file the run did not create.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clgym_core.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, load_checkpoint
from clgym_core.errors import RunDirError
from clgym_core.plain import nan_to_null

if TYPE_CHECKING:
    from clgym_core.spec import RunSpec
    from clgym_core.trainer import ContinualTrainer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one run per directory is not enforced
    fcntl = None  # type: ignore[assignment]

SPEC_NAME = "spec.yaml"
METRICS_NAME = "metrics.json"
LOCK_NAME = ".clgym.lock"
RUN_MARKERS = (SPEC_NAME, METRICS_NAME, CHECKPOINT_NAME)
#: Files a run writes itself: a directory holding only these (and hidden temporaries) is a run's.
RUN_FILES = frozenset({
    *RUN_MARKERS, PREVIOUS_NAME, LOCK_NAME, "events.jsonl", "scalars.csv", "accuracy_matrix.csv",
    "loss_matrix.csv", "accuracy_matrix.png", "loss_matrix.png", "task_curves.png",
})
ACCURACY_KEYS = (
    "average_accuracy", "average_forgetting", "chaudhry_forgetting", "backward_transfer", "forward_transfer",
    "learning_accuracy",
)


def default_run_dir(spec: RunSpec) -> Path:
    """``OUTPUT_DIR/<time>-<benchmark>-<algorithm>-s<seed>`` (or the spec's name), numbered if taken."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = spec.name or f"{spec.benchmark.name}-{spec.algorithm.name}-s{spec.seed}"
    base = Path(spec.output_dir) / f"{stamp}-{label}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def inside(root: Path, relative: str | Path, what: str) -> Path:
    """``root / relative``, refused (one line naming ``what``) unless it stays inside ``root``."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise RunDirError(f"{what}: {str(relative)!r} must be a relative path inside the run directory")
    path = root / rel
    base = root.resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        raise RunDirError(f"{what}: {str(relative)!r} leads out of the run directory (a symbolic link?)") from None
    return path


def open_no_follow(path: Path, append: bool) -> Any:
    """An unbuffered binary handle on ``path`` that never follows a symbolic link.

    A new log (``append=False``) must not exist yet: a run never replaces a file it did not create.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise RunDirError(f"{path}: already exists; a run never overwrites a file it did not create") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path}: is a symbolic link; a run never writes through one") from None
        raise RunDirError(f"{path}: cannot open for writing ({exc.strerror or exc})") from None
    return os.fdopen(fd, "ab" if append else "wb", buffering=0)


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a crash never leaves a half-written file (and a link is replaced, not followed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        with open_no_follow(tmp, append=False) as handle:
            handle.write(text.encode("utf-8"))
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunDirError(f"{path}: cannot write ({exc.strerror or exc})") from None


class RunDirectory:
    """A run directory this process holds: at most one process runs in a directory at a time.

    The claim is an exclusive ``flock`` on ``.clgym.lock`` for the life of the run; a second
    claimant is refused in one line naming the holder's process id. The lock goes away with
    the process, so a killed run never leaves a directory locked.
    """

    def __init__(self, path: Path, flag: str) -> None:
        self.path = path
        self._flag = flag
        self._handle: Any = None

    # ---- claiming --------------------------------------------------------------------------------
    @classmethod
    def claim_new(cls, path: Path, flag: str = "--out") -> RunDirectory:
        """A directory for a new run: new, empty, or left by a run that finished no task."""
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise RunDirError(f"{flag} {path}: exists and is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"{flag} {path}: cannot create directory ({exc.strerror or exc})") from None
        run = cls(path, flag)
        run._refuse_foreign()  # before the lock file is created: a refused directory is left as it was
        run._lock()
        try:
            run._check_reusable()
        except BaseException:
            run.release()
            raise
        return run

    @classmethod
    def claim_existing(cls, path: Path, flag: str = "--resume") -> RunDirectory:
        """The directory of an interrupted run, to continue it."""
        if not path.is_dir():
            raise RunDirError(f"{flag} {path}: no such run directory")
        if not (path / SPEC_NAME).is_file():
            raise RunDirError(f"{flag} {path}: not a clgym run directory (no {SPEC_NAME})")
        run = cls(path, flag)
        run._lock()
        try:
            run._refuse_links()
        except BaseException:
            run.release()
            raise
        return run

    def _lock(self) -> None:
        lock_path = self.path / LOCK_NAME
        if lock_path.is_symlink():
            raise RunDirError(f"{self._flag} {self.path}: {LOCK_NAME} is a symbolic link; remove it")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except OSError as exc:
            raise RunDirError(f"{self._flag} {self.path}: cannot write ({exc.strerror or exc})") from None
        handle = os.fdopen(fd, "r+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = handle.read().strip() or "?"
                handle.close()
                raise RunDirError(
                    f"{self._flag} {self.path}: in use by another clgym process (pid {holder}); "
                    "wait for it to finish or stop it"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give up the claim (the lock file stays: removing it would race with a new claimant)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _refuse_foreign(self) -> None:
        entries = [e for e in os.listdir(self.path) if not e.startswith(".")]
        foreign = sorted(e for e in entries if e not in RUN_FILES)
        if entries and not any((self.path / m).exists() for m in RUN_MARKERS):
            raise RunDirError(
                f"{self._flag} {self.path}: holds files that are not a clgym run ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty directory"
            )

    def _check_reusable(self) -> None:
        entries = [e for e in os.listdir(self.path) if not e.startswith(".")]
        if not entries:
            return
        self._refuse_foreign()
        foreign = sorted(e for e in entries if e not in RUN_FILES)
        if foreign or self.finished_tasks() > 0:
            raise RunDirError(f"{self._flag} {self.path}: already holds a run; choose another directory, "
                              f"or continue it with: clgym run --resume {self.path}")
        self._refuse_links()
        # A run that finished no task (it failed on its data, or was killed before its first
        # checkpoint): its files are clgym's own and nothing is lost by starting again.
        for name in sorted(RUN_FILES - {LOCK_NAME}):
            (self.path / name).unlink(missing_ok=True)

    def _refuse_links(self) -> None:
        for entry in os.listdir(self.path):
            if (self.path / entry).is_symlink() and entry != LOCK_NAME:
                raise RunDirError(f"{self._flag} {self.path}: {entry} is a symbolic link; a run never writes "
                                  "through one (remove it)")

    def finished_tasks(self) -> int:
        """Tasks finished according to the directory's files (0 without metrics or a readable checkpoint)."""
        if (self.path / METRICS_NAME).exists():
            return 1 << 30
        if not (self.path / CHECKPOINT_NAME).exists() and not (self.path / PREVIOUS_NAME).exists():
            return 0
        try:
            state, _ = load_checkpoint(self.path)
            return int(state["completed_tasks"])
        except Exception:  # an unreadable checkpoint: count it as progress, never delete it
            return 1

    # ---- writing ---------------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        write_atomic(path, text)
        return path


# ---- what a finished run writes ---------------------------------------------------------------------


def matrix_csv(matrix: list[list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    num_tasks = len(matrix[0]) if matrix else 0
    writer.writerow(["after", *[f"task_{j}" for j in range(1, num_tasks + 1)]])
    for i, row in enumerate(matrix):
        writer.writerow(["untrained" if i == 0 else f"task_{i}", *[f"{v:.4f}" for v in row]])
    return buffer.getvalue()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def metrics_payload(spec: RunSpec, trainer: ContinualTrainer, summary: dict[str, float]) -> dict[str, Any]:
    """What ``metrics.json`` holds (strict JSON: NaN becomes null)."""
    classification = trainer.problem == "classification"
    loss_matrix = trainer.loss_matrix
    payload: dict[str, Any] = {
        "problem": trainer.problem,
        "benchmark": spec.benchmark.name,
        "algorithm": spec.algorithm.name,
        "backbone": spec.backbone.name,
        "seed": spec.seed,
        "num_tasks": len(loss_matrix[0]) if loss_matrix else 0,
        "accuracy_matrix": trainer.accuracy_matrix if classification else None,
        "loss_matrix": loss_matrix,
    }
    if classification:
        payload.update({key: summary.get(key) for key in ACCURACY_KEYS})
    else:
        payload.update({key: None for key in ACCURACY_KEYS})
        payload["loss_metrics"] = summary
    payload.update({
        "train_loss": trainer.metrics.train_loss,
        "task_seconds": {str(k): v for k, v in trainer.metrics.task_seconds.items()},
        "wall_seconds": trainer.wall_seconds,
        "peak_memory_mb": trainer.peak_memory_mb(),
        "peak_gpu_memory_mb": trainer.peak_gpu_memory_mb(),
        "device": str(trainer.device),
        "device_name": device_name(trainer.device),
        "versions": spec.versions or {},
        "python": platform.python_version(),
        "torch": torch.__version__,
    })
    if getattr(trainer.benchmark, "inner", None) is not None:  # a task window: which tasks of the sequence
        payload["tasks"] = [trainer.benchmark.first, trainer.benchmark.last]
    validation = trainer.metrics.validation_summary()
    if validation is not None:  # the validation split: its matrices and summary, apart from the test ones
        payload["validation"] = {
            "accuracy_matrix": trainer.metrics.validation_accuracy if classification else None,
            "loss_matrix": trainer.metrics.validation_loss,
            **validation,
        }
    return nan_to_null(payload)


def write_results(run_dir: RunDirectory, spec: RunSpec, trainer: ContinualTrainer, summary: dict[str, float]) -> None:
    """The matrices as CSV, ``metrics.json`` and the plots of a finished run."""
    if trainer.problem == "classification":
        run_dir.write_text("accuracy_matrix.csv", matrix_csv(trainer.accuracy_matrix))
    run_dir.write_text("loss_matrix.csv", matrix_csv(trainer.loss_matrix))
    payload = metrics_payload(spec, trainer, summary)
    run_dir.write_text(METRICS_NAME, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    write_plots(run_dir.path, spec, trainer)


def write_plots(path: Path, spec: RunSpec, trainer: ContinualTrainer) -> None:
    """Heatmap and per-task curves (skipped when matplotlib is unavailable)."""
    try:
        from clgym_core import plots
    except ImportError:
        return
    kind = "accuracy" if trainer.problem == "classification" else "loss"
    matrix = trainer.accuracy_matrix if kind == "accuracy" else trainer.loss_matrix
    if len(matrix) < 2:
        return
    title = f"{spec.algorithm.name} on {spec.benchmark.name} (seed {spec.seed})"
    try:
        plots.plot_accuracy_matrix(matrix, path / f"{kind}_matrix.png", title=title, kind=kind)
        plots.plot_task_curves(matrix, path / "task_curves.png", title=title, kind=kind)
    except ImportError:
        return
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write the plots ({exc.strerror or exc})") from None
