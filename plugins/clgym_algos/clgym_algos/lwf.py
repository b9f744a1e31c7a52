"""Learning without Forgetting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from clgym_core.algorithm import Algorithm
from clgym_core.benchmark import targets_of
from clgym_core.component import Params
from clgym_core.data import Batch, DataSource, iterate_batches
from clgym_core.errors import SpecError
from clgym_core.trainer import derived_seed

from clgym_algos.frozen import FrozenCopy

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class LwFParams(Params):
    alpha: float = Field(1.0, ge=0, description="lambda_o: weight of the distillation loss (Eq. 2; 1 in the paper).")
    temperature: float = Field(2.0, gt=0, description="T: softmax temperature of the distillation (2 in the paper).")
    warmup_epochs: int = Field(
        0, ge=0,
        description="Epochs of the paper's warm-up before each task after the first: only the new task's outputs "
        "are trained, on frozen features (Sec. 3). 0: no warm-up.",
    )
    warmup_lr: float | None = Field(
        None, gt=0, description="Plain-SGD learning rate of the warm-up; unset: the run's optimizer lr."
    )


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
    share classes, the old ones in a class-incremental stream).

    ``warmup_epochs`` adds the paper's warm-up (Sec. 3, "we first freeze
    theta_s and theta_o and train theta_n to convergence"): before each task
    after the first, plain SGD trains only the new task's output units on the
    backbone's frozen features (eval mode, no gradient into them), with the
    cross-entropy over those units alone: the task's head when each task has
    one, the columns of the classes new in this task on a shared head (none in
    a domain-incremental stream, so no warm-up there). "To convergence" is
    approximated by a fixed number of epochs; the previous model's outputs are
    those of the network before the warm-up, which leaves them unchanged (only
    new units move). Off by default.
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
        if self.params.warmup_epochs and not (
            callable(getattr(self.backbone, "features", None)) and isinstance(getattr(self.backbone, "head", None),
                                                                              nn.Module)):
            raise SpecError(
                f"lwf.params.warmup_epochs needs a backbone with `features` and a `head` (the new units to warm "
                f"up): backbone {self.backbone.name!r} has not both"
            )

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())  # onto the run's device

    def prepare_train_data(self, task: int) -> DataSource:
        data = super().prepare_train_data(task)
        if self.params.warmup_epochs and self.previous:
            self.warm_up(task, data)
        return data

    def warm_up(self, task: int, data: DataSource) -> None:
        """Train the new task's output units alone on frozen features (Sec. 3's warm-up)."""
        multi_head = self.benchmark.num_heads > 1
        columns = None
        if not multi_head:
            targets = targets_of(data)
            if targets is None:  # a dataset that does not expose its labels: read them once
                targets = torch.cat([batch.targets for batch in iterate_batches(data, 4096)])
            present = F.one_hot(targets.long(), self.benchmark.head_size).any(0).to(self.device)
            columns = present & ~self.old_classes
            if not columns.any():
                return  # no new classes on a shared head: nothing to warm up
            position = torch.cumsum(columns.long(), 0) - 1  # class -> its place among the new columns
        head, backbone = self.backbone.head, self.backbone
        optimizer = torch.optim.SGD(head.parameters(), lr=self.params.warmup_lr or self.optimizer_config.lr)
        seed = self.trainer.seed if self.trainer is not None else 0
        was_training = backbone.training
        backbone.eval()
        try:
            for epoch in range(1, self.params.warmup_epochs + 1):
                generator = torch.Generator().manual_seed(derived_seed(seed, "lwf_warmup", task, epoch))
                for batch in iterate_batches(data, self.batch_size, True, generator, self.device):
                    with torch.no_grad():
                        features = backbone.features(batch.inputs).flatten(1)
                    outputs = head(features, batch.task_ids)
                    targets = batch.targets.long()
                    if columns is not None:
                        keep = columns[targets]  # examples of new classes (replayed old ones take no part)
                        if not keep.any():
                            continue
                        outputs, targets = outputs[keep][:, columns], position[targets[keep]]
                    optimizer.zero_grad(set_to_none=True)
                    F.cross_entropy(outputs, targets).backward()
                    optimizer.step()
        finally:
            backbone.train(was_training)
            for parameter in backbone.parameters():
                parameter.grad = None

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
