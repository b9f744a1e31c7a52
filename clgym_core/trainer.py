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
import json
import math
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clgym_core.algorithm import Algorithm
from clgym_core.checkpoint import check_plain, rng_state, save_checkpoint, set_rng_state, to_device
from clgym_core.callback import STEP_HOOKS, Callback, Evaluation, overrides
from clgym_core.collector import MetricCollector
from clgym_core.data import DataSource, TaskData, iterate_batches
from clgym_core.distributed import Placement, fabric_placement
from clgym_core.errors import CheckpointError, ClgymError, NonFiniteLossError
from clgym_core.optim import prepare_for_task
from clgym_core.profiling import PhaseTimes, RunProfiler
from clgym_core.resources import peak_gpu_memory_mb, peak_host_memory_mb
from clgym_core.settings import MIXED_PRECISION, TrainerSettings

__all__ = ["ContinualTrainer", "Evaluation", "NonFiniteLossError", "RunContext", "TrainerSettings"]


@dataclass(frozen=True)
class RunContext:
    """What the trainer must know about the run it belongs to, passed in by whoever runs it.

    ``run_dir`` is where the run's files go (None from the Python API: nothing is written);
    ``spec`` is the resolved spec as plain data, ``spec_yaml`` the same as ``spec.yaml`` holds it;
    ``profile``: record a torch.profiler trace and the time per phase (``clgym run --profile``).
    """

    run_dir: Path | None = None
    spec: dict[str, Any] | None = field(default=None, compare=False)
    spec_yaml: str | None = field(default=None, compare=False)
    profile: bool = False


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


_NO_RANGE = contextlib.nullcontext()


def make_placement(settings: TrainerSettings) -> Placement:
    """One device in this process (``trainer.device``), or Lightning Fabric when a Fabric field is set."""
    if settings.uses_fabric:
        return fabric_placement(settings)
    return Placement(resolve_device(settings.device))


