"""Callbacks: code that reacts to the trainer's timeline without being part of the research code.

Hook names follow PyTorch Lightning (``on_fit_start``, ``on_train_epoch_end``,
``on_train_batch_end``, ``on_exception``, ...) plus the task level
(``on_task_start`` / ``on_task_end``). Every hook is a no-op by default; the
trainer only calls per-step hooks of callbacks that override them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from clgym_core.component import Component, Params, validate_params
from clgym_core.data import Batch

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


@dataclass(frozen=True)
class Evaluation:
    """Per-task results of one evaluation pass: accuracy in percent (NaN for regression) and mean loss."""

    accuracy: list[float]
    loss: list[float]
    #: The same on each task's validation data, when the benchmark holds some out (validation_fraction).
    validation: Evaluation | None = None

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
