"""A tiny self-contained benchmark with conflicting tasks, and a helper that runs an algorithm on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from pydantic import Field

from clgym_core.backbone import MLP, Backbone
from clgym_core.callback import Callback
from clgym_core.benchmark import Benchmark, BenchmarkParams
from clgym_core.data import TaskData
from clgym_core.metrics import average_forgetting, learning_accuracy
from clgym_core.trainer import ContinualTrainer

from clgym_algos.flat import FlatParams


class ConflictingBlobsParams(BenchmarkParams):
    num_tasks: int = Field(3, ge=1, description="Tasks.")
    train_examples: int = Field(200, ge=2, description="Training examples per task.")
    test_examples: int = Field(200, ge=2, description="Test examples per task.")
    multi_head: bool = Field(False, description="One head per task.")
    spread: float = Field(0.4, gt=0, description="Standard deviation of each blob.")


class ConflictingBlobs(Benchmark):
    """2D Gaussian blobs; task t lies in its own horizontal band and its label is the side of x = 0, flipped on even tasks.

    Each task alone is solved by the sign of x, which a new task overwrites
    (finetune forgets); together they need the band as well, which a small MLP
    can learn (joint training solves all tasks).
    """

    name = "conflicting_blobs"
    Params = ConflictingBlobsParams
    params: ConflictingBlobsParams

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def head_size(self) -> int:
        return 2

    @property
    def num_heads(self) -> int:
        return self.num_tasks if self.params.multi_head else 1

    def prepare_datasets(self) -> None:
        pass

    def band(self, task: int) -> float:
        return (task - (self.num_tasks + 1) / 2) * 4.0

    def build_task(self, task: int, split: str) -> TaskData:
        n = self.params.train_examples if split == "train" else self.params.test_examples
        gen = self.generator(f"data/{split}", task)
        labels = torch.arange(n) % 2
        labels = labels[torch.randperm(n, generator=gen)]
        side = (labels * 2 - 1).float() * (1.0 if task % 2 else -1.0)
        noise = torch.randn(n, 2, generator=gen) * self.params.spread
        inputs = torch.stack([side * 1.5, torch.full((n,), self.band(task))], dim=1) + noise
        return TaskData.for_task(inputs, labels, task)


class ClassIncrementalBlobs(ConflictingBlobs):
    """The blobs with new classes per task on one shared head: task t's labels are 2(t-1) and 2(t-1)+1."""

    name = "class_incremental_blobs"

    @property
    def head_size(self) -> int:
        return 2 * self.num_tasks

    @property
    def num_heads(self) -> int:
        return 1

    def build_task(self, task: int, split: str) -> TaskData:
        data = super().build_task(task, split)
        return TaskData.for_task(data.inputs, data.targets + 2 * (task - 1), task)


class FeaturelessBackbone(Backbone):
    """One linear layer on the blobs' 2-D inputs: no ``features`` and no ``head`` (what some methods need)."""

    name = "featureless"

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.layer(x)


def blobs_backbone(benchmark: Benchmark, seed: int = 0, dropout: float = 0.0) -> MLP:
    torch.manual_seed(seed)
    return MLP(input_size=2, hidden_sizes=[128, 128], output_size=benchmark.head_size, num_heads=benchmark.num_heads,
               dropout=dropout)


def run_blobs(
    algorithm_cls: type,
    params: dict[str, Any] | None = None,
    benchmark: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    epochs: int = 10,
    batch_size: int = 20,
    seed: int = 0,
    dropout: float = 0.0,
    callbacks: list | None = None,
) -> tuple[ContinualTrainer, Any]:
    """Train ``algorithm_cls`` on the blobs benchmark on the CPU; returns the trainer and the algorithm."""
    bench = ConflictingBlobs(**{"seed": seed, **(benchmark or {})})
    backbone = blobs_backbone(bench, seed, dropout)
    algorithm = algorithm_cls(backbone, bench, params or {}, optimizer=optimizer or {"name": "sgd", "lr": 0.02})
    trainer = ContinualTrainer(
        algorithm, callbacks=callbacks, epochs_per_task=epochs, batch_size=batch_size, device="cpu", seed=seed
    )
    trainer.fit()  # one torch thread, as the repository's conftest sets for every test
    return trainer, algorithm


@pytest.fixture
def blobs() -> Callable[..., ConflictingBlobs]:
    """Factory of the conflicting-blobs benchmark."""
    return lambda **kwargs: ConflictingBlobs(**kwargs)


@pytest.fixture
def class_blobs() -> Callable[..., ClassIncrementalBlobs]:
    """Factory of the class-incremental blobs benchmark (one head, two new classes per task)."""
    return lambda **kwargs: ClassIncrementalBlobs(**kwargs)


@pytest.fixture
def run() -> Callable[..., tuple[ContinualTrainer, Any]]:
    """``run(AlgorithmClass, params, benchmark=..., ...)``: train on the blobs benchmark."""
    return run_blobs


@pytest.fixture
def featureless() -> FeaturelessBackbone:
    return FeaturelessBackbone()


@pytest.fixture
def backbone_for() -> Callable[..., MLP]:
    return blobs_backbone


SEEDS = (0, 1, 2)


@pytest.fixture(scope="session")
def finetune_forgetting() -> dict[int, float]:
    """Average forgetting of plain finetuning on the blobs benchmark, per seed."""
    from clgym_algos.finetune import Finetune

    return {seed: average_forgetting(run_blobs(Finetune, seed=seed)[0].accuracy_matrix) for seed in SEEDS}


@pytest.fixture
def check_forgets_less(finetune_forgetting: dict[int, float]) -> Callable[..., dict[int, float]]:
    """``check(AlgorithmClass, params, ...)``: on every seed the algorithm still learns each task (>= 90%)
    and forgets less than finetune, and on average by at least ``margin`` points."""

    def check(algorithm_cls: type, params: dict[str, Any] | None = None, margin: float = 30.0, **kwargs: Any):
        ours = {}
        for seed in SEEDS:
            trainer, _ = run_blobs(algorithm_cls, params, seed=seed, **kwargs)
            matrix = trainer.accuracy_matrix
            assert learning_accuracy(matrix) >= 90.0, (seed, matrix)
            ours[seed] = average_forgetting(matrix)
        mean_ours = sum(ours.values()) / len(ours)
        mean_finetune = sum(finetune_forgetting.values()) / len(finetune_forgetting)
        assert all(ours[s] < finetune_forgetting[s] for s in SEEDS), (ours, finetune_forgetting)
        assert mean_ours <= mean_finetune - margin, (ours, finetune_forgetting)
        return ours

    return check


class WeightsAfterTask(Callback):
    """Records the flat weights at the end of every task."""

    name = "weights_after_task"

    def __init__(self) -> None:
        super().__init__()
        self.after: dict[int, torch.Tensor] = {}

    def on_task_end(self, trainer, task: int) -> None:
        self.after[task] = FlatParams(trainer.backbone).values()


@pytest.fixture
def weights_after_task() -> type[WeightsAfterTask]:
    """The class of a callback that keeps each task's final weights (make one per run)."""
    return WeightsAfterTask
