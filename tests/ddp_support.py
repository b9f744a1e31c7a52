"""Shared by the ddp tests: train finetune, EWC and A-GEM on a small synthetic benchmark and report the outcome.

``python tests/ddp_support.py OUT_DIR`` runs in each of the processes the test starts itself
(``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` set, as torchrun would), so
Fabric joins them instead of starting its own; each process writes ``OUT_DIR/rank{R}.json``.
The test calls :func:`train_all` in its own process, without Fabric, for the one-process result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from clgym_core.backbone import MLP
from clgym_core.registry import get_registry
from clgym_core.testing import SyntheticBlobs
from clgym_core.trainer import ContinualTrainer

# 101 training examples in batches of 24: the last batch (5 rows) splits 2 + 3, unevenly.
BENCHMARK = {"num_tasks": 3, "train_examples": 101, "test_examples": 48, "per_task_memory_examples": 16}
TRAINER = {"epochs_per_task": 2, "batch_size": 24, "eval_batch_size": 32}
DDP = {"strategy": "ddp", "devices": 2, "accelerator": "cpu"}
ALGORITHMS: dict[str, dict[str, Any]] = {
    "finetune": {},
    "ewc": {"lambda": 100.0, "fisher_examples": 32},
    "agem": {"reference_batch_size": 12},
}
OPTIMIZER = {"name": "sgd", "lr": 0.1, "momentum": 0.5}


def train(name: str, **settings: Any) -> dict[str, Any]:
    """One run of algorithm ``name``; its matrices, final weights and algorithm state (as lists)."""
    torch.manual_seed(0)
    benchmark = SyntheticBlobs(**BENCHMARK)
    backbone = MLP(input_size=8, output_size=2, hidden_sizes=[32])
    algorithm = get_registry().get("algorithm", name)(backbone, benchmark, params=ALGORITHMS[name], optimizer=OPTIMIZER)
    trainer = ContinualTrainer(algorithm, seed=0, **{**TRAINER, **settings})
    trainer.fit()
    weights = torch.nn.utils.parameters_to_vector(backbone.parameters()).detach()
    state = {k: v.detach().double().reshape(-1).tolist() for k, v in algorithm.state_dict().items()
             if isinstance(v, torch.Tensor)}
    return {"accuracy": trainer.accuracy_matrix, "loss": trainer.loss_matrix, "weights": weights.tolist(),
            "state": state, "rank": trainer.placement.rank, "world_size": trainer.placement.world_size}


def train_all(**settings: Any) -> dict[str, Any]:
    return {name: train(name, **settings) for name in ALGORITHMS}


def main(out: Path) -> int:
    results = train_all(**DDP)
    rank = results["finetune"]["rank"]
    (out / f"rank{rank}.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
