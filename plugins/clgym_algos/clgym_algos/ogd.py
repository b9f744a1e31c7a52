"""Orthogonal Gradient Descent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams, jacobian_chunk, orthonormal_extend, per_example_jacobians
from clgym_algos.memory import as_task_data, draw_train_examples

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class OGDParams(Params):
    variant: Literal["GTL", "ALL", "AVE"] = Field(
        "GTL",
        description="Directions stored per example: gradient of the ground-truth logit (GTL), of every "
        "logit (ALL), or of the average logit (AVE).",
    )
    examples_per_task: int | None = Field(
        None, ge=1,
        description="Examples of each task whose directions are stored; unset: the benchmark's "
        "load_subset (per_task_subset_examples), or 200 (the paper's) when that is unset too.",
    )
    max_directions: int | None = Field(
        None, ge=1,
        description="Cap on stored directions: the oldest task's whole block is dropped first; a newest block "
        "larger than the cap keeps its strongest directions. Unset: no cap.",
    )


class OGD(UsesFlatParams, Algorithm):
    """Orthogonal Gradient Descent: step only orthogonally to past tasks' output gradients.

    Farajtabar et al. 2020, "Orthogonal Gradient Descent for Continual
    Learning" (AISTATS), Algorithm 1. After task t, for a sample of t's
    training examples, the gradients of the network's output w.r.t. the
    weights at the end of task t (per example, through its own head, in eval
    mode) are added to an orthonormal basis S kept on the device (Gram-Schmidt
    against S, then QR). Every later step replaces the batch gradient ``g`` by
    ``g - sum_{v in S} (g.v) v``. Variants (Sec. 4): OGD-GTL stores
    ``grad f_y(x)`` of the ground-truth logit (the default, the paper's best),
    OGD-ALL ``grad f_j(x)`` of every logit, OGD-AVE the gradient of the logits'
    average. Each task's directions are stored after THAT task (the original
    CL-Gym re-stored task 1 forever).

    The projection is exact for plain SGD, the paper's optimizer. Momentum
    stays in the subspace (every gradient it sums was projected), but weight
    decay does not.

    ``max_directions`` (not in the paper, which stores everything) bounds the
    basis: the rows are kept as one block per task, and when a new block does
    not fit, whole blocks are dropped oldest first and the new directions are
    re-orthonormalised against what remains (so they also cover what the
    dropped blocks spanned). Only when the newest block alone exceeds the cap
    is it cut, to its strongest directions (largest singular values).
    """

    name = "ogd"
    Params = OGDParams
    params: OGDParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification" and self.params.variant == "GTL":
            raise SpecError("ogd.params.variant: GTL needs class labels; use ALL or AVE for regression")
        self.basis: torch.Tensor | None = None  # (K, P), orthonormal rows
        self.tasks_stored: list[int] = []
        self.block_sizes: list[int] = []  # rows of each task's block in ``basis``, oldest first

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        if self.basis is not None:
            self.basis = self.basis.to(self.device)

    # ---- step ------------------------------------------------------------------------------------------
    def project(self, g: torch.Tensor) -> torch.Tensor:
        """``g`` minus its component in the span of the stored directions."""
        if self.basis is None or self.basis.shape[0] == 0:
            return g
        return g - self.basis.T @ (self.basis @ g)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if self.basis is None:
            return super().train_step(batch, optimizer)
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        self.flat.set_grads(self.project(self.flat.grads()))
        optimizer.step()
        return loss.detach()

    # ---- storing directions ------------------------------------------------------------------------------
    def _outputs(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.params.variant == "GTL":
            return outputs.gather(0, target.reshape(1))
        if self.params.variant == "AVE":
            return outputs.mean().reshape(1)
        return outputs.reshape(-1)

    def sample_of(self, task: int) -> TaskData:
        """The examples whose directions are stored for ``task``."""
        if self.params.examples_per_task is None and getattr(self.benchmark.params, "per_task_subset_examples", None):
            return self.to_device(as_task_data(self.benchmark.load_subset(task)))
        k = self.params.examples_per_task or 200
        return self.to_device(draw_train_examples(self.benchmark, task, k, "ogd"))

    def directions(self, task: int) -> torch.Tensor:
        """``(n * k, P)``: the output gradients of ``task``'s sample at the current weights."""
        data = self.sample_of(task)
        was_training = self.backbone.training
        self.backbone.eval()
        outputs = self.benchmark.head_size if self.params.variant == "ALL" else 1
        chunk = jacobian_chunk(outputs, self.flat.numel)
        try:
            parts = [
                per_example_jacobians(self.backbone, batch, self._outputs, chunk).flatten(0, 1)
                for batch in data.batches(chunk)
            ]
        finally:
            self.backbone.train(was_training)
        return torch.cat(parts)

    def train_task_end(self, task: int) -> None:
        if task >= self.benchmark.num_tasks:
            return  # no later task is projected against it
        new = self.directions(task)
        cap = self.params.max_directions
        basis, sizes, tasks = self.basis, list(self.block_sizes), list(self.tasks_stored)
        while True:
            kept = 0 if basis is None else basis.shape[0]
            extended = orthonormal_extend(basis, new)
            if cap is None or extended.shape[0] <= cap:
                break
            if not sizes:  # the new block alone exceeds the cap: keep its strongest directions
                extended = extended[:cap]
                break
            # Drop the oldest task's whole block and place the new directions again against the rest.
            basis = basis[sizes[0]:] if kept > sizes[0] else None
            sizes, tasks = sizes[1:], tasks[1:]
        self.basis = extended
        self.block_sizes = [*sizes, extended.shape[0] - kept]
        self.tasks_stored = [*tasks, task]

    # ---- persistence -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.basis is None:
            return {}
        return {"basis": self.basis, "tasks_stored": list(self.tasks_stored), "block_sizes": list(self.block_sizes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.basis = state["basis"].to(self.device) if state else None
        self.tasks_stored = [int(t) for t in state.get("tasks_stored", [])] if state else []
        # A checkpoint without block sizes holds one block (what a cap can drop as a whole).
        default = [self.basis.shape[0]] if self.basis is not None else []
        self.block_sizes = [int(n) for n in state.get("block_sizes", default)] if state else []
