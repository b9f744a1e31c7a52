"""Conformance checks for callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_core.testing.conformance._kit import (
    DEVICES,
    KIT_BACKBONE,
    KIT_BENCHMARK,
    KIT_OPTIMIZER,
    KIT_TRAINER,
    ComponentConformance,
    KitFailure,
    assert_same,
    build_run,
    check_matrix,
    kit_registry,
    merged,
    save_and_load,
    weights,
)


class CallbackConformance(ComponentConformance):
    """What every callback must honour. Subclass it and set ``component`` and ``params``::

        from clgym_core.testing import CallbackConformance

        class TestMyLogger(CallbackConformance):
            component = MyLogger
            params = {"every": 10}

    The callback runs on the kit benchmark with the ``mlp`` backbone. A callback
    observes: results must be the same with and without it; set
    ``changes_training = True`` for one that deliberately steers training.
    ``synthetic_params`` adjusts the kit benchmark (e.g. ``{"input_size": 2}``
    for a callback that plots 2D inputs).
    """

    __test__ = False
    kind = "callback"

    changes_training: ClassVar[bool] = False
    synthetic_params: ClassVar[dict[str, Any]] = {}

    def spec(self, with_callback: bool = True, algorithm: Any = "kit_finetune", device: str = "cpu") -> dict[str, Any]:
        cls = self.component_class()
        return {
            "benchmark": {"name": "synthetic_blobs", "params": merged(KIT_BENCHMARK, {"num_tasks": 2},
                                                                      self.synthetic_params)},
            "backbone": {"name": "mlp", "params": KIT_BACKBONE},
            "algorithm": algorithm,
            "optimizer": KIT_OPTIMIZER,
            "trainer": merged(KIT_TRAINER, {"device": device}),
            "callbacks": [{"name": cls.name, "params": dict(self.params)}] if with_callback else [],
            "seed": self.seed,
        }

    def attached(self, run: Any) -> Any:
        cls = self.component_class()
        found = [c for c in run.trainer.callbacks if type(c) is cls]
        assert len(found) == 1, f"the run holds {len(found)} instances of {cls.__name__}"
        return found[0]

    # ---- checks -----------------------------------------------------------------------------------
    def test_runs_from_a_spec_through_the_runner(self, tmp_path: Path) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            result = run_spec(parse_spec(self.spec()), out_dir=tmp_path / "run", registry=registry)
        assert any(type(c) is cls for c in result.trainer.callbacks), "the spec's callback was not attached"
        check_matrix(result.accuracy_matrix, 2, "accuracy matrix")
        assert (tmp_path / "run" / "metrics.json").exists()

    def test_runs_without_a_run_directory(self) -> None:
        """From the Python API ``trainer.run_dir`` is None; the callback must cope (e.g. write nothing)."""
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(), registry, run_dir=None).fit()
        check_matrix(run.accuracy, 2, "accuracy matrix")

    def test_does_not_change_the_results(self, tmp_path: Path) -> None:
        if self.changes_training:
            pytest.skip("changes_training = True")
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            plain = build_run(self.spec(with_callback=False), registry, run_dir=tmp_path / "a").fit()
            observed = build_run(self.spec(), registry, run_dir=tmp_path / "b").fit()
        hint = "a callback must not train, reseed or change the model (set changes_training = True if it should)"
        assert_same(observed.accuracy, plain.accuracy, "accuracy matrices with and without the callback", hint)
        assert_same(weights(observed.components.backbone), weights(plain.components.backbone),
                    "final weights with and without the callback", hint)
        assert observed.components.backbone.training, "the callback left the backbone in eval mode"

    def test_state_dict_round_trip(self, tmp_path: Path) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(), registry, run_dir=tmp_path).fit()
        callback = self.attached(run)
        state = callback.state_dict()
        loaded = save_and_load(state, tmp_path / "callback.pt", "callback.state_dict()")
        fresh = cls(dict(self.params))
        fresh.load_state_dict(loaded)
        assert_same(fresh.state_dict(), state, "state_dict() of a callback and its restored copy")

    def test_a_failing_run_keeps_its_error(self, tmp_path: Path) -> None:
        """on_exception and teardown must not raise, or the run's real error would be masked."""
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(algorithm={"name": "kit_failing", "params": {"fail_at_task": 2}}),
                            registry, run_dir=tmp_path)
            with pytest.raises(KitFailure):
                run.trainer.fit()
        assert run.trainer.completed_tasks == 1

    @pytest.mark.parametrize("device", DEVICES)
    def test_runs_on_device(self, device: str, tmp_path: Path) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(device=device), registry, run_dir=tmp_path).fit()
        check_matrix(run.accuracy, 2, f"accuracy matrix on {device}")
