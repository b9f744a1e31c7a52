from __future__ import annotations

import torch

from clgym_algos.finetune import Finetune
from clgym_core.trainer import ContinualTrainer
from clgym_pamap2 import CNN1D, PAMAP2
from clgym_pamap2.synthetic import standard_plan


def _run(root, cache_dir, seed=0):
    torch.manual_seed(seed)
    bench = PAMAP2(root=str(root), subjects=[101, 102, 103], window_length=64, cache_dir=cache_dir, seed=seed)
    # The paper's architecture, narrowed so the test stays fast on a shared CPU.
    backbone = CNN1D(**CNN1D.defaults_from(bench), conv_channels=[16, 16], hidden_size=32)
    algorithm = Finetune(backbone, bench, optimizer={"name": "adam", "lr": 0.003})
    trainer = ContinualTrainer(algorithm, epochs_per_task=1, batch_size=16, device="cpu", seed=seed)
    trainer.fit()
    return trainer.accuracy_matrix


def test_finetune_with_cnn1d_learns_each_subject(make_dataset, cache_dir):
    acts = (1, 2, 4, 5)
    root = make_dataset({s: standard_plan(acts, 30.0) for s in (101, 102, 103)})
    matrix = _run(root, cache_dir)
    assert len(matrix) == 4 and all(len(row) == 3 for row in matrix)  # untrained row, then after each task
    chance = 100 / len(acts)
    assert matrix[1][0] > chance + 40, f"task 1 after training it: {matrix[1][0]:.1f}% (chance {chance:.0f}%)"
    assert matrix[3][2] > chance + 40
    assert matrix == _run(root, cache_dir), "same params and seed must give the same numbers"
