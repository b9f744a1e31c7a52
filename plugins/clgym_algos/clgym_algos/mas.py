"""Memory Aware Synapses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch

from clgym_algos.flat import UsesFlatParams, jacobian_chunk, per_example_jacobians
from clgym_algos.memory import draw_train_examples

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class MASParams(Params):
    lambda_: float = Field(1.0, alias="lambda", ge=0, description="lambda: strength of the penalty (Eq. 3; 1 in the paper).")
    importance_examples: int = Field(
        1024, ge=1, description="Training examples of each task (inputs only; labels unused) behind its importance."
    )


def squared_output_norm(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||F(x)||_2^2`` of one example's outputs (the target is ignored: MAS is label-free)."""
    return (outputs * outputs).sum().reshape(1)


class MAS(UsesFlatParams, Algorithm):
    """Memory Aware Synapses: penalise moving weights in proportion to how much they change the output.

    Aljundi et al. 2018, "Memory Aware Synapses: Learning what (not) to forget"
    (ECCV). After each task the importance of parameter i is Eq. 2 with the
    gradient of Eq. 4 (the squared L2 norm of the output): ``Omega_i = 1/N
    sum_k |d ||F(x_k)||_2^2 / d theta_i|``, the mean absolute per-example gradient of
    the squared norm of the network's outputs (the example's own head with one
    head per task), over ``importance_examples`` training inputs of the task;
    no label enters. Importances add up over tasks (the paper accumulates them),
    and the anchor ``theta*`` is the weights after the latest task. While
    learning the next task the loss is Eq. 3, ``L(theta) + lambda sum_i
    Omega_i (theta_i - theta*_i)^2``; its gradient ``2 lambda Omega (theta -
    theta*)`` is added to the flat gradient after the backward pass.
    Per-example gradients come from one vectorised ``torch.func`` pass in eval
    mode (as EWC's Fisher).
    """

    name = "mas"
    Params = MASParams
    params: MASParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.importance: torch.Tensor | None = None
        self.anchor: torch.Tensor | None = None

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())

    def compute_importance(self, task: int) -> torch.Tensor:
        """``Omega`` of ``task`` alone at the current weights, as a flat vector."""
        data = self.to_device(
            draw_train_examples(self.benchmark, task, self.params.importance_examples, "mas_importance")
        )
        was_training = self.backbone.training
        self.backbone.eval()
        total = torch.zeros(self.flat.numel, device=self.device)
        try:
            chunk = jacobian_chunk(1, self.flat.numel)
            for batch in data.batches(chunk):
                total += per_example_jacobians(self.backbone, batch, squared_output_norm, chunk).abs().sum(dim=(0, 1))
        finally:
            self.backbone.train(was_training)
        return total / len(data)

    def penalty(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``lambda sum_i Omega_i (theta_i - theta*_i)^2``."""
        theta = self.flat.values() if theta is None else theta
        if self.importance is None:
            return theta.new_zeros(())
        return self.params.lambda_ * (self.importance * (theta - self.anchor) ** 2).sum()

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        if self.importance is not None:
            theta = self.flat.values()
            delta = theta - self.anchor
            self.flat.set_grads(self.flat.grads() + 2 * self.params.lambda_ * self.importance * delta)
            loss = loss.detach() + self.params.lambda_ * torch.dot(self.importance, delta * delta)
        optimizer.step()
        return loss.detach()

    def train_task_end(self, task: int) -> None:
        if task >= self.benchmark.num_tasks:
            return  # no later task is regularised by it
        omega = self.compute_importance(task)
        self.importance = omega if self.importance is None else self.importance + omega
        self.anchor = self.flat.values()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.importance is None else {"importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.importance = state["importance"].to(self.device) if state else None
        self.anchor = state["anchor"].to(self.device) if state else None
