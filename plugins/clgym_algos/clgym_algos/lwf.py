"""Learning without Forgetting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch
from clgym_core.errors import SpecError

from clgym_algos.frozen import FrozenCopy

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class LwFParams(Params):
    alpha: float = Field(1.0, ge=0, description="lambda_o: weight of the distillation loss (Eq. 2; 1 in the paper).")
    temperature: float = Field(2.0, gt=0, description="T: softmax temperature of the distillation (2 in the paper).")


def soft_cross_entropy(
    outputs: torch.Tensor, reference: torch.Tensor, temperature: float, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """LwF Eq. 2 per example: ``-sum_i y'_i log yhat'_i`` with ``y' = softmax(reference / T)`` and
    ``yhat' = softmax(outputs / T)``, over ``columns`` (a bool mask) when given; shape ``(n,)``."""
    new, old = outputs / temperature, reference / temperature
    if columns is not None:
        lowest = torch.finfo(new.dtype).min
        new, old = new.masked_fill(~columns, lowest), old.masked_fill(~columns, lowest)
    return -(F.softmax(old, dim=1) * F.log_softmax(new, dim=1)).sum(dim=1)


class LwF(Algorithm):
    """Learning without Forgetting: distil the previous model's softened outputs on the new task's data.

    Li & Hoiem 2017, "Learning without Forgetting" (TPAMI; ECCV 2016), Sec. 3
    and Eq. 2: while learning task t the loss is ``CE(f(x), y) + alpha *
    L_old``, where ``L_old`` is the cross-entropy between the temperature-T
    softmax of the previous model's outputs ``y_o`` (the network as it was
    after task t-1, frozen: eval mode, no gradient, never updated) and that of
    the current network's, on the current task's inputs. The paper records
    ``y_o`` once before training; evaluating the frozen copy gives the same
    values. With one head per task, ``L_old`` sums over every old head (each
    input goes through each old head in one batched call); with one shared
    head it covers the classes seen before task t (all of them when tasks
    share classes, the old ones in a class-incremental stream). The paper's
    warm-up phase (training only the new head first) is not done.
    """

    name = "lwf"
    Params = LwFParams
    params: LwFParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification":
            raise SpecError("lwf distils class probabilities and needs a classification benchmark")
        self.previous = FrozenCopy()
        self.seen_classes = torch.zeros(self.benchmark.head_size, dtype=torch.bool)
        self.old_classes = torch.zeros(self.benchmark.head_size, dtype=torch.bool)

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())  # onto the run's device

    def distillation_loss(self, batch: Batch, outputs: torch.Tensor) -> torch.Tensor:
        """``L_old`` on ``batch`` (``outputs``: the current network's outputs for it)."""
        t = self.params.temperature
        old_tasks = self.current_task - 1
        if self.benchmark.num_heads > 1 and old_tasks > 0:
            n = batch.inputs.shape[0]
            inputs = batch.inputs.repeat(old_tasks, *([1] * (batch.inputs.dim() - 1)))
            heads = torch.arange(1, old_tasks + 1, device=inputs.device).repeat_interleave(n)
            per_head = soft_cross_entropy(self.backbone(inputs, heads), self.previous(inputs, heads), t)
            return per_head.sum() / n
        reference = self.previous(batch.inputs, batch.task_ids)
        return soft_cross_entropy(outputs, reference, t, self.old_classes).mean()

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        self.seen_classes |= F.one_hot(batch.targets.long(), self.benchmark.head_size).any(0)
        outputs = self.forward(batch)
        loss = self.criterion(outputs, batch.targets)
        if self.previous:
            loss = loss + self.params.alpha * self.distillation_loss(batch, outputs)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def train_task_end(self, task: int) -> None:
        if task < self.benchmark.num_tasks:
            self.previous.update(self.backbone)
            self.old_classes = self.seen_classes.clone()

    def state_dict(self) -> dict[str, Any]:
        return {"previous": self.previous.state_dict(), "seen_classes": self.seen_classes,
                "old_classes": self.old_classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous.load_state_dict(state["previous"], self.backbone)
        self.seen_classes = state["seen_classes"].to(self.device)
        self.old_classes = state["old_classes"].to(self.device)
