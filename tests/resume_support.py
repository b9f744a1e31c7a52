"""Shared by the checkpoint/resume tests: a tiny stateful algorithm and a CLI entry for child processes.

:class:`AnchoredL2` is the "L2" baseline of Kirkpatrick et al. 2017 (EWC paper, Fig. 2):
``loss + lambda/2 * ||theta - theta*_{t-1}||^2`` with ``theta*`` the weights after the
previous task. Its anchor lives in ``state_dict()``, so a resumed run matches an
uninterrupted one only if algorithm state really is restored.

A child process runs ``python this_file.py ARGS...`` (the ``clgym`` arguments) inside an
isolated registry holding :class:`SyntheticBlobs` and :class:`AnchoredL2`. With
``CLGYM_TEST_PAUSE=TASK:STEP:MARKER`` the algorithm, at training step STEP of task TASK,
writes the file MARKER and sleeps, so the parent can kill or interrupt it mid-task.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch

PAUSE_ENV = "CLGYM_TEST_PAUSE"


class AnchoredL2(Algorithm):
    """L2 penalty towards the weights after the previous task (test algorithm with state)."""

    name = "anchored_l2"

    class Params(Params):
        strength: float = Field(1.0, ge=0, description="lambda: weight of the L2 penalty.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchor: torch.Tensor | None = None
        self.tasks_anchored = 0
        self._steps_in_task = 0
        pause = os.environ.get(PAUSE_ENV)
        self._pause = None
        if pause:
            task, step, marker = pause.split(":", 2)
            self._pause = (int(task), int(step), Path(marker))

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        self._steps_in_task = 0
        return super().prepare_optimizer(task)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        loss = super().training_loss(batch)
        if self.anchor is not None:
            flat = torch.nn.utils.parameters_to_vector(self.backbone.parameters())
            loss = loss + 0.5 * self.params.strength * (flat - self.anchor).pow(2).sum()
        return loss

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if self._pause is not None and self._pause[:2] == (self.current_task, self._steps_in_task):
            self._pause[2].write_text("paused")
            time.sleep(60)  # the parent kills or interrupts us here
        self._steps_in_task += 1
        return super().train_step(batch, optimizer)

    def train_task_end(self, task: int) -> None:
        self.anchor = torch.nn.utils.parameters_to_vector(self.backbone.parameters()).detach().clone()
        self.tasks_anchored = task

    def state_dict(self) -> dict[str, Any]:
        if self.anchor is None:
            return {}
        return {"anchor": self.anchor, "tasks_anchored": self.tasks_anchored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchor = state.get("anchor")
        self.tasks_anchored = int(state.get("tasks_anchored", 0))


def plugin() -> Any:
    from clgym_core.testing import SyntheticBlobs, make_plugin

    return make_plugin(benchmarks=[SyntheticBlobs], algorithms=[AnchoredL2])


SPEC = """\
benchmark: {name: synthetic_blobs, params: {num_tasks: 3, train_examples: 96, test_examples: 48}}
backbone: {name: mlp, params: {hidden_sizes: [32]}}
algorithm: {name: anchored_l2, params: {strength: 0.5}}
optimizer: {name: sgd, lr: 0.1, momentum: 0.5}
trainer: {epochs_per_task: 2, batch_size: 16, device: cpu, progress: false}
seed: 3
"""

TIMING_KEYS = {"task_seconds", "wall_seconds", "peak_memory_mb", "peak_gpu_memory_mb"}


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json without the keys that measure time and memory."""
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def main(argv: list[str]) -> int:
    from clgym_core.cli import app
    from clgym_core.testing import isolated_registry

    # As in a terminal: a child of a background job inherits an ignored SIGINT otherwise.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with isolated_registry({"resume_test": plugin()}):
        try:
            app(argv, prog_name="clgym", standalone_mode=True)
        except SystemExit as stop:
            return int(stop.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