def derived_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed for one purpose, independent of everything drawn before it."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


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
        settings: TrainerSettings | dict[str, Any] | None = None,
        callbacks: Sequence[Callback] | None = None,
        *,
        seed: int = 0,
        run: RunContext | None = None,
        placement: Placement | None = None,
        **options: Any,
    ) -> None:
        """``settings`` (or keyword ``options`` such as ``epochs_per_task=3``) say how to train.

        From the Python API nothing is written and checkpoints are off unless ``run``
        names a run directory; ``clgym run`` passes the resolved spec's settings and its run.
        ``placement`` is where training runs (:mod:`clgym_core.distributed`); by default it
        follows the settings, launching Fabric's processes when a Fabric field is set.
        """
        if options:
            if settings is not None:
                raise TypeError("pass either settings or keyword options, not both")
            settings = {"checkpoint": False, "progress": False, **options}
        if settings is None:
            settings = TrainerSettings(checkpoint=False, progress=False)
        try:
            self.settings = settings if isinstance(settings, TrainerSettings) else TrainerSettings(**settings)
        except ValueError as exc:  # pydantic's ValidationError: name the field in one line
            from clgym_core.component import format_validation_error

            raise ClgymError(f"trainer: {format_validation_error(exc, 'trainer')}") from None
        self.run = run if run is not None else RunContext()
        if self.settings.checkpoint and self.run.run_dir is None and options.get("checkpoint"):
            raise ValueError("checkpoint=True needs a run directory: pass run=RunContext(run_dir=...)")
        self.algorithm = algorithm
        self.benchmark = algorithm.benchmark
        self.backbone = algorithm.backbone
        self.placement = placement if placement is not None else make_placement(self.settings)
        self.device = self.placement.device
        check_mixed_precision(self.settings.mixed_precision, self.device)
        self.seed = int(seed)
        self.metrics = MetricCollector()
        # Callbacks observe and write files: under ddp they run in process 0 only (every process keeps its metrics).
        self.callbacks: list[Callback] = [self.metrics, *(callbacks or [])] if self.placement.is_main else [self.metrics]
        self.completed_tasks = 0
        self.current_task = 0
        self.current_epoch = 0
        self.steps_per_epoch = 0
        self.global_step = 0
        self.resumed_from: int | None = None  # tasks finished before this process took over
        self.wall_seconds_before = 0.0  # training wall time spent before a resume
        self.peak_memory_before_mb = 0.0
        self.peak_gpu_memory_before_mb: float | None = None
        self._fit_started: float | None = None
        self._resume_state: dict[str, Any] | None = None
        self._test_data: list[DataSource] = []
        self._validation_data: list[DataSource] = []
        self._step_callbacks: dict[str, list[Callback]] = {}
        self.profiler: RunProfiler | None = None  # while fitting with run.profile (process 0 only)

    # ---- settings, read-only ----------------------------------------------------------------------
    @property
    def epochs_per_task(self) -> int:
        return self.settings.epochs_per_task

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.settings.eval_batch_size

    @property
    def mixed_precision(self) -> str:
        return self.settings.mixed_precision

    @property
    def run_dir(self) -> Path | None:
        """Where callbacks may write files (None from the Python API)."""
        return self.run.run_dir

    @property
    def checkpointing(self) -> bool:
        """Whether a checkpoint is written after every task (needs a run directory)."""
        return self.settings.checkpoint and self.run.run_dir is not None and self.placement.is_main

    # ---- description ---------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return self.benchmark.num_tasks

    @property
    def problem(self) -> str:
        return self.benchmark.problem

    # ---- events ---------------------------------------------------------------------------------
    def add_callback(self, callback: Callback) -> None:
        """Attach ``callback`` (before :meth:`fit`)."""
        self.callbacks.append(callback)

    def call(self, hook: str, *args: Any) -> None:
        """Dispatch ``hook`` to every callback (the per-step hooks go straight to those that define them)."""
        with self._phase("callbacks"):
            for callback in self.callbacks:
                getattr(callback, hook)(self, *args)

    def _phase(self, phase: str) -> contextlib.AbstractContextManager:
        """A profiler range around a per-task or per-epoch phase; nothing when not profiling."""
        return self.profiler.range(phase) if self.profiler is not None else _NO_RANGE

    @property
    def profile(self) -> PhaseTimes | None:
        """Where the time went, by phase, once a profiled ``fit`` has ended."""
        return self.profiler.times if self.profiler is not None else None

    # ---- the run --------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train on every remaining task; returns the summary metrics."""
        self._step_callbacks = {h: [c for c in self.callbacks if overrides(c, h)] for h in STEP_HOOKS}
        self._fit_started = time.perf_counter()
        if self.run.profile and self.placement.is_main:
            self.profiler = RunProfiler(self.device, self.backbone)
            self.profiler.start()
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
            failures = []
            for callback in self.callbacks:
                try:
                    callback.on_exception(self, exc)
                except Exception as hook_error:  # a failing callback must not mask the original error
                    failures.append(f"callback {callback.name or type(callback).__name__}.on_exception failed: "
                                    f"{type(hook_error).__name__}: {' '.join(str(hook_error).split())}")
            for line in failures:  # said after the original error is on its way, never instead of it
                sys.stderr.write(f"warning: {line}\n")
            raise
        finally:
            for callback in self.callbacks:
                callback.teardown(self)
            if self.profiler is not None:
                self.profiler.stop(time.perf_counter() - self._fit_started)
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
        self.placement.broadcast_module(self.backbone)  # whatever each process initialised, process 0's weights
        self.call("setup")

    def _on_device(self, data: DataSource) -> DataSource:
        return data.to(self.device) if isinstance(data, TaskData) else data

    def _run_task(self, task: int) -> None:
        if self.profiler is None:
            self._train_task(task)
            return
        with self.profiler.task_range(task):
            self._train_task(task)

    def _train_task(self, task: int) -> None:
        self.current_task, self.current_epoch = task, 0
        self.algorithm.current_task = task
        torch.manual_seed(derived_seed(self.seed, "task", task))
        self.call("on_task_start", task)
        with self._phase("algorithm_hooks"):
            optimizer = self.algorithm.prepare_optimizer(task)
        scheduler = prepare_for_task(optimizer, self.algorithm.optimizer_config, task, self.epochs_per_task)
        with self._phase("data"):
            data = self._on_device(self.algorithm.prepare_train_data(task))
        self.steps_per_epoch = math.ceil(len(data) / self.batch_size)  # type: ignore[arg-type]
        self.backbone.train()
        stopper = _EarlyStopping(self.settings.early_stopping_patience, self.problem)
        averager = self.placement.gradient_averager(p for group in optimizer.param_groups for p in group["params"])
        try:
            for epoch in range(1, self.epochs_per_task + 1):
                self.current_epoch = epoch
                self.call("on_train_epoch_start", task, epoch)
                generator = torch.Generator().manual_seed(derived_seed(self.seed, "shuffle", task, epoch))
                batches = iterate_batches(data, self.batch_size, self.settings.shuffle, generator, self.device)
                self._run_epoch(task, epoch, batches, optimizer, averager)
                with self._phase("algorithm_hooks"):
                    self.algorithm.train_epoch_end(task, epoch)
                if scheduler is not None:
                    scheduler.step()
                if stopper.active and epoch < self.epochs_per_task and stopper.should_stop(self._task_validation(task)):
                    self.backbone.train()
                    break
                self.call("on_train_epoch_end", task, epoch)
        finally:
            if averager is not None:
                averager.remove()
        del data
        with self._phase("algorithm_hooks"):
            self.algorithm.train_task_end(task)
        if self.placement.distributed:
            self._share_process_zero_state()
        # One task's training data resident at a time (20-task Rotated MNIST would hold ~0.9 GB).
        self.benchmark.release_training_data()
        self._evaluate_and_report(task)
        self.completed_tasks = task
        self.call("on_task_end", task)
        self._save_checkpoint()

    def _share_process_zero_state(self) -> None:
        """Process 0's weights, buffers (BatchNorm statistics saw only its shard) and algorithm state everywhere."""
        self.placement.broadcast_module(self.backbone)
        state = self.placement.broadcast_state(self.algorithm.state_dict())
        if not self.placement.is_main:
            name = self.algorithm.name or type(self.algorithm).__name__
            _restore(f"algorithm {name}", self.algorithm.load_state_dict, state)

    def _run_epoch(
        self, task: int, epoch: int, batches: Iterable, optimizer: torch.optim.Optimizer, averager: Any = None
    ) -> None:
        batches, train_step, step_end, start_hooks, end_hooks = self._step_callables(batches, averager)
        # First non-finite step, tracked on the device so that no step waits for the host.
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device) if self.settings.stop_on_nonfinite else None
        for step, batch in enumerate(batches):
            for hook in start_hooks:
                hook(self, batch, step)
            loss = train_step(batch, optimizer)
            step_end(task, step)
            self.global_step += 1
            for hook in end_hooks:
                hook(self, batch, loss, step)
            if bad_step is not None:
                finite = torch.isfinite(loss).all()
                bad_step = torch.where((bad_step < 0) & ~finite, torch.full_like(bad_step, step), bad_step)
                if step % 200 == 199:
                    self._raise_if_nonfinite(bad_step, task, epoch)
        if bad_step is not None:
            self._raise_if_nonfinite(bad_step, task, epoch)

    def _sharded(self, train_step: Any, averager: Any) -> Any:
        """``train_step`` under ddp: on this process's slice of the global batch, returning the global batch's loss.

        Callbacks (process 0 only) see the global batch and its loss, as in one process; every
        process sees the same loss, so every process stops at the same non-finite step.
        """
        placement = self.placement

        def step(batch: Any, optimizer: torch.optim.Optimizer) -> torch.Tensor:
            shard, weight = placement.shard(batch)
            averager.weight = weight
            local = train_step(shard, optimizer).detach()
            contribution = local.double() * weight if weight else torch.zeros((), dtype=torch.float64, device=self.device)
            return placement.all_reduce_sum(contribution.reshape(1)).reshape(()).to(local.dtype)
        return step

    def _step_callables(self, batches: Iterable, averager: Any = None) -> tuple[Iterable, Any, Any, list, list]:
        """What an epoch's loop calls at every step, chosen once per epoch: sharded only under ddp, with
        profiler ranges only when profiling."""
        train_step = self.algorithm.train_step if self._full_precision else self._autocast_train_step
        step_end = self.algorithm.train_step_end
        start_hooks = [c.on_train_batch_start for c in self._step_callbacks["on_train_batch_start"]]
        end_hooks = [c.on_train_batch_end for c in self._step_callbacks["on_train_batch_end"]]
        if self.profiler is not None:
            train_step = self.profiler.step(train_step)
            step_end = self.profiler.hooks("algorithm_hooks", [step_end])[0]
            start_hooks = self.profiler.hooks("callbacks", start_hooks)
            end_hooks = self.profiler.hooks("callbacks", end_hooks)
            batches = self.profiler.batches(batches)
        if self.placement.distributed:
            train_step = self._sharded(train_step, averager)
        return batches, train_step, step_end, start_hooks, end_hooks

    @property
    def _full_precision(self) -> bool:
        return self.mixed_precision == "none" and self.placement.autocast() is None

    def _autocast(self) -> contextlib.AbstractContextManager:
        context = self.placement.autocast()
        if context is not None:
            return context
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
        return self._evaluate_on(self._test_sets())

    def _test_sets(self) -> list[DataSource]:
        if not self._test_data:
            self.benchmark.ensure_prepared()
            self._test_data = [self._on_device(self.benchmark.load_test(t)) for t in range(1, self.num_tasks + 1)]
        return self._test_data

    def _load_validation_data(self) -> None:
        if getattr(self.benchmark, "has_validation", False):
            self._validation_data = [
                self._on_device(self.benchmark.load_validation(t)) for t in range(1, self.num_tasks + 1)
            ]

    def evaluate_validation(self) -> Evaluation | None:
        """Accuracy and loss on every task's validation data; None when the benchmark holds none out."""
        datasets = self._validation_sets()
        return None if datasets is None else self._evaluate_on(datasets)

    def _validation_sets(self) -> list[DataSource] | None:
        if not getattr(self.benchmark, "has_validation", False):
            return None
        if not self._validation_data:
            self.benchmark.ensure_prepared()
            self._load_validation_data()
        return self._validation_data

    def _evaluate_on(self, datasets: list[DataSource], together: bool = False) -> Evaluation:
        """Accuracy and loss on each of ``datasets`` (one host sync in all).

        ``together``: every process is evaluating (the trainer's own evaluations, never a
        callback's): under ddp each evaluates every ``world_size``-th batch and the sums are added up.
        """
        split = together and self.placement.distributed
        was_training = self.backbone.training
        self.backbone.eval()
        classification = self.problem == "classification"
        sums = torch.zeros(len(datasets), 3, dtype=torch.float64, device=self.device)  # correct, loss, count
        with torch.inference_mode(), self._autocast():
            for index, data in enumerate(datasets):
                for number, batch in enumerate(iterate_batches(data, self.eval_batch_size, device=self.device)):
                    if split and number % self.placement.world_size != self.placement.rank:
                        continue
                    outputs = self.algorithm.predict(batch)
                    loss = self.algorithm.criterion(outputs, batch.targets)
                    n = batch.targets.shape[0]
                    sums[index, 1] += loss.double() * n
                    sums[index, 2] += n
                    if classification:
                        sums[index, 0] += (outputs.argmax(dim=1) == batch.targets).sum()
        self.backbone.train(was_training)
        if split:
            self.placement.all_reduce_sum(sums)
        rows = sums.cpu().tolist()
        accuracy = [100.0 * c / n if classification else math.nan for c, _, n in rows]
        loss = [s / n for _, s, n in rows]
        return Evaluation(accuracy=accuracy, loss=loss)

    def release_data(self) -> None:
        """Drop every dataset the run holds (evaluation reloads them if asked again)."""
        self._test_data = []
        self._validation_data = []
        self.benchmark.clear_cache()

    def _task_validation(self, task: int) -> float:
        """The current task's validation accuracy (or loss for regression), for early stopping."""
        if not self._validation_data:
            self._load_validation_data()
        if not self._validation_data:
            raise ClgymError("trainer.early_stopping_patience needs a validation split; "
                             "set benchmark.params.validation_fraction")
        with self._phase("evaluation"):
            evaluation = self._evaluate_on([self._validation_data[task - 1]], together=True)
        return evaluation.accuracy[0] if self.problem == "classification" else evaluation.loss[0]

    def _evaluate_and_report(self, after_task: int) -> None:
        self.call("on_validation_start", after_task)
        with self._phase("evaluation"):
            evaluation = self._evaluate_on(self._test_sets(), together=True)
            datasets = self._validation_sets()
            validation = None if datasets is None else self._evaluate_on(datasets, together=True)
        if validation is not None:
            evaluation = dataclasses.replace(evaluation, validation=validation)
        self.call("on_validation_end", after_task, evaluation)

    # ---- checkpoints ----------------------------------------------------------------------------
    @property
    def wall_seconds(self) -> float:
        """Wall time of the run so far, including time spent before a resume."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self.wall_seconds_before + running

    def peak_memory_mb(self) -> float:
        """Peak resident host memory in MiB, including before a resume."""
        return max(self.peak_memory_before_mb, peak_host_memory_mb())

    def peak_gpu_memory_mb(self) -> float | None:
        """Peak CUDA memory allocated by tensors in MiB (None off CUDA), including before a resume."""
        peak = peak_gpu_memory_mb(self.device)
        return None if peak is None else max(peak, self.peak_gpu_memory_before_mb or 0.0)

    def _callback_keys(self) -> list[str]:
        """A stable key per callback, independent of order: its registry name, plus its params when the
        same name appears more than once (two CSV loggers writing different files)."""
        names = [getattr(c, "name", "") or type(c).__name__ for c in self.callbacks]
        keys = []
        for name, callback in zip(names, self.callbacks):
            if names.count(name) == 1:
                keys.append(name)
                continue
            params = getattr(callback, "params", None)
            plain = params.model_dump(mode="json") if hasattr(params, "model_dump") else {}
            keys.append(f"{name}:{json.dumps(plain, sort_keys=True)}")
        return keys

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue after the last finished task (tensors and plain values only)."""
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
                "peak_memory_mb": self.peak_memory_mb(),
                "peak_gpu_memory_mb": self.peak_gpu_memory_mb(),
            },
            "rng": rng_state(),
            "spec": self.run.spec_yaml,
            "device": str(self.device),
            "python": platform.python_version(),
            "torch": str(torch.__version__),
        }

    def _save_checkpoint(self) -> None:
        if not self.checkpointing:
            return
        state = self.checkpoint_state()
        # Name the component whose state cannot be stored safely, at the first checkpoint.
        algorithm = self.algorithm.name or type(self.algorithm).__name__
        check_plain(state["algorithm"], f"algorithm {algorithm}: state_dict()")
        for key, value in state["callbacks"].items():
            check_plain(value, f"callback {key}: state_dict()")
        save_checkpoint(state, Path(self.run.run_dir))

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint (what :func:`clgym_core.checkpoint.load_checkpoint` returned).

        Counters are set now; weights, algorithm and callback states and RNG states
        are applied when :meth:`fit` has moved the model to its device.
        """
        try:
            num_tasks = int(state["num_tasks"])
            completed = int(state["completed_tasks"])
            counters = state["trainer"]
            global_step = int(counters["global_step"])
            wall_seconds = float(counters["wall_seconds"])
            peak_memory = float(counters.get("peak_memory_mb") or 0.0)
            peak_gpu = counters.get("peak_gpu_memory_mb")
            peak_gpu = None if peak_gpu is None else float(peak_gpu)
            if not isinstance(state["callbacks"], dict) or not isinstance(state["rng"], dict):
                raise TypeError("callbacks and rng must be mappings")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint holds malformed fields ({type(exc).__name__}: {exc})") from None
        if num_tasks != self.num_tasks:
            raise CheckpointError(f"checkpoint is for {num_tasks} tasks but the benchmark has {self.num_tasks}")
        if not 0 <= completed <= num_tasks:
            raise CheckpointError(f"checkpoint says {completed} of {num_tasks} tasks are finished")
        self.completed_tasks = completed
        self.resumed_from = completed
        self.global_step = global_step
        self.wall_seconds_before = wall_seconds
        self.peak_memory_before_mb = peak_memory
        self.peak_gpu_memory_before_mb = peak_gpu
        self._resume_state = state

    def _apply_resume_state(self, state: dict[str, Any]) -> None:
        try:
            self.backbone.load_state_dict(state["backbone"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"checkpoint does not fit the backbone ({first})") from None
        name = self.algorithm.name or type(self.algorithm).__name__
        _restore(f"algorithm {name}", self.algorithm.load_state_dict, to_device(state["algorithm"], self.device))
        self.algorithm.current_task = self.completed_tasks
        saved = state["callbacks"]
        for key, callback in zip(self._callback_keys(), self.callbacks):
            if key in saved:
                _restore(f"callback {key}", callback.load_state_dict, saved[key])
        _restore("random number generators", set_rng_state, state["rng"])

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


def _restore(what: str, load: Any, state: Any) -> None:
    """``load(state)``; a state that does not fit is a one-line :class:`CheckpointError` naming ``what``."""
    try:
        load(state)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"checkpoint does not fit the {what} ({type(exc).__name__}: {first})") from None


class _EarlyStopping:
    """Counts epochs without improvement of a task's validation score (reset every task)."""

    def __init__(self, patience: int | None, problem: str) -> None:
        self.patience = patience
        self.higher_is_better = problem == "classification"
        self.best: float | None = None
        self.stale = 0

    @property
    def active(self) -> bool:
        return self.patience is not None

    def should_stop(self, score: float) -> bool:
        better = self.best is None or (score > self.best if self.higher_is_better else score < self.best)
        if better:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        return self.stale >= (self.patience or 0)
