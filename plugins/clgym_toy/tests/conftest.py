"""Shared helpers for the clgym-toy tests: tiny runs of a registered algorithm on a toy benchmark."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clgym_core.backbone import MLP
from clgym_core.registry import get_registry
from clgym_core.trainer import ContinualTrainer


def make_trainer(
    benchmark: Any, algorithm: str, epochs: int, seed: int = 0, callbacks: list | None = None,
    hidden: tuple[int, ...] = (64, 64), lr: float = 0.01, batch_size: int = 32,
) -> ContinualTrainer:
    """An MLP trained with Adam, as in the quickstart specs, seeded so that runs repeat exactly."""
    torch.manual_seed(seed)
    backbone = MLP(
        input_size=benchmark.input_shape[0], output_size=benchmark.head_size, hidden_sizes=list(hidden)
    )
    cls = get_registry().get("algorithm", algorithm)
    algo = cls(backbone, benchmark, optimizer={"name": "adam", "lr": lr})
    return ContinualTrainer(algo, callbacks=callbacks, epochs_per_task=epochs, batch_size=batch_size,
                            device="cpu", seed=seed)


@pytest.fixture
def trainer_factory():
    return make_trainer
