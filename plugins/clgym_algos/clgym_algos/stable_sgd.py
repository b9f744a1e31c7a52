"""Stable SGD: a training regime, not a new loss."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm, build_optimizer
from clgym_core.component import Params
from clgym_core.errors import SpecError


def decayed_lr(lr: float, gamma: float, task: int, lower_bound: float) -> float:
    """``max(lr * gamma^(task-1), lower_bound)``: the learning rate of ``task`` (1-based)."""
    return max(lr * gamma ** (task - 1), lower_bound)


class StableSGDParams(Params):
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout rate set on every dropout layer of the backbone.")
    lr_decay: float = Field(
        0.8, gt=0, le=1, description="gamma: task t trains with lr * gamma^(t-1) (lr from the optimizer settings)."
    )
    min_lr: float = Field(5e-5, ge=0, description="Lower bound of the decayed learning rate.")


class StableSGD(Algorithm):
    """Stable SGD: dropout, small batches and a per-task decaying learning rate (no extra loss).

    Mirzadeh et al. 2020, "Understanding the Role of Training Regimes in
    Continual Learning" (NeurIPS), Sec. 4-5: forgetting shrinks when each
    task's minimum is wide (dropout, small batches, a large initial learning
    rate) and later tasks move the weights less (learning-rate decay). The
    algorithm sets the backbone's dropout to ``dropout`` and builds task t's
    optimizer (the run's optimizer settings) with
    ``lr_t = max(lr * gamma^(t-1), min_lr)``; the loss is plain cross-entropy.

    The batch size is the trainer's: put the paper's small batch in the run
    spec (``trainer.batch_size: 10``). The authors' settings (their
    replication scripts): SGD with momentum 0.8, lr 0.1, batch size 10,
    dropout 0.5, gamma 0.8 on Permuted MNIST and Split CIFAR-100, 0.5 on
    Rotated MNIST. Their code computes ``lr * gamma^t``, so its first task
    already trains at ``lr * gamma``; set ``optimizer.lr`` to ``0.1 * gamma``
    to match it exactly.
    """

    name = "stable_sgd"
    Params = StableSGDParams
    params: StableSGDParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        changed = self.backbone.set_dropout(self.params.dropout) if hasattr(self.backbone, "set_dropout") else 0
        if changed == 0 and self.params.dropout > 0:
            raise SpecError(
                f"stable_sgd.params.dropout: backbone {getattr(self.backbone, 'name', '') or type(self.backbone).__name__}"
                " has no dropout layer; use a backbone with dropout (e.g. mlp) or set dropout: 0"
            )

    def learning_rate(self, task: int) -> float:
        return decayed_lr(self.optimizer_config.lr, self.params.lr_decay, task, self.params.min_lr)

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        return build_optimizer(self.backbone.parameters(), self.optimizer_config, lr=self.learning_rate(task))
