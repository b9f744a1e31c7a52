"""The trainer scores evaluation through ``Algorithm.predict``, so a method may classify without its head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.data import Batch
from clgym_core.testing import SyntheticBlobs
from clgym_core.trainer import ContinualTrainer


class ConstantPredictor(Algorithm):
    """Trains its head as usual but predicts class 1 for every example, with fixed scores."""

    name = "constant_predictor"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.predicted: list[int] = []

    def predict(self, batch: Batch) -> torch.Tensor:
        self.predicted.append(int(batch.targets.shape[0]))
        scores = torch.tensor([0.0, 2.0], device=batch.inputs.device)
        return scores.expand(batch.inputs.shape[0], -1)


def _trainer(cls: type[Algorithm]) -> ContinualTrainer:
    torch.manual_seed(0)
    benchmark = SyntheticBlobs(num_tasks=2, train_examples=32, test_examples=16, seed=0)
    backbone = MLP(input_size=8, hidden_sizes=[16], output_size=2)
    algorithm = cls(backbone, benchmark, optimizer={"lr": 0.1})
    return ContinualTrainer(algorithm, epochs_per_task=2, batch_size=16, device="cpu", seed=0, checkpoint=False)


def test_evaluation_scores_predict_not_forward() -> None:
    trainer = _trainer(ConstantPredictor)
    trainer.fit()
    # Test targets alternate 0, 1: predicting 1 everywhere is right on exactly half, whatever the head learned.
    assert trainer.accuracy_matrix == [[50.0, 50.0]] * 3
    expected_loss = float(F.cross_entropy(torch.tensor([[0.0, 2.0]] * 2), torch.tensor([0, 1])))
    assert trainer.loss_matrix[-1] == pytest.approx([expected_loss] * 2)
    assert sum(trainer.algorithm.predicted) == 3 * 2 * 16  # every test example, after every task and before
    # The same run with the default predict (forward) learns the blobs.
    plain = _trainer(Algorithm)
    plain.fit()
    assert plain.accuracy_matrix[1][0] >= 90.0
