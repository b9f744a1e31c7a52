"""Building a run: resolved once, defaults listed in the spec, settings passed in, callback state keyed by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.build import build, build_trainer, resolve, with_run_callbacks
from clgym_core.callback import Callback
from clgym_core.component import Params
from clgym_core.runner import run_spec
from clgym_core.spec import apply_overrides, parse_spec
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from clgym_core.trainer import ContinualTrainer, RunContext

SPEC = {
    "benchmark": {"name": "counted_blobs", "params": {"num_tasks": 2, "train_examples": 32, "test_examples": 16}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
    "algorithm": "plain",
    "trainer": {"batch_size": 16, "device": "cpu", "progress": False},
}


class CountedBlobs(SyntheticBlobs):
    """Synthetic blobs that count their constructions."""

    name = "counted_blobs"
    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).built += 1


class Plain(Algorithm):
    """Plain sequential training."""

    name = "plain"


class Counter(Callback):
    """Counts finished tasks; its state is what a checkpoint must give back to the right instance."""

    name = "counter"

    class Params(Params):
        label: str = Field("a", description="Which counter this is.")

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.tasks = 0

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        self.tasks += 1

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "label": self.params.label}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert state["label"] == self.params.label, "a counter was given another counter's state"
        self.tasks = state["tasks"]


class FailsOnException(Callback):
    """Raises from on_exception."""

    name = "fails_on_exception"

    def on_task_start(self, trainer: ContinualTrainer, task: int) -> None:
        raise RuntimeError("the original error")

    def on_exception(self, trainer: ContinualTrainer, exception: BaseException) -> None:
        raise ValueError("cleanup went wrong")


@pytest.fixture()
def registry():
    plugin = make_plugin(benchmarks=[CountedBlobs], algorithms=[Plain], callbacks=[Counter, FailsOnException])
    with isolated_registry({"test": plugin}) as reg:
        yield reg


def test_a_run_builds_its_benchmark_once(registry, tmp_path: Path) -> None:
    CountedBlobs.built = 0
    run_spec(parse_spec(SPEC), out_dir=tmp_path / "run", registry=registry)
    assert CountedBlobs.built == 1


def test_resolved_spec_lists_the_default_loggers_and_progress(registry, tmp_path: Path) -> None:
    spec = parse_spec({**SPEC, "trainer": {**SPEC["trainer"], "progress": True}})
    resolved = resolve(with_run_callbacks(spec, writes_run_dir=True), registry)
    assert [c.name for c in resolved.spec.callbacks] == ["progress", "csv_logger", "jsonl_logger"]
    quiet = resolve(with_run_callbacks(spec, writes_run_dir=True, progress=False), registry)
    assert [c.name for c in quiet.spec.callbacks] == ["csv_logger", "jsonl_logger"]
    assert quiet.spec.trainer.progress is False
    result = run_spec(spec, out_dir=tmp_path / "run", progress=False, registry=registry)
    written = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())
    assert [c["name"] for c in written["callbacks"]] == ["csv_logger", "jsonl_logger"]
    assert {type(c).name for c in result.trainer.callbacks} >= {"csv_logger", "jsonl_logger"}


def test_trainer_gets_its_settings_and_run_passed_in(registry, tmp_path: Path) -> None:
    resolved = resolve(parse_spec(SPEC), registry)
    trainer = build_trainer(resolved, build(resolved), tmp_path)
    assert trainer.settings == resolved.spec.trainer
    assert trainer.run_dir == tmp_path and trainer.run.spec["algorithm"]["name"] == "plain"
    with pytest.raises(AttributeError):
        trainer.run_dir = Path("elsewhere")  # type: ignore[misc]


def test_set_optimizer_field_on_a_short_form_optimizer() -> None:
    data = apply_overrides({**SPEC, "optimizer": "adam"}, ["optimizer.lr=0.5"])
    spec = parse_spec(data)
    assert spec.optimizer.name == "adam" and spec.optimizer.lr == 0.5


def _trainer(callbacks: list[Callback], run_dir: Path | None = None) -> ContinualTrainer:
    bench = SyntheticBlobs(num_tasks=2, train_examples=16, test_examples=8)
    algo = Plain(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench)
    run = RunContext(run_dir=run_dir)
    return ContinualTrainer(algo, {"batch_size": 8, "device": "cpu", "checkpoint": run_dir is not None,
                                   "progress": False}, callbacks, run=run)


def test_callback_state_follows_the_callback_not_its_position(tmp_path: Path) -> None:
    first, second = Counter(label="a"), Counter(label="b")
    trainer = _trainer([first, Counter(label="b")], tmp_path)
    trainer.fit()
    state = trainer.checkpoint_state()
    state["callbacks"]["counter:" + '{"label": "b"}']["tasks"] = 7  # tell the two apart
    resumed = _trainer([second, Counter(label="a")])  # the same callbacks, in the other order
    resumed.restore(state)
    resumed.fit()
    assert second.tasks == 7  # its own state, not the first counter's (load_state_dict would have failed)


def test_a_failing_on_exception_is_reported_after_the_original_error(capsys: pytest.CaptureFixture) -> None:
    trainer = _trainer([FailsOnException()])
    with pytest.raises(RuntimeError, match="the original error"):
        trainer.fit()
    err = capsys.readouterr().err
    assert "warning: callback fails_on_exception.on_exception failed: ValueError: cleanup went wrong" in err


@pytest.mark.parametrize("override, needles", [
    ({"input_size": 784}, ["backbone.params.input_size=784", "does not fit benchmark counted_blobs", "[8]"]),
    ({"output_size": 5}, ["backbone.params.output_size=5", "has 2 per head"]),
])
def test_validate_passes_a_dummy_batch_and_names_both_fields(registry, override: dict, needles: list[str]) -> None:
    from clgym_core.errors import SpecError

    spec = parse_spec({**SPEC, "backbone": {"name": "mlp", "params": {"hidden_sizes": [8], **override}}})
    with pytest.raises(SpecError) as caught:
        build(resolve(spec, registry, source="spec.yaml"))
    message = str(caught.value)
    assert message.startswith("spec.yaml: ") and "\n" not in message
    for needle in needles:
        assert needle in message


class WithState(Plain):
    """Keeps a counter and uses the usual super() pattern to restore."""

    name = "with_state"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen = 0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = state["seen"]


def test_the_usual_super_load_state_dict_pattern_works() -> None:
    algo = WithState(MLP(input_size=8, hidden_sizes=[8], output_size=2), SyntheticBlobs())
    algo.load_state_dict({"seen": 3})
    assert algo.seen == 3 and algo.state_dict() == {"seen": 3}


def test_logger_flag_adds_a_named_callback_once_and_unknown_names_are_one_line(registry, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clgym_core.cli import app

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "callbacks": ["counter"]}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--logger", "counter",
                                      "--logger", "fails_on_exception_not", "--no-progress"])
    assert result.exit_code == 2 and "callbacks[1].name: unknown callback 'fails_on_exception_not'" in result.output
    assert not out.exists()
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--logger", "counter", "--no-progress"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "spec.yaml").read_text())
    assert [c["name"] for c in written["callbacks"]] == ["counter", "csv_logger", "jsonl_logger"]
