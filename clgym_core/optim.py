"""The optimizer of a run (``optimizer:`` in a spec) and building it for each task."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from clgym_core.component import Params


class OptimizerConfig(Params):
    """The optimizer an algorithm builds for each task (``optimizer:`` in a run spec)."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("sgd", description="torch.optim class.")
    lr: float = Field(0.01, gt=0, allow_inf_nan=False, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, allow_inf_nan=False, description="Momentum (sgd, rmsprop).")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 weight decay.")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd; needs momentum > 0).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas, each in [0, 1).")

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
