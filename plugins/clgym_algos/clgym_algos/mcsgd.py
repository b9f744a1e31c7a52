"""Mode Connectivity SGD."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field
from torch.func import functional_call

from clgym_core.algorithm import Algorithm, build_optimizer
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams
from clgym_algos.memory import as_task_data
from clgym_algos.stable_sgd import decayed_lr

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class MCSGDParams(Params):
    alpha: float = Field(
        0.05, ge=0, le=1, description="Start of the line phase: w_prev + alpha (w_hat - w_prev)."
    )
    line_samples: int = Field(5, ge=1, description="Points n on each line: alpha_i = i/n, i = 1..n.")
    line_lr: float = Field(0.15, gt=0, description="Learning rate of the line phase (the run's optimizer type and momentum).")
    line_batch_size: int = Field(16, ge=1, description="Batch size of the line phase (memory and current subset).")
    line_epochs: int = Field(1, ge=1, description="Epochs of the line phase over memory and current subset.")
    lr_decay: float = Field(
        1.0, gt=0, le=1, description="Continual phase of task t trains with lr * lr_decay^(t-1) (1: no decay)."
    )
    min_lr: float = Field(5e-4, ge=0, description="Lower bound of the decayed continual learning rate.")


class MCSGD(UsesFlatParams, Algorithm):
    """MC-SGD: after each task, find weights on low-loss lines to the previous and the new solution.

    Mirzadeh et al. 2021, "Linear Mode Connectivity in Multitask and
    Continual Learning" (ICLR), Sec. 5. Task 1 trains normally and gives
    ``w_bar_1``. For task t >= 2, the continual solution ``w_hat_t`` is
    trained first from ``w_bar_{t-1}`` with the run's optimizer (learning rate
    decayed per task by ``lr_decay``, as in the authors' runs). Then, starting
    from ``w_bar_{t-1} + alpha (w_hat_t - w_bar_{t-1})``, SGD minimises

        1/n sum_{i=1..n} L_{<t}(w_bar_{t-1} + a_i (w - w_bar_{t-1})) + L_t(w_hat_t + a_i (w - w_hat_t)),

    ``a_i = i/n`` (both losses integrated along their segment by a right
    Riemann sum), with ``L_{<t}`` the loss on the episodic memories of tasks
    1..t-1 and ``L_t`` the loss on a subset of task t (``load_subset`` when the
    benchmark sets ``per_task_subset_examples``, else task t's memory). Each
    step takes one batch of each; when one set runs out the other goes on
    alone (as in the authors' code). It runs ``line_epochs`` epochs, entirely
    on the device, in eval mode; the result is ``w_bar_t``.

    Where the authors' code differs: it trains each ``w_hat_t`` from
    ``w_hat_{t-1}`` (a plain finetuning chain) rather than from
    ``w_bar_{t-1}``; it back-propagates each line point's loss
    to the point itself, dropping the chain-rule factor a_i, sums the points
    (a = 0 included) instead of averaging them, and divides each batch's mean
    loss by the batch size again; here the gradient is the exact gradient of
    the objective above (autograd through ``functional_call``), so its
    ``line_lr`` is not theirs. CL-Gym took a single step on the whole memory;
    this runs every step of every epoch (``line_steps`` records how many).
    """

    name = "mcsgd"
    Params = MCSGDParams
    params: MCSGDParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not getattr(self.benchmark.params, "per_task_memory_examples", None):
            raise SpecError("mcsgd needs episodic memory: set benchmark.params.per_task_memory_examples (e.g. 200)")
        self.w_prev: torch.Tensor | None = None  # w_bar of the last completed task
        self.w_hat: torch.Tensor | None = None  # continual solution of the last task
        self.line_steps: dict[int, int] = {}

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        lr = decayed_lr(self.optimizer_config.lr, self.params.lr_decay, task, self.params.min_lr)
        return build_optimizer(self.backbone.parameters(), self.optimizer_config, lr=lr)

    # ---- line phase -----------------------------------------------------------------------------------
    def line_loss(self, start: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``1/n sum_i L(start + a_i (w - start))`` on ``batch``, differentiable in the backbone's weights."""
        n = self.params.line_samples
        starts = self.flat.as_dict(start)
        total = torch.zeros((), device=start.device)
        for i in range(1, n + 1):
            a = i / n
            point = {name: s + a * (p - s) for name, p, s in zip(self.flat.names, self.flat.params, starts.values())}
            outputs = functional_call(self.backbone, point, (batch.inputs, batch.task_ids))
            total = total + self.criterion(outputs, batch.targets)
        return total / n

    def _current_subset(self, task: int) -> TaskData:
        if getattr(self.benchmark.params, "per_task_subset_examples", None):
            return as_task_data(self.benchmark.load_subset(task))
        return as_task_data(self.benchmark.load_memory(task))

    def line_phase(self, task: int) -> None:
        """Move the backbone from ``w_hat_t`` to ``w_bar_t`` (see the class docstring)."""
        assert self.w_prev is not None
        w_prev, w_hat = self.w_prev, self.flat.values()
        self.w_hat = w_hat
        self.flat.set_values(w_prev + self.params.alpha * (w_hat - w_prev))
        previous = self.to_device(as_task_data(self.benchmark.load_memory_joint(task - 1)))
        current = self.to_device(self._current_subset(task))
        optimizer = build_optimizer(self.backbone.parameters(), self.optimizer_config, lr=self.params.line_lr)
        size = self.params.line_batch_size
        was_training = self.backbone.training
        self.backbone.eval()
        steps = 0
        try:
            for _ in range(self.params.line_epochs):
                # Shuffles drawn from the global RNG, which the trainer seeds per task.
                seeds = torch.randint(0, 1 << 62, (2,)).tolist()
                pairs = itertools.zip_longest(
                    previous.batches(size, shuffle=True, generator=torch.Generator().manual_seed(seeds[0])),
                    current.batches(size, shuffle=True, generator=torch.Generator().manual_seed(seeds[1])),
                )
                for prev_batch, curr_batch in pairs:
                    optimizer.zero_grad(set_to_none=True)
                    loss = torch.zeros((), device=self.device)
                    if prev_batch is not None:
                        loss = loss + self.line_loss(w_prev, prev_batch)
                    if curr_batch is not None:
                        loss = loss + self.line_loss(w_hat, curr_batch)
                    loss.backward()
                    optimizer.step()
                    steps += 1
        finally:
            self.backbone.train(was_training)
        self.line_steps[task] = steps

    def train_task_end(self, task: int) -> None:
        if task >= 2 and self.w_prev is not None:
            self.line_phase(task)
        else:
            self.w_hat = self.flat.values()
        self.w_prev = self.flat.values()

    # ---- persistence ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"line_steps": dict(self.line_steps)}
        if self.w_prev is not None:
            state["w_prev"] = self.w_prev
        if self.w_hat is not None:
            state["w_hat"] = self.w_hat
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_prev = state["w_prev"].to(self.device) if "w_prev" in state else None
        self.w_hat = state["w_hat"].to(self.device) if "w_hat" in state else None
        self.line_steps = {int(k): int(v) for k, v in state.get("line_steps", {}).items()}
