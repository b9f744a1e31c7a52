"""Elastic Weight Consolidation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams, jacobian_chunk, per_example_jacobians
from clgym_algos.memory import draw_train_examples

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer



class EWCParams(Params):
    lambda_: float = Field(100.0, alias="lambda", ge=0, description="Penalty strength lambda (Eq. 3).")
    fisher_examples: int = Field(
        1024, ge=1, description="Training examples of each task (class-balanced) behind its diagonal Fisher."
    )
    fisher: Literal["empirical", "sample", "exact"] = Field(
        "empirical",
        description="Labels in the Fisher: the true ones (empirical), drawn from the model (sample), "
        "or the expectation over all classes (exact).",
    )
    mode: Literal["separate", "online"] = Field(
        "separate",
        description="separate: one anchor and Fisher per past task; online: one running Fisher "
        "F = gamma F + F_t anchored at the latest task (Schwarz et al. 2018).",
    )
    gamma: float = Field(1.0, ge=0, le=1, description="Decay of the running Fisher in online mode.")


class EWC(UsesFlatParams, Algorithm):
    """Elastic Weight Consolidation: a diagonal-Fisher quadratic penalty around each past task's solution.

    Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural
    networks" (PNAS), Eq. 3: while learning task t the loss is
    ``L_t(theta) + sum_{k<t} lambda/2 sum_i F_{k,i} (theta_i - theta*_{k,i})^2``,
    with ``theta*_k`` the weights after task k and ``F_k`` the diagonal of the
    Fisher information at ``theta*_k``: the mean over ``fisher_examples`` training
    examples of the squared per-example gradient of ``log p(y|x)`` (computed in
    one vectorised ``torch.func`` pass, in eval mode, each example through its
    own head). ``fisher`` picks the label: the true one ("empirical Fisher",
    what most CL code uses), one drawn from the model's prediction (a one-sample
    estimate of the true Fisher), or the exact expectation over the classes.
    ``mode: online`` keeps one Fisher ``F <- gamma F + F_t`` anchored at the
    latest solution (Schwarz et al. 2018, "Progress & Compress", Eq. 8).

    The penalty's gradient ``lambda sum_k F_k (theta - theta*_k)`` is added to
    the flat gradient after the backward pass instead of being differentiated
    by autograd; both give the same update. For regression the likelihood is a
    unit-variance Gaussian, and only the empirical Fisher is available.
    """

    name = "ewc"
    Params = EWCParams
    params: EWCParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem == "regression" and self.params.fisher != "empirical":
            raise SpecError(f"ewc.params.fisher: {self.params.fisher!r} needs a classification benchmark; use empirical")
        self.fishers: torch.Tensor | None = None  # (K, P): one row per anchor
        self.anchors: torch.Tensor | None = None  # (K, P)
        self.tasks: list[int] = []
        self._fisher_sum: torch.Tensor | None = None  # sum_k F_k
        self._fisher_anchor_sum: torch.Tensor | None = None  # sum_k F_k * theta*_k
        self._penalty_constant: torch.Tensor | None = None  # sum_k sum_i F_{k,i} theta*_{k,i}^2

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        if self.fishers is not None:  # state loaded before the run knew its device
            self.load_state_dict(self.state_dict())

    # ---- penalty -------------------------------------------------------------------------------------
    def penalty(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``lambda/2 sum_k sum_i F_{k,i} (theta_i - theta*_{k,i})^2`` (differentiable in ``theta``)."""
        theta = self.flat.values() if theta is None else theta
        if self.fishers is None:
            return theta.new_zeros(())
        return 0.5 * self.params.lambda_ * (self.fishers * (theta - self.anchors) ** 2).sum()

    def penalty_gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``lambda sum_k F_k (theta - theta*_k)``, in O(P) whatever the number of tasks."""
        theta = self.flat.values() if theta is None else theta
        if self._fisher_sum is None:
            return torch.zeros_like(theta)
        return self.params.lambda_ * (self._fisher_sum * theta - self._fisher_anchor_sum)

    @torch.no_grad()
    def _reported_penalty(self, theta: torch.Tensor) -> torch.Tensor:
        """:meth:`penalty` expanded over the running sums, in O(P) per step whatever the number of tasks.

        ``sum_k F_k (theta - theta*_k)^2 = theta^2 . sum_k F_k - 2 theta . sum_k F_k theta*_k + const``;
        only reported with the loss (the step uses :meth:`penalty_gradient`), so float rounding
        near zero is clamped away.
        """
        quadratic = torch.dot(self._fisher_sum, theta * theta) - 2 * torch.dot(self._fisher_anchor_sum, theta)
        return 0.5 * self.params.lambda_ * (quadratic + self._penalty_constant).clamp_min(0)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        if self.fishers is not None:
            theta = self.flat.values()
            self.flat.set_grads(self.flat.grads() + self.penalty_gradient(theta))
            loss = loss.detach() + self._reported_penalty(theta)
        optimizer.step()
        return loss.detach()

    # ---- Fisher ----------------------------------------------------------------------------------------
    def _log_likelihoods(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalars whose squared gradients make up the Fisher, for one example."""
        if self.benchmark.problem == "regression":
            return -0.5 * ((outputs.reshape(target.shape) - target.to(outputs.dtype)) ** 2).sum().reshape(1)
        log_probs = F.log_softmax(outputs, dim=-1)
        if self.params.fisher == "exact":
            return log_probs  # one gradient per class, weighted by p(c|x) below
        return log_probs.gather(0, target.reshape(1))

    @torch.no_grad()
    def _model_labels(self, batch: Batch) -> Batch:
        """``batch`` with labels drawn from the model's predictive distribution (``fisher: sample``)."""
        probs = F.softmax(self.forward(batch), dim=-1)
        return batch._replace(targets=torch.multinomial(probs, 1).squeeze(1))

    def compute_fisher(self, task: int) -> torch.Tensor:
        """The diagonal Fisher of ``task`` at the current weights, as a flat vector."""
        data = self.to_device(draw_train_examples(self.benchmark, task, self.params.fisher_examples, "ewc_fisher"))
        was_training = self.backbone.training
        self.backbone.eval()
        fisher = torch.zeros(self.flat.numel, device=self.device)
        try:
            outputs = self.benchmark.head_size if self.params.fisher == "exact" else 1
            chunk = jacobian_chunk(outputs, self.flat.numel)
            for batch in data.batches(chunk):
                if self.params.fisher == "sample":
                    batch = self._model_labels(batch)
                jac = per_example_jacobians(self.backbone, batch, self._log_likelihoods, chunk)
                if self.params.fisher == "exact":
                    with torch.no_grad():
                        probs = F.softmax(self.forward(batch), dim=-1)
                    fisher += torch.einsum("nc,ncp->p", probs, jac**2)
                else:
                    fisher += (jac**2).sum(dim=(0, 1))
        finally:
            self.backbone.train(was_training)
        return fisher / len(data)

    def train_task_end(self, task: int) -> None:
        if task >= self.benchmark.num_tasks:
            return  # no later task is regularised by it
        fisher = self.compute_fisher(task).unsqueeze(0)
        anchor = self.flat.values().unsqueeze(0)
        if self.params.mode == "online" and self.fishers is not None:
            self.fishers = self.params.gamma * self.fishers + fisher
            self.anchors = anchor
            self.tasks = [task]
        elif self.fishers is None:
            self.fishers, self.anchors, self.tasks = fisher, anchor, [task]
        else:
            self.fishers = torch.cat([self.fishers, fisher])
            self.anchors = torch.cat([self.anchors, anchor])
            self.tasks = [*self.tasks, task]
        self._refresh_sums()

    def _refresh_sums(self) -> None:
        self._fisher_sum = self.fishers.sum(0)
        self._fisher_anchor_sum = (self.fishers * self.anchors).sum(0)
        self._penalty_constant = (self.fishers * self.anchors * self.anchors).sum()

    # ---- persistence -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.fishers is None:
            return {}
        return {"fishers": self.fishers, "anchors": self.anchors, "tasks": list(self.tasks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.fishers = self.anchors = self._fisher_sum = self._fisher_anchor_sum = None
            self._penalty_constant = None
            self.tasks = []
            return
        self.fishers = state["fishers"].to(self.device)
        self.anchors = state["anchors"].to(self.device)
        self.tasks = [int(t) for t in state["tasks"]]
        self._refresh_sums()
