"""The continual trainer: the paper's Algorithm 1 plus the event timeline.

For each task t = 1..T: the algorithm prepares an optimizer and its training
data, the trainer runs the epochs and steps, the algorithm's task hook runs, and
the model is evaluated on every task, including tasks not trained yet (the row
for the untrained model and the entries above the diagonal give forward
transfer). Callbacks see every step of this timeline.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from clgym_core.algorithm import Algorithm
from clgym_core.callback import HOOKS, STEP_HOOKS, Callback, MetricCollector, overrides
from clgym_core.data import DataSource, TaskData, iterate_batches
from clgym_core.errors import ClgymError


class NonFiniteLossError(ClgymError):
    """The training loss became NaN or infinite."""


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


class ContinualTrainer:
    """Trains an algorithm on its benchmark's tasks in order, evaluating every task after each one.

    Randomness is seeded per task: model state aside, task ``t`` draws from
    generators seeded by ``(seed, t, epoch)``, so a run resumed at a task
    boundary draws exactly what an uninterrupted one does.
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
        self.metrics = MetricCollector()
        self.callbacks: list[Callback] = [self.metrics, *(callbacks or [])]
        self.completed_tasks = 0
        self.current_task = 0
        self.current_epoch = 0
        self.steps_per_epoch = 0
        self.global_step = 0
        self.run_dir: Any = None  # set by the runner: where callbacks may write files
        self._test_data: list[DataSource] = []
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
        self._step_callbacks = {h: [c for c in self.callbacks if overrides(c, h)] for h in STEP_HOOKS}
        try:
            self._setup()
            if self.completed_tasks == 0:
                self._evaluate_and_report(0)
            self.call("on_fit_start")
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
        self.call("setup")

    def _on_device(self, data: DataSource) -> DataSource:
        return data.to(self.device) if isinstance(data, TaskData) else data

    def _run_task(self, task: int) -> None:
        self.current_task = task
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
        self.algorithm.train_task_end(task)
        self._evaluate_and_report(task)
        self.completed_tasks = task
        self.call("on_task_end", task)

    def _run_epoch(self, task: int, epoch: int, batches: Iterable, optimizer: torch.optim.Optimizer) -> None:
        algorithm = self.algorithm
        start_hooks = self._step_callbacks["on_train_batch_start"]
        end_hooks = self._step_callbacks["on_train_batch_end"]
        # First non-finite step, tracked on the device so that no step waits for the host.
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device) if self.stop_on_nonfinite else None
        for step, batch in enumerate(batches):
            for callback in start_hooks:
                callback.on_train_batch_start(self, batch, step)
            loss = algorithm.train_step(batch, optimizer)
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
        was_training = self.backbone.training
        self.backbone.eval()
        classification = self.problem == "classification"
        sums = torch.zeros(self.num_tasks, 3, dtype=torch.float64, device=self.device)  # correct, loss, count
        with torch.inference_mode():
            for index, data in enumerate(self._test_data):
                for batch in iterate_batches(data, self.eval_batch_size, device=self.device):
                    outputs = self.algorithm.forward(batch)
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

    def _evaluate_and_report(self, after_task: int) -> None:
        self.call("on_validation_start", after_task)
        evaluation = self.evaluate()
        self.call("on_validation_end", after_task, evaluation)

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
