"""Multitask training on all tasks seen so far."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import DataSource


class JointParams(Params):
    reset_each_task: bool = Field(
        False, description="Restart from the initial weights at every task instead of continuing."
    )


class Joint(Algorithm):
    """Joint (multitask) training on tasks 1..t at task t: the upper bound.

    At task ``t`` the training data is the benchmark's ``load_joint(t)``: every
    task seen so far (``per_task_joint_examples`` of each when set), shuffled
    together. With ``reset_each_task`` each task starts from the initial weights,
    so row ``t`` of the accuracy matrix is a model trained from scratch on 1..t.
    """

    name = "joint"
    Params = JointParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initial_state: dict[str, Any] | None = None

    def prepare_train_data(self, task: int) -> DataSource:
        return self.benchmark.load_joint(task)

    def prepare_optimizer(self, task: int):
        if self.params.reset_each_task:
            if self._initial_state is None:
                self._initial_state = copy.deepcopy(self.backbone.state_dict())
            else:
                self.backbone.load_state_dict(self._initial_state)
        return super().prepare_optimizer(task)

    def state_dict(self) -> dict[str, Any]:
        return {"initial_state": self._initial_state} if self._initial_state is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._initial_state = state.get("initial_state")
