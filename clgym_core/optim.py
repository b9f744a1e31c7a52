"""The optimizer of a run (``optimizer:`` in a spec) and building it for each task."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from clgym_core.component import Params


class SchedulerConfig(Params):
    """A learning-rate schedule within each task, restarted at every task and stepped once per epoch."""

    name: Literal["none", "step", "cosine"] = Field(
        "none", description="none; step (times gamma every step_size epochs); cosine (to min_lr at the task's end)."
    )
    step_size: int = Field(1, ge=1, le=1_000_000, description="step: epochs between two decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="step: factor of each decay.")
    min_lr: float = Field(0.0, ge=0, allow_inf_nan=False, description="cosine: the rate reached at the task's end.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class OptimizerConfig(Params):
    """The optimizer an algorithm builds for each task (``optimizer:`` in a run spec)."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("sgd", description="torch.optim class.")
    lr: float = Field(0.01, gt=0, allow_inf_nan=False, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, allow_inf_nan=False, description="Momentum (sgd, rmsprop).")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 weight decay.")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd; needs momentum > 0).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas, each in [0, 1).")
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig, description="Learning-rate schedule within each task (per epoch)."
    )
    task_decay: float = Field(
        1.0, gt=0, le=1,
        description="Task t starts at lr * task_decay**(t-1) (the per-task decay of Stable SGD, for any method).",
    )
    clip_grad_norm: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Clip the gradient's global L2 norm to this before every step."
    )

    @model_validator(mode="after")
    def _what_torch_accepts(self) -> OptimizerConfig:
        # The checks torch makes when the optimizer is built, made here so that a spec fails on validation.
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must each be in [0, 1), got {list(self.betas)}")
        return self


def build_optimizer(parameters: Any, config: OptimizerConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer from ``config`` (``lr`` overrides the configured rate)."""
    rate = config.lr if lr is None else lr
    if config.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=rate, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    if config.name == "adam":
        return torch.optim.Adam(parameters, lr=rate, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(parameters, lr=rate, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.RMSprop(parameters, lr=rate, momentum=config.momentum, weight_decay=config.weight_decay)


def prepare_for_task(
    optimizer: torch.optim.Optimizer, config: OptimizerConfig, task: int, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Apply the run-wide optimizer options to the optimizer an algorithm built for ``task``.

    The per-task decay scales every parameter group's rate (on top of whatever the
    algorithm chose: Stable SGD's own decay and this one multiply), gradient clipping
    runs before every ``optimizer.step()`` (so after any gradient editing the method
    does, e.g. A-GEM's projection), and the returned scheduler, if any, is to be
    stepped after every epoch.
    """
    if config.task_decay != 1.0:
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * config.task_decay ** (task - 1)
    if config.clip_grad_norm is not None:
        max_norm = config.clip_grad_norm

        def clip(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_norm)

        optimizer.register_step_pre_hook(clip)
    schedule = config.scheduler
    if schedule.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.step_size, gamma=schedule.gamma)
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=schedule.min_lr)
    return None
