"""Gradient Episodic Memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.benchmark import subset
from clgym_core.data import Batch, sample_indices
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams
from clgym_algos.memory import as_task_data, draw_train_examples

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class GEMParams(Params):
    memory_per_task: int | None = Field(
        None, ge=1,
        description="Episodic memory examples kept per task (class-balanced); unset: the benchmark's "
        "per_task_memory_examples.",
    )
    margin: float = Field(
        0.5, ge=0,
        description="Lower bound on the dual variables (the authors' memory_strength, 0.5 in their scripts): "
        "above 0 it pushes the step further inside the feasible cone; 0 is the plain projection.",
    )
    eps: float = Field(1e-3, gt=0, description="Added to the diagonal of G G^T so the dual QP is strictly convex.")
    memory_sampling: Literal["balanced", "uniform"] = Field(
        "balanced",
        description="How a task's memories are drawn from its training data: class-balanced (the benchmark's "
        "sampling rule), or uniformly without replacement, classes as they fall (aimagelab/mammoth's GEM, "
        "behind the DER paper's rows: the first batch of a shuffled loader).",
    )


def gem_project(g: torch.Tensor, memory_grads: torch.Tensor, margin: float = 0.5, eps: float = 1e-3) -> torch.Tensor:
    """GEM Sec. 3: the step closest to ``g`` whose inner product with every row of ``memory_grads``
    is non-negative, through the dual QP ``min_v 1/2 v^T M v + (G g)^T v, v >= margin`` with
    ``M = G G^T + eps I``, then ``g~ = G^T v + g``.

    Solved in float64 on the host as a non-negative least-squares problem (SciPy's
    ``nnls``): with ``u = v - margin >= 0`` and ``M = L L^T`` (Cholesky), the objective is
    ``1/2 ||L^T u + L^{-1} (M margin + G g)||^2`` up to a constant. This is the same QP the
    authors hand to ``quadprog``; a BSD-licensed solver keeps clgym-algos MIT.
    """
    # Imported here: SciPy takes half a second to import, and `clgym list` imports every algorithm module.
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    rows = memory_grads.detach().double().cpu().numpy()
    grad = g.detach().double().cpu().numpy()
    k = rows.shape[0]
    gram = rows @ rows.T
    gram = 0.5 * (gram + gram.T) + eps * np.eye(k)
    lower = cholesky(gram, lower=True)
    shift = gram @ np.full(k, float(margin)) + rows @ grad
    u, _ = nnls(lower.T, -solve_triangular(lower, shift, lower=True))
    v = u + float(margin)
    return torch.from_numpy(rows.T @ v + grad).to(device=g.device, dtype=g.dtype)


class GEM(UsesFlatParams, Algorithm):
    """GEM: project each step so that the loss on no previous task's episodic memory increases.

    Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual
    Learning" (NeurIPS), Sec. 3. Each previous task k keeps an
    episodic memory M_k; at every step of task t the gradient ``g_k`` of the
    loss on all of M_k is computed (each example through its own head), and
    if the batch gradient ``g`` has a negative inner product with any of them
    it is replaced by the solution of the QP ``min_z 1/2 ||g - z||^2`` s.t.
    ``<z, g_k> >= 0`` for all k < t, solved in its dual form (the authors use
    ``quadprog``; we solve the same QP as non-negative least squares), with their
    ``margin`` (memory strength) and ``eps`` on the diagonal. The projected
    step satisfies ``<g~, g_k> >= 0`` for every k (up to ``eps``). Task 1
    trains as plain SGD.

    Differences: the memory of a task is ``memory_per_task`` class-balanced
    training examples drawn at the end of the task (the paper keeps the last
    examples of the stream: an equally sized sample of the same data;
    ``memory_sampling: uniform`` draws them without regard to class, as the
    DER authors' code does, which on their Permuted MNIST rows is worth 3-4
    points less than class-balanced memories); the conflict check costs one host synchronisation per step, and solving the QP
    moves the K gradients to the host.
    """

    name = "gem"
    Params = GEMParams
    params: GEMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        per_task = self.params.memory_per_task or getattr(self.benchmark.params, "per_task_memory_examples", None)
        if not per_task:
            raise SpecError(
                "gem needs episodic memory: set algorithm.params.memory_per_task or "
                "benchmark.params.per_task_memory_examples (e.g. 256)"
            )
        self.memory_per_task = int(per_task)
        self.memories: list[dict[str, torch.Tensor]] = []  # per past task: inputs, targets, task_ids

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())

    def memory_gradients(self) -> torch.Tensor:
        """``(K, P)``: the gradient of the loss on each previous task's whole memory."""
        grads = []
        for memory in self.memories:
            batch = Batch(memory["inputs"], memory["targets"], memory["task_ids"])
            self.backbone.zero_grad(set_to_none=True)
            self.criterion(self.forward(batch), batch.targets).backward()
            grads.append(self.flat.grads())
        return torch.stack(grads)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if not self.memories:
            return super().train_step(batch, optimizer)
        memory_grads = self.memory_gradients()
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        g = self.flat.grads()
        if bool((memory_grads @ g < 0).any()):
            self.flat.set_grads(gem_project(g, memory_grads, self.params.margin, self.params.eps))
        optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def train_task_end(self, task: int) -> None:
        if task >= self.benchmark.num_tasks:
            return  # no later task is constrained by it
        if self.params.memory_sampling == "uniform":
            train = self.benchmark.load_train(task)
            rows = sample_indices(len(train), min(self.memory_per_task, len(train)),
                                  self.benchmark.generator("gem_memory", task))
            data = self.to_device(as_task_data(subset(train, rows)))
        else:
            data = self.to_device(draw_train_examples(self.benchmark, task, self.memory_per_task, "gem_memory"))
        batch = data.all()
        self.memories.append({"inputs": batch.inputs, "targets": batch.targets, "task_ids": batch.task_ids.long()})

    def state_dict(self) -> dict[str, Any]:
        return {"memories": [dict(m) for m in self.memories]} if self.memories else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memories = [{k: v.to(self.device) for k, v in m.items()} for m in state.get("memories", [])]
