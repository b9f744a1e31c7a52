"""The continual trainer: the paper's Algorithm 1 plus the event timeline.

For each task t = 1..T: the algorithm prepares an optimizer and its training
data, the trainer runs the epochs and steps, the algorithm's task hook runs, and
the model is evaluated on every task, including tasks not trained yet (the row
for the untrained model and the entries above the diagonal give forward
transfer). Callbacks see every step of this timeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import platform
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clgym_core.algorithm import Algorithm
from clgym_core.callback import STEP_HOOKS, Callback, MetricCollector, overrides
from clgym_core.data import DataSource, TaskData, iterate_batches
from clgym_core.errors import ClgymError


MIXED_PRECISION = ("none", "bf16")


class NonFiniteLossError(ClgymError):
    """The training loss became NaN or infinite."""


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def check_mixed_precision(mode: str, device: torch.device) -> None:
    """Raise a one-line :class:`ClgymError` unless ``mode`` can run on ``device``."""
    if mode not in MIXED_PRECISION:
        raise ClgymError(f"trainer.mixed_precision: {mode!r} is not supported; use one of {', '.join(MIXED_PRECISION)}")
    if mode == "none":
        return
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            raise ClgymError(
                f"trainer.mixed_precision: bf16 needs a GPU with bfloat16 support ({name} has none); "
                "use mixed_precision: none"
            )
    elif device.type != "cpu" or not torch.amp.is_autocast_available(device.type):
        raise ClgymError(f"trainer.mixed_precision: bf16 autocast is not available on {device.type}; use none")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an explicit device must exist."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ClgymError(f"trainer.device: {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ClgymError(f"trainer.device: {device!r} was asked for but CUDA is not available here; use auto or cpu")
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise ClgymError(
                f"trainer.device: {device!r} does not exist ({torch.cuda.device_count()} CUDA device(s) here)"
            )
    elif resolved.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ClgymError("trainer.device: 'mps' was asked for but MPS is not available here; use auto or cpu")
    elif resolved.type != "cpu":
        raise ClgymError(f"trainer.device: {device!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return resolved


def derived_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed for one purpose, independent of everything drawn before it."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Evaluation:
    """Per-task results of one evaluation pass: accuracy in percent (NaN for regression) and mean loss."""

    accuracy: list[float]
    loss: list[float]
    # The same on each task's validation data, when the benchmark holds some out (validation_fraction).
    validation: Evaluation | None = None


class ContinualTrainer:
    """Trains an algorithm on its benchmark's tasks in order, evaluating every task after each one.

    Randomness is seeded per task: model state aside, task ``t`` draws from
    generators seeded by ``(seed, t, epoch)``, so a run resumed at a task
    boundary draws exactly what an uninterrupted one does.

    With ``checkpoint=True`` the trainer writes ``run_dir/checkpoint.pt`` after
    evaluating the untrained model and after every task (see
    :mod:`clgym_core.checkpoint`); :meth:`restore` continues from one.

    ``mixed_precision="bf16"`` runs each training step and evaluation under
    ``torch.autocast`` with bfloat16 (meant for CUDA; CPU autocast works too). bf16
    keeps float32's exponent range, so no gradient scaler is needed and algorithms
    that edit gradients (A-GEM, OGD) see unscaled gradients. Weights, optimizer
    state and anything an algorithm computes outside ``train_step`` (Fisher
    information, bases) stay float32.
    """

    def __init__(
        self,
        algorithm: Algorithm,
        callbacks: Sequence[Callback] | None = None,
        epochs_per_task: int = 1,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        device: str | torch.device = "auto",
        seed: int = 0,
        shuffle: bool = True,
        stop_on_nonfinite: bool = True,
        checkpoint: bool = False,
        mixed_precision: str = "none",
    ) -> None:
        if epochs_per_task < 1:
            raise ValueError(f"epochs_per_task must be >= 1, got {epochs_per_task}")
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError("batch sizes must be positive")
        self.algorithm = algorithm
        self.benchmark = algorithm.benchmark
        self.backbone = algorithm.backbone
        self.epochs_per_task = int(epochs_per_task)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.stop_on_nonfinite = stop_on_nonfinite
        self.checkpoint = checkpoint
        check_mixed_precision(mixed_precision, self.device)
        self.mixed_precision = mixed_precision
        self.metrics = MetricCollector()
        self.callbacks: list[Callback] = [self.metrics, *(callbacks or [])]
        self.completed_tasks = 0
        self.current_task = 0
        self.current_epoch = 0
        self.steps_per_epoch = 0
        self.global_step = 0
        self.run_dir: Any = None  # set by the runner: where callbacks may write files
        self.spec: Any = None  # the resolved RunSpec, when the runner built this trainer
        self.resumed_from: int | None = None  # tasks finished before this process took over
        self.wall_seconds_before = 0.0  # training wall time spent before a resume
        self.peak_memory_before_mb = 0.0
        self.peak_gpu_memory_before_mb: float | None = None
        self._fit_started: float | None = None
        self._resume_state: dict[str, Any] | None = None
        self._test_data: list[DataSource] = []
        self._validation_data: list[DataSource] = []
        self._step_callbacks: dict[str, list[Callback]] = {}

    # ---- description ---------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return self.benchmark.num_tasks

    @property
    def problem(self) -> str:
        return self.benchmark.problem

    # ---- events ---------------------------------------------------------------------------------
    def call(self, hook: str, *args: Any) -> None:
        """Dispatch ``hook`` to every callback (per-step hooks only to those that define them)."""
        targets = self._step_callbacks.get(hook) if hook in STEP_HOOKS else self.callbacks
        for callback in targets if targets is not None else self.callbacks:
            getattr(callback, hook)(self, *args)

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    # ---- the run --------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train on every remaining task; returns the summary metrics."""
        if self.checkpoint and self.run_dir is None:
            raise ValueError("checkpoint=True needs trainer.run_dir: the folder to write checkpoint.pt in")
        self._step_callbacks = {h: [c for c in self.callbacks if overrides(c, h)] for h in STEP_HOOKS}
        self._fit_started = time.perf_counter()
        try:
            self._setup()
            fresh = self.completed_tasks == 0 and self.resumed_from is None
            if fresh:
                self._evaluate_and_report(0)
            self.call("on_fit_start")
            if fresh:
                self._save_checkpoint()  # the untrained model: a kill during task 1 resumes from here
            for task in range(self.completed_tasks + 1, self.num_tasks + 1):
                self._run_task(task)
            self.call("on_fit_end")
        except BaseException as exc:
            for callback in self.callbacks:
                try:
                    callback.on_exception(self, exc)
                except Exception:  # a failing callback must not mask the original error
                    pass
            raise
        finally:
            for callback in self.callbacks:
                callback.teardown(self)
        return self.metrics.summary()

    def _setup(self) -> None:
        self.benchmark.ensure_prepared()
        self.backbone.to(self.device)
        self.algorithm.setup(self)
        self._test_data = [self._on_device(self.benchmark.load_test(t)) for t in range(1, self.num_tasks + 1)]
        self._load_validation_data()
        if self._resume_state is not None:
            self._apply_resume_state(self._resume_state)
            self._resume_state = None
        self.call("setup")

    def _on_device(self, data: DataSource) -> DataSource:
        return data.to(self.device) if isinstance(data, TaskData) else data

    def _run_task(self, task: int) -> None:
        self.current_task, self.current_epoch = task, 0
        self.algorithm.current_task = task
        torch.manual_seed(derived_seed(self.seed, "task", task))
        self.call("on_task_start", task)
        optimizer = self.algorithm.prepare_optimizer(task)
        data = self._on_device(self.algorithm.prepare_train_data(task))
        self.steps_per_epoch = math.ceil(len(data) / self.batch_size)  # type: ignore[arg-type]
        self.backbone.train()
        for epoch in range(1, self.epochs_per_task + 1):
            self.current_epoch = epoch
            self.call("on_train_epoch_start", task, epoch)
            generator = torch.Generator().manual_seed(derived_seed(self.seed, "shuffle", task, epoch))
            self._run_epoch(task, epoch, iterate_batches(data, self.batch_size, self.shuffle, generator, self.device),
                            optimizer)
            self.algorithm.train_epoch_end(task, epoch)
            self.call("on_train_epoch_end", task, epoch)
        del data
        self.algorithm.train_task_end(task)
        # One task's training data resident at a time (20-task Rotated MNIST would hold ~0.9 GB).
        self.benchmark.release_training_data()
        self._evaluate_and_report(task)
        self.completed_tasks = task
        self.call("on_task_end", task)
        self._save_checkpoint()

    def _run_epoch(self, task: int, epoch: int, batches: Iterable, optimizer: torch.optim.Optimizer) -> None:
        algorithm = self.algorithm
        # Chosen once per epoch: the default path has no autocast context at all.
        train_step = algorithm.train_step if self.mixed_precision == "none" else self._autocast_train_step
        start_hooks = self._step_callbacks["on_train_batch_start"]
        end_hooks = self._step_callbacks["on_train_batch_end"]
        # First non-finite step, tracked on the device so that no step waits for the host.
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device) if self.stop_on_nonfinite else None
        for step, batch in enumerate(batches):
            for callback in start_hooks:
                callback.on_train_batch_start(self, batch, step)
            loss = train_step(batch, optimizer)
            algorithm.train_step_end(task, step)
            self.global_step += 1
            for callback in end_hooks:
                callback.on_train_batch_end(self, batch, loss, step)
            if bad_step is not None:
                finite = torch.isfinite(loss).all()
                bad_step = torch.where((bad_step < 0) & ~finite, torch.full_like(bad_step, step), bad_step)
                if step % 200 == 199:
                    self._raise_if_nonfinite(bad_step, task, epoch)
        if bad_step is not None:
            self._raise_if_nonfinite(bad_step, task, epoch)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.mixed_precision == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _autocast_train_step(self, batch: Any, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        with self._autocast():
            return self.algorithm.train_step(batch, optimizer)

    def _raise_if_nonfinite(self, bad_step: torch.Tensor, task: int, epoch: int) -> None:
        step = int(bad_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"training loss became NaN or infinite at task {task}, epoch {epoch}, step {step}; "
                "lower the learning rate, or set trainer.stop_on_nonfinite: false to go on"
            )

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> Evaluation:
        """Accuracy and loss of the current model on every task's test data (one host sync in all)."""
        if not self._test_data:
            self.benchmark.ensure_prepared()
            self._test_data = [self._on_device(self.benchmark.load_test(t)) for t in range(1, self.num_tasks + 1)]
        return self._evaluate_on(self._test_data)

    # ---- validation split ------------------------------------------------------------------------
    def _load_validation_data(self) -> None:
        if getattr(self.benchmark, "has_validation", False):
            self._validation_data = [
                self._on_device(self.benchmark.load_validation(t)) for t in range(1, self.num_tasks + 1)
            ]

    def evaluate_validation(self) -> Evaluation | None:
        """Accuracy and loss on every task's validation data; None when the benchmark holds none out."""
        if not self._validation_data:
            self.benchmark.ensure_prepared()
            self._load_validation_data()
        return self._evaluate_on(self._validation_data) if self._validation_data else None
    # ---- end of validation split -----------------------------------------------------------------

    def _evaluate_on(self, datasets: list[DataSource]) -> Evaluation:
        """Accuracy and loss on each of ``datasets`` (one host sync in all)."""
        was_training = self.backbone.training
        self.backbone.eval()
        classification = self.problem == "classification"
        sums = torch.zeros(len(datasets), 3, dtype=torch.float64, device=self.device)  # correct, loss, count
        with torch.inference_mode(), self._autocast():
            for index, data in enumerate(datasets):
                for batch in iterate_batches(data, self.eval_batch_size, device=self.device):
                    outputs = self.algorithm.predict(batch)
                    loss = self.algorithm.criterion(outputs, batch.targets)
                    n = batch.targets.shape[0]
                    sums[index, 1] += loss.double() * n
                    sums[index, 2] += n
                    if classification:
                        sums[index, 0] += (outputs.argmax(dim=1) == batch.targets).sum()
        self.backbone.train(was_training)
        rows = sums.cpu().tolist()
        accuracy = [100.0 * c / n if classification else math.nan for c, _, n in rows]
        loss = [s / n for _, s, n in rows]
        return Evaluation(accuracy=accuracy, loss=loss)

    def release_data(self) -> None:
        """Drop every dataset the run holds (evaluation reloads them if asked again)."""
        self._test_data = []
        self._validation_data = []
        self.benchmark.clear_cache()

    def _evaluate_and_report(self, after_task: int) -> None:
        self.call("on_validation_start", after_task)
        evaluation = self.evaluate()
        validation = self.evaluate_validation() if getattr(self.benchmark, "has_validation", False) else None
        if validation is not None:
            evaluation = dataclasses.replace(evaluation, validation=validation)
        self.call("on_validation_end", after_task, evaluation)

    # ---- checkpoints ----------------------------------------------------------------------------
    @property
    def wall_seconds(self) -> float:
        """Wall time of the run so far, including time spent before a resume."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self.wall_seconds_before + running

    def peak_gpu_memory_mb(self) -> float | None:
        """Peak CUDA memory allocated by tensors in MiB (None off CUDA), including before a resume."""
        if self.device.type != "cuda":
            return None
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        return max(peak, self.peak_gpu_memory_before_mb or 0.0)

    def _callback_keys(self) -> list[str]:
        """A stable key per callback: its registry name, numbered when it appears more than once."""
        seen: dict[str, int] = {}
        keys = []
        for callback in self.callbacks:
            base = getattr(callback, "name", "") or type(callback).__name__
            seen[base] = seen.get(base, 0) + 1
            keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
        return keys

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue after the last finished task (tensors and plain values only)."""
        from clgym_core.checkpoint import rng_state
        from clgym_core.spec import dump_spec

        callbacks = {}
        for key, callback in zip(self._callback_keys(), self.callbacks):
            state = callback.state_dict()
            if state:
                callbacks[key] = state
        return {
            "completed_tasks": self.completed_tasks,
            "num_tasks": self.num_tasks,
            "seed": self.seed,
            "backbone": self.backbone.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "callbacks": callbacks,
            "trainer": {
                "global_step": self.global_step,
                "wall_seconds": self.wall_seconds,
                "peak_memory_mb": max(self.peak_memory_before_mb, peak_host_memory_mb()),
                "peak_gpu_memory_mb": self.peak_gpu_memory_mb(),
            },
            "rng": rng_state(),
            "spec": dump_spec(self.spec) if self.spec is not None else None,
            "device": str(self.device),
            "python": platform.python_version(),
            "torch": str(torch.__version__),
        }

    def _save_checkpoint(self) -> None:
        if not self.checkpoint:
            return
        from clgym_core.checkpoint import check_plain, save_checkpoint

        state = self.checkpoint_state()
        # Name the component whose state cannot be stored safely, at the first checkpoint.
        algorithm = self.algorithm.name or type(self.algorithm).__name__
        check_plain(state["algorithm"], f"algorithm {algorithm}: state_dict()")
        for key, value in state["callbacks"].items():
            check_plain(value, f"callback {key}: state_dict()")
        save_checkpoint(state, Path(self.run_dir))

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint (what :func:`clgym_core.checkpoint.load_checkpoint` returned).

        Counters are set now; weights, algorithm and callback states and RNG states
        are applied when :meth:`fit` has moved the model to its device.
        """
        from clgym_core.checkpoint import CheckpointError

        if int(state["num_tasks"]) != self.num_tasks:
            raise CheckpointError(
                f"checkpoint is for {state['num_tasks']} tasks but the benchmark has {self.num_tasks}"
            )
        self.completed_tasks = int(state["completed_tasks"])
        self.resumed_from = self.completed_tasks
        self.global_step = int(state["trainer"]["global_step"])
        self.wall_seconds_before = float(state["trainer"]["wall_seconds"])
        self.peak_memory_before_mb = float(state["trainer"].get("peak_memory_mb", 0.0))
        self.peak_gpu_memory_before_mb = state["trainer"].get("peak_gpu_memory_mb")
        self._resume_state = state

    def _apply_resume_state(self, state: dict[str, Any]) -> None:
        from clgym_core.checkpoint import CheckpointError, set_rng_state, to_device

        try:
            self.backbone.load_state_dict(state["backbone"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"checkpoint does not fit the backbone ({first})") from None
        self.algorithm.load_state_dict(to_device(state["algorithm"], self.device))
        self.algorithm.current_task = self.completed_tasks
        saved = state["callbacks"]
        for key, callback in zip(self._callback_keys(), self.callbacks):
            if key in saved:
                callback.load_state_dict(saved[key])
        set_rng_state(state["rng"])

    # ---- results --------------------------------------------------------------------------------
    @property
    def accuracy_matrix(self) -> list[list[float]]:
        """Rows 0..completed tasks: accuracy (percent) on every task; row 0 is the untrained model."""
        return self.metrics.accuracy

    @property
    def loss_matrix(self) -> list[list[float]]:
        return self.metrics.loss

    def summary(self) -> dict[str, float]:
        return self.metrics.summary()
