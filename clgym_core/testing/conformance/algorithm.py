"""Conformance checks for algorithms."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from clgym_core.testing.conformance._kit import (
    DEVICES,
    KIT_BACKBONE,
    KIT_BENCHMARK,
    KIT_OPTIMIZER,
    KIT_TRAINER,
    ComponentConformance,
    assert_same,
    build_run,
    check_matrix,
    kit_registry,
    learning_accuracy,
    merged,
    weights,
)

STATE_HINT = (
    "whatever the algorithm keeps across tasks must be in state_dict() and restored by load_state_dict()"
)


class AlgorithmConformance(ComponentConformance):
    """What every algorithm must honour. Subclass it and set ``component`` and ``params``::

        from clgym_core.testing import AlgorithmConformance

        class TestMyMethod(AlgorithmConformance):
            component = MyMethod
            params = {"strength": 10.0}

    The runs use the kit benchmark (3 tasks of Gaussian blobs, with episodic
    memory and subsets configured), the ``mlp`` backbone and SGD; adjust them
    with ``synthetic_params``, ``backbone_params``, ``optimizer_params`` and
    ``trainer_params``. ``min_learning_accuracy`` is the mean accuracy (percent)
    each task must reach right after it is trained (chance is 33%); ``None``
    skips that check.
    """

    __test__ = False
    kind = "algorithm"

    synthetic_params: ClassVar[dict[str, Any]] = {}
    backbone_params: ClassVar[dict[str, Any]] = {}
    optimizer_params: ClassVar[dict[str, Any]] = {}
    trainer_params: ClassVar[dict[str, Any]] = {}
    min_learning_accuracy: ClassVar[float | None] = 75.0

    # ---- helpers ----------------------------------------------------------------------------------
    def spec(self, heads: str = "single", device: str = "cpu") -> dict[str, Any]:
        """The kit's run spec with the algorithm under test."""
        cls = self.component_class()
        return {
            "benchmark": {"name": "synthetic_blobs", "params": merged(KIT_BENCHMARK, self.synthetic_params,
                                                                      {"heads": heads})},
            "backbone": {"name": "mlp", "params": merged(KIT_BACKBONE, self.backbone_params)},
            "algorithm": {"name": cls.name, "params": dict(self.params)},
            "optimizer": merged(KIT_OPTIMIZER, self.optimizer_params),
            "trainer": merged(KIT_TRAINER, self.trainer_params, {"device": device}),
            "seed": self.seed,
        }

    def check_learns(self, matrix: list[list[float]], what: str) -> None:
        if self.min_learning_accuracy is None:
            return
        reached = learning_accuracy(matrix)
        assert reached >= self.min_learning_accuracy, (
            f"{what}: tasks reach {reached:.1f}% on average right after training them, below "
            f"min_learning_accuracy = {self.min_learning_accuracy}% (does train_step update the backbone?)"
        )

    # ---- checks -----------------------------------------------------------------------------------
    def test_builds_from_a_spec(self) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(), registry)
        algorithm = run.components.algorithm
        assert type(algorithm) is cls
        assert algorithm.backbone is run.components.backbone and algorithm.benchmark is run.components.benchmark
        expected = cls.Params.model_validate(self.params).model_dump()
        assert algorithm.params.model_dump() == expected, "the algorithm's params are not the spec's"

    @pytest.mark.parametrize("heads", ["single", "multi"])
    def test_learns_each_task_in_a_short_run(self, heads: str) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(heads=heads), registry)
            before = weights(run.components.backbone)
            run.fit()
        num_tasks = run.components.benchmark.num_tasks
        check_matrix(run.accuracy, num_tasks, "accuracy matrix")
        check_matrix(run.loss, num_tasks, "loss matrix", classification=False)
        after = weights(run.components.backbone)
        assert any(not torch.equal(before[k], after[k]) for k in before), "training left every weight unchanged"
        self.check_learns(run.accuracy, f"{heads}-head run")

    def test_same_seed_same_run(self) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            first = build_run(self.spec(), registry).fit()
            second = build_run(self.spec(), registry).fit()
        hint = "draw randomness only from torch's seeded global generator or the benchmark's generators"
        assert_same(first.accuracy, second.accuracy, "accuracy matrices of two runs with one seed", hint)
        assert_same(weights(first.components.backbone), weights(second.components.backbone),
                    "final weights of two runs with one seed", hint)
        assert_same(first.components.algorithm.state_dict(), second.components.algorithm.state_dict(),
                    "algorithm.state_dict() of two runs with one seed", hint)

    def test_state_dict_round_trip_resumes_exactly(self, tmp_path: Path) -> None:
        """Checkpoint after task 2, restore into fresh instances, train task 3: same as never stopping."""
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            reference = build_run(self.spec(), registry).fit()
            stopped = build_run(self.spec(), registry).fit_until(2)
            assert_same(stopped.accuracy, reference.accuracy[:3], "accuracy rows 0..2 of a stopped run")
            checkpoint = stopped.checkpoint(tmp_path / "checkpoint.pt")
            # Fresh instances, initialised from another seed: only the checkpoint carries state over.
            resumed = build_run(self.spec(), registry, init_seed=self.seed + 1009).resume_from(checkpoint)
        assert_same(weights(resumed.components.backbone), weights(reference.components.backbone),
                    "final weights of the resumed and the uninterrupted run", STATE_HINT)
        assert_same(resumed.accuracy, reference.accuracy, "accuracy matrices of the resumed and the "
                    "uninterrupted run", STATE_HINT)
        assert_same(resumed.components.algorithm.state_dict(), reference.components.algorithm.state_dict(),
                    "algorithm.state_dict() of the resumed and the uninterrupted run", STATE_HINT)

    @pytest.mark.parametrize("device", DEVICES)
    def test_runs_and_resumes_on_device(self, device: str, tmp_path: Path) -> None:
        """Train on ``device``, checkpoint (read back onto the CPU, as resuming does) and finish the run."""
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(device=device), registry).fit_until(2)
            backbone = run.components.backbone
            assert all(p.device.type == device for p in backbone.parameters()), f"backbone is not on {device}"
            checkpoint = run.checkpoint(tmp_path / "checkpoint.pt", map_location="cpu")
            resumed = build_run(self.spec(device=device), registry).resume_from(checkpoint)
        check_matrix(resumed.accuracy, resumed.components.benchmark.num_tasks, f"accuracy matrix on {device}")
        self.check_learns(resumed.accuracy, f"run on {device}")
