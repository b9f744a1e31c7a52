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
    fisher: Literal["empirical", "sample", "exact", "empirical_weighted"] = Field(
        "empirical",
        description="Labels in the Fisher: the true ones (empirical), drawn from the model (sample), "
        "the expectation over all classes (exact), or the true ones with each example's squared gradient "
        "weighted by the model's probability of its label (empirical_weighted: aimagelab/mammoth's ewc_on, "
        "behind the DER paper's oEWC rows).",
    )
    mode: Literal["separate", "online"] = Field(
        "separate",
        description="separate: one anchor and Fisher per past task; online: one running Fisher "
        "F = gamma F + F_t anchored at the latest task (Schwarz et al. 2018).",
    )
    gamma: float = Field(
        1.0, ge=0, le=1,
        description="Online mode: F <- gamma F + F_t, and the penalty weighs gamma F (Schwarz et al. 2018, Eq. 8).",
    )
    variant: Literal["kirkpatrick", "agem"] = Field(
        "kirkpatrick",
        description="kirkpatrick: per-example Fisher at each task's end (Eq. 3); agem: the EWC of Chaudhry et "
        "al.'s code behind A-GEM Table 1 and Stable SGD Table 2 (running squared batch gradients, "
        "min-max normalised, one anchor, no 1/2).",
    )
    running_decay: float = Field(
        0.9, gt=0, le=1,
        description="variant agem: weight of the new block mean in F <- (1-d) F + d mean(g^2) (their fisher_ema_decay).",
    )
    running_every: int = Field(
        10, ge=1, description="variant agem: batches averaged per update of the running Fisher (their fisher_update_after)."
    )


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
    estimate of the true Fisher), or the exact expectation over the classes;
    ``empirical_weighted`` weighs each example's true-label term by the model's
    probability of that label, as aimagelab/mammoth's ``ewc_on`` does (the
    DER paper's oEWC rows; not a Fisher of Kirkpatrick et al.).
    ``mode: online`` keeps one running Fisher ``F*_t = gamma F*_{t-1} + F_t``
    anchored at the latest solution, and the penalty while learning task t+1 is
    ``lambda/2 sum_i gamma F*_{t,i} (theta_i - theta*_{t,i})^2``: gamma multiplies
    the whole running Fisher, the newest task's included, as in Schwarz et al.
    2018, "Progress & Compress", Eq. 8 (so online EWC with gamma < 1 at lambda
    equals our former convention, without that factor, at lambda * gamma).

    ``variant: agem`` is the EWC that the A-GEM code (facebookresearch/agem,
    ``model/model.py``) ran for A-GEM Table 1, and that Stable SGD's Table 2 ran
    through the same code: during each task it sums the squared gradient of the
    mini-batch loss (not per example, no sampling) and every ``running_every``
    batches folds their mean into one running Fisher
    ``F <- (1 - d) F + d mean(g^2)`` with ``d = running_decay`` (never reset
    between tasks); at a task's end ``F`` is min-max normalised over all weights
    to [0, 1], replaces the previous Fisher, and the weights become the one
    anchor; the penalty is ``lambda sum_i F_i (theta_i - theta*_i)^2`` (no 1/2).
    ``mode``, ``fisher`` and ``fisher_examples`` play no part in it.

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
        if self.params.variant == "agem" and self.params.mode == "online":
            raise SpecError("ewc.params.mode: online does not apply to variant agem (one anchor, the latest Fisher)")
        # agem's penalty has no 1/2; online mode weighs the running Fisher by gamma (Schwarz et al. Eq. 8).
        self._scale = (1.0 if self.params.variant == "agem" else 0.5) * (
            self.params.gamma if self.params.mode == "online" else 1.0
        )
        self.running_fisher: torch.Tensor | None = None  # variant agem: the running average of g^2
        self._squared_sum: torch.Tensor | None = None  # variant agem: sum of g^2 since the last update
        self._steps = 0  # variant agem: batches of the current task
        self.fishers: torch.Tensor | None = None  # (K, P): one row per anchor
        self.anchors: torch.Tensor | None = None  # (K, P)
        self.tasks: list[int] = []
        self._fisher_sum: torch.Tensor | None = None  # sum_k F_k
        self._fisher_anchor_sum: torch.Tensor | None = None  # sum_k F_k * theta*_k
        self._penalty_constant: torch.Tensor | None = None  # sum_k sum_i F_{k,i} theta*_{k,i}^2

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        if self.fishers is not None or self.running_fisher is not None:  # state loaded before the run knew its device
            self.load_state_dict(self.state_dict())

    # ---- penalty -------------------------------------------------------------------------------------
    def penalty(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``c lambda sum_k sum_i F_{k,i} (theta_i - theta*_{k,i})^2`` (differentiable in ``theta``).

        ``c`` is 1/2 (Eq. 3), 1/2 gamma in online mode, 1 for variant agem.
        """
        theta = self.flat.values() if theta is None else theta
        if self.fishers is None:
            return theta.new_zeros(())
        return self._scale * self.params.lambda_ * (self.fishers * (theta - self.anchors) ** 2).sum()

    def penalty_gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``2 c lambda sum_k F_k (theta - theta*_k)``, in O(P) whatever the number of tasks."""
        theta = self.flat.values() if theta is None else theta
        if self._fisher_sum is None:
            return torch.zeros_like(theta)
        return 2 * self._scale * self.params.lambda_ * (self._fisher_sum * theta - self._fisher_anchor_sum)

    @torch.no_grad()
    def _reported_penalty(self, theta: torch.Tensor) -> torch.Tensor:
        """:meth:`penalty` expanded over the running sums, in O(P) per step whatever the number of tasks.

        ``sum_k F_k (theta - theta*_k)^2 = theta^2 . sum_k F_k - 2 theta . sum_k F_k theta*_k + const``;
        only reported with the loss (the step uses :meth:`penalty_gradient`), so float rounding
        near zero is clamped away.
        """
        quadratic = torch.dot(self._fisher_sum, theta * theta) - 2 * torch.dot(self._fisher_anchor_sum, theta)
        return self._scale * self.params.lambda_ * (quadratic + self._penalty_constant).clamp_min(0)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        if self.params.variant == "agem":
            self._accumulate_running_fisher(self.flat.grads())
        if self.fishers is not None:
            theta = self.flat.values()
            self.flat.set_grads(self.flat.grads() + self.penalty_gradient(theta))
            loss = loss.detach() + self._reported_penalty(theta)
        optimizer.step()
        return loss.detach()

    # ---- Fisher ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _accumulate_running_fisher(self, grad: torch.Tensor) -> None:
        """variant agem: fold ``grad^2`` of the batch loss into the running Fisher, in their order.

        Their loop updates the running value at every ``running_every``-th batch of a task
        *before* adding that batch's square, and starts from zero.
        """
        if self._squared_sum is None:
            self._squared_sum = torch.zeros_like(grad)
        if self.running_fisher is None:
            self.running_fisher = torch.zeros_like(grad)
        every, d = self.params.running_every, self.params.running_decay
        if (self._steps + 1) % every == 0:
            self.running_fisher.mul_(1 - d).add_(self._squared_sum, alpha=d / every)
            self._squared_sum.zero_()
        self._squared_sum.add_(grad * grad)
        self._steps += 1

    def normalised_running_fisher(self) -> torch.Tensor:
        """variant agem: the running Fisher mapped to [0, 1] by its min and max over all weights."""
        fisher = self.running_fisher if self.running_fisher is not None else torch.zeros(self.flat.numel, device=self.device)
        low, high = fisher.min(), fisher.max()
        return (fisher - low) / (high - low + 1e-32)

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
                elif self.params.fisher == "empirical_weighted":
                    with torch.no_grad():
                        probs = F.softmax(self.forward(batch), dim=-1)
                    weight = probs.gather(1, batch.targets.long().unsqueeze(1)).squeeze(1)  # p(y_true | x)
                    fisher += torch.einsum("n,np->p", weight, (jac**2).sum(dim=1))
                else:
                    fisher += (jac**2).sum(dim=(0, 1))
        finally:
            self.backbone.train(was_training)
        return fisher / len(data)

    def train_task_end(self, task: int) -> None:
        self._steps = 0
        if self._squared_sum is not None:
            self._squared_sum.zero_()  # their reset of the block sum at each task's end
        if task >= self.benchmark.num_tasks:
            return  # no later task is regularised by it
        anchor = self.flat.values().unsqueeze(0)
        if self.params.variant == "agem":
            self.fishers, self.anchors, self.tasks = self.normalised_running_fisher().unsqueeze(0), anchor, [task]
            self._refresh_sums()
            return
        fisher = self.compute_fisher(task).unsqueeze(0)
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
        state: dict[str, Any] = {}
        if self.running_fisher is not None:
            state["running_fisher"] = self.running_fisher
        if self.fishers is not None:
            state.update(fishers=self.fishers, anchors=self.anchors, tasks=list(self.tasks))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        running = state.get("running_fisher")
        self.running_fisher = running.to(self.device) if running is not None else None
        if "fishers" not in state:
            self.fishers = self.anchors = self._fisher_sum = self._fisher_anchor_sum = None
            self._penalty_constant = None
            self.tasks = []
            return
        self.fishers = state["fishers"].to(self.device)
        self.anchors = state["anchors"].to(self.device)
        self.tasks = [int(t) for t in state["tasks"]]
        self._refresh_sums()
