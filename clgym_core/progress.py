"""The live progress display of a run (rich), on stderr."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field

from clgym_core.callback import Callback, Evaluation
from clgym_core.component import Params
from clgym_core.data import Batch

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


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
