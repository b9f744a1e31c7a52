"""The metric collector: the accuracy and loss matrices, training loss and wall time of a run."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from clgym_core import metrics as metric_fns
from clgym_core.callback import Callback, Evaluation
from clgym_core.component import Params
from clgym_core.data import Batch

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


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
        if evaluation.validation is not None:
            del self.validation_accuracy[after_task:], self.validation_loss[after_task:]
            self.validation_accuracy.append(list(evaluation.validation.accuracy))
            self.validation_loss.append(list(evaluation.validation.loss))
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
