"""Callbacks: code that reacts to the trainer's timeline without being part of the research code.

Hook names follow PyTorch Lightning (``on_fit_start``, ``on_train_epoch_end``,
``on_train_batch_end``, ``on_exception``, ...) plus the task level
(``on_task_start`` / ``on_task_end``). Every hook is a no-op by default; the
trainer only calls per-step hooks of callbacks that override them.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field

from clgym_core import metrics as metric_fns
from clgym_core.component import Component, Params, validate_params
from clgym_core.data import Batch

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer, Evaluation

HOOKS = (
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_task_start",
    "on_task_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_exception",
)
STEP_HOOKS = ("on_train_batch_start", "on_train_batch_end")


class Callback(Component):
    """Base class: every hook does nothing."""

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a params object or keyword arguments, not both")
        self.params = validate_params(type(self), params if params is not None else kwargs)

    def setup(self, trainer: ContinualTrainer) -> None:
        """Before anything runs (devices and data are ready)."""

    def teardown(self, trainer: ContinualTrainer) -> None:
        """After the run, whether it finished or failed."""

    def on_fit_start(self, trainer: ContinualTrainer) -> None:
        """Before the first task (after the untrained model was evaluated)."""

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        """After the last task was trained and evaluated."""

    def on_task_start(self, trainer: ContinualTrainer, task: int) -> None:
        """Before training ``task``."""

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        """After ``task`` was trained and every task evaluated."""

    def on_train_epoch_start(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based) of ``task``."""

    def on_train_epoch_end(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        """After epoch ``epoch`` of ``task``."""

    def on_train_batch_start(self, trainer: ContinualTrainer, batch: Batch, step: int) -> None:
        """Before training step ``step`` (0-based within the epoch) of ``trainer.current_task``."""

    def on_train_batch_end(self, trainer: ContinualTrainer, batch: Batch, loss: torch.Tensor, step: int) -> None:
        """After a training step; ``loss`` is a detached device tensor (``.item()`` forces a sync)."""

    def on_validation_start(self, trainer: ContinualTrainer, after_task: int) -> None:
        """Before every task is evaluated (``after_task`` 0 is the untrained model)."""

    def on_validation_end(self, trainer: ContinualTrainer, after_task: int, evaluation: Evaluation) -> None:
        """After every task was evaluated."""

    def on_exception(self, trainer: ContinualTrainer, exception: BaseException) -> None:
        """When the run raises (including ``KeyboardInterrupt``)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` defines ``hook`` itself rather than inheriting the no-op."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class MetricCollector(Callback):
    """Collects the accuracy and loss matrices, training loss and wall time per task."""

    name = "metric_collector"

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.accuracy: list[list[float]] = []
        self.loss: list[list[float]] = []
        self.train_loss: dict[str, float] = {}
        self.task_seconds: dict[int, float] = {}
        self._loss_sum: torch.Tensor | None = None
        self._steps = 0
        self._task_started = 0.0
        self.problem = "classification"
        # Rows of the same matrices on the validation split (empty unless the benchmark holds one out).
        self.validation_accuracy: list[list[float]] = []
        self.validation_loss: list[list[float]] = []

    def setup(self, trainer: ContinualTrainer) -> None:
        self.problem = trainer.problem

    def on_task_start(self, trainer: ContinualTrainer, task: int) -> None:
        self._task_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        self._loss_sum, self._steps = None, 0

    def on_train_batch_end(self, trainer: ContinualTrainer, batch: Batch, loss: torch.Tensor, step: int) -> None:
        # Accumulate on the device: no host sync per step.
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._steps += 1

    def on_train_epoch_end(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        if self._steps:
            self.train_loss[f"{task}/{epoch}"] = float(self._loss_sum) / self._steps  # type: ignore[arg-type]

    def on_validation_end(self, trainer: ContinualTrainer, after_task: int, evaluation: Evaluation) -> None:
        # Row ``after_task`` of the matrices; rows arrive in order 0, 1, ..., T.
        del self.accuracy[after_task:], self.loss[after_task:]
        self.accuracy.append(list(evaluation.accuracy))
        self.loss.append(list(evaluation.loss))
        validation = getattr(evaluation, "validation", None)
        if validation is not None:
            del self.validation_accuracy[after_task:], self.validation_loss[after_task:]
            self.validation_accuracy.append(list(validation.accuracy))
            self.validation_loss.append(list(validation.loss))
        if after_task > 0:
            self.task_seconds[after_task] = time.perf_counter() - self._task_started

    def summary(self) -> dict[str, float]:
        """Summary metrics over the rows collected so far (tasks not yet trained are left out).

        A matrix with a NaN or infinite entry (a run that diverged with
        ``stop_on_nonfinite: false``) gives NaN for every metric instead of failing.
        """
        return self._summarize(self.accuracy, self.loss)

    def validation_summary(self) -> dict[str, float] | None:
        """:meth:`summary` of the validation matrices; None without a validation split."""
        if not self.validation_loss:
            return None
        return self._summarize(self.validation_accuracy, self.validation_loss)

    def _summarize(self, accuracy: list[list[float]], loss: list[list[float]]) -> dict[str, float]:
        kind = "accuracy" if self.problem == "classification" else "loss"
        matrix = _square(accuracy if kind == "accuracy" else loss)
        if not all(math.isfinite(v) for row in matrix for v in row):
            keys = metric_fns.summarize([[0.0] * len(matrix[0])] * len(matrix), kind=kind)
            return {key: math.nan for key in keys}
        return metric_fns.summarize(matrix, kind=kind)

    def state_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "train_loss": self.train_loss,
            "task_seconds": {str(k): v for k, v in self.task_seconds.items()},
            **({"validation_accuracy": self.validation_accuracy, "validation_loss": self.validation_loss}
               if self.validation_loss else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accuracy = [list(r) for r in state.get("accuracy", [])]
        self.loss = [list(r) for r in state.get("loss", [])]
        self.train_loss = dict(state.get("train_loss", {}))
        self.task_seconds = {int(k): float(v) for k, v in state.get("task_seconds", {}).items()}
        self.validation_accuracy = [list(r) for r in state.get("validation_accuracy", [])]
        self.validation_loss = [list(r) for r in state.get("validation_loss", [])]


def _square(rows: list[list[float]]) -> list[list[float]]:
    """The leading (t+1) x t block: the matrix of a run that stopped after task t."""
    t = len(rows) - 1
    return [row[:t] for row in rows] if t >= 1 else rows


class ProgressParams(Params):
    refresh_per_second: float = Field(4.0, gt=0, description="Screen refreshes per second.")


class ProgressBar(Callback):
    """Live progress of tasks, epochs and steps (rich), with the accuracy after each task."""

    name = "progress"
    Params = ProgressParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._progress: Any = None
        self._bars: dict[str, Any] = {}
        self.console: Any = None  # a rich Console to draw on; stderr when unset

    def setup(self, trainer: ContinualTrainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = self.console if self.console is not None else Console(file=sys.stderr)
        self._progress = Progress(
            TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console, refresh_per_second=self.params.refresh_per_second, transient=False,
        )
        self._progress.start()
        self._bars["task"] = self._progress.add_task(
            "task", total=trainer.num_tasks, completed=trainer.completed_tasks, info=""
        )
        self._bars["epoch"] = self._progress.add_task("epoch", total=trainer.epochs_per_task, info="")
        self._bars["step"] = self._progress.add_task("step", total=None, info="")

    def on_task_start(self, trainer: ContinualTrainer, task: int) -> None:
        self._progress.update(self._bars["epoch"], completed=0)

    def on_train_epoch_start(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        self._progress.reset(self._bars["step"], total=trainer.steps_per_epoch)

    def on_train_batch_end(self, trainer: ContinualTrainer, batch: Batch, loss: torch.Tensor, step: int) -> None:
        self._progress.advance(self._bars["step"])

    def on_train_epoch_end(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        self._progress.update(self._bars["epoch"], completed=epoch)

    def on_validation_end(self, trainer: ContinualTrainer, after_task: int, evaluation: Evaluation) -> None:
        if after_task == 0:
            return
        seen = evaluation.accuracy[:after_task] if trainer.problem == "classification" else evaluation.loss[:after_task]
        label = "acc" if trainer.problem == "classification" else "loss"
        info = f"mean {label} on seen tasks {sum(seen) / len(seen):.2f}"
        self._progress.update(self._bars["task"], completed=after_task, info=info)

    def teardown(self, trainer: ContinualTrainer) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
