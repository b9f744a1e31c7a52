"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, "Continual Learning Through Synaptic Intelligence", ICML)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from clgym_core import Algorithm, Batch, ClgymError, Params


class SIParams(Params):
    strength: float = Field(
        1.0, ge=0.0, description="c in Eq. 4: weight of the quadratic surrogate loss that protects earlier tasks."
    )
    damping: float = Field(
        0.1, gt=0.0, description="xi in Eq. 5: keeps the importance finite for parameters that barely moved."
    )
    clip_negative: bool = Field(
        True, description="Clip the importance at 0 as the authors' code does (Eq. 5 itself has no clip)."
    )


class SynapticIntelligence(Algorithm):
    """Synaptic Intelligence: each parameter's importance is its path integral of loss decrease (Zenke et al. 2017).

    While task mu is trained, every parameter k accumulates its contribution to
    the drop of the task's loss along the training trajectory (Eq. 3)::

        omega_k^mu = sum over steps of  -g_k * delta_theta_k

    with ``g`` the gradient of the task loss and ``delta_theta`` the actual update
    of the step (whatever the optimizer did). At the end of the task that is
    turned into an importance, summed over tasks (Eq. 5)::

        Omega_k^mu = sum_{nu < mu}  omega_k^nu / ((Delta_k^nu)^2 + xi)

    where ``Delta_k^nu`` is how far parameter k moved over task nu. Later tasks
    minimise the surrogate loss (Eq. 4)::

        L~_mu = L_mu + c * sum_k Omega_k^mu (theta~_k - theta_k)^2

    with ``theta~`` the parameters at the end of the previous task.

    Where the code follows the authors' implementation (ganguli-lab/pathint)
    rather than the equations' letter: ``g`` is the gradient of the
    unregularised task loss (not of the surrogate), and the accumulated
    importance is clipped at 0 (``clip_negative``; the path integral of a single
    parameter can be negative). The optimizer is fresh at every task, as the
    paper resets Adam's state between tasks. Parameters are handled as one flat
    vector; the penalty's gradient ``2 c Omega (theta - theta~)`` is added to the
    task gradient directly, so each step takes one backward pass.
    """

    name = "si"
    Params = SIParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.importance: torch.Tensor | None = None  # Omega (Eq. 5), flat; None before the first task ends
        self.anchor: torch.Tensor | None = None  # theta~: parameters at the end of the previous task, flat
        self.omega: torch.Tensor | None = None  # omega of the current task (Eq. 3), flat
        self._task_start: torch.Tensor | None = None  # theta at the start of the current task
        self._previous: torch.Tensor | None = None  # theta before the current step

    # ---- flat views -------------------------------------------------------------------------------
    def _parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def flat_parameters(self) -> torch.Tensor:
        """All trainable parameters as one new vector (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self._parameters()])

    def _flat_gradients(self, parameters: list[torch.nn.Parameter]) -> torch.Tensor:
        return torch.cat([
            (p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1) for p in parameters
        ])

    def penalty(self, flat: torch.Tensor) -> torch.Tensor:
        """``c * sum_k Omega_k (theta_k - theta~_k)^2`` (the second term of Eq. 4); 0 on the first task."""
        if self.importance is None or self.anchor is None:
            return flat.new_zeros(())
        return self.params.strength * (self.importance * (flat - self.anchor).pow(2)).sum()

    # ---- per task ---------------------------------------------------------------------------------
    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        start = self.flat_parameters()
        if self.importance is not None and self.importance.numel() != start.numel():
            raise ClgymError(
                f"si: the saved importance has {self.importance.numel()} values but the backbone has "
                f"{start.numel()} trainable parameters; resume with the backbone the run started with"
            )
        if self.importance is not None and self.anchor is not None:
            self.importance = self.importance.to(start.device)
            self.anchor = self.anchor.to(start.device)
        self._task_start = start
        self._previous = start
        self.omega = torch.zeros_like(start)
        return super().prepare_optimizer(task)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        parameters = self._parameters()
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        # omega uses the gradient of the task loss alone (the authors' `unreg_grads`).
        gradient = self._flat_gradients(parameters)
        total = loss.detach()
        if self.importance is not None and self.anchor is not None and self.params.strength > 0:
            theta = self._previous  # the parameters have not moved since the last step
            total = total + self.penalty(theta)
            extra = (2.0 * self.params.strength) * self.importance * (theta - self.anchor)
            offset = 0
            for p in parameters:
                n = p.numel()
                piece = extra[offset:offset + n].view_as(p)
                if p.grad is None:
                    p.grad = piece.clone()
                else:
                    p.grad.add_(piece)
                offset += n
        optimizer.step()
        now = self.flat_parameters()
        self.omega.sub_(gradient * (now - self._previous))  # Eq. 3: omega += -g * delta_theta
        self._previous = now
        return total

    def train_task_end(self, task: int) -> None:
        end = self.flat_parameters()
        displacement = end - self._task_start  # Delta^mu
        contribution = self.omega / (displacement.pow(2) + self.params.damping)
        importance = contribution if self.importance is None else self.importance + contribution
        if self.params.clip_negative:
            importance = importance.clamp(min=0.0)
        self.importance = importance
        self.anchor = end
        self.omega = None
        self._task_start = self._previous = None

    # ---- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Omega and theta~ (all SI carries across tasks); omega is per task and 0 at task boundaries."""
        if self.importance is None or self.anchor is None:
            return {}
        return {"importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"importance", "anchor"}
        if unknown:
            raise ClgymError(f"si: unexpected keys in the saved state: {', '.join(sorted(unknown))}")
        self.importance = state.get("importance")
        self.anchor = state.get("anchor")
