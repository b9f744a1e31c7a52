"""What the conformance classes share: the base class, the kit's stand-in components, run helpers.

The kit runs every component inside a tiny, fully known setup: the
:class:`~clgym_core.testing.SyntheticBlobs` benchmark, the built-in ``mlp``
backbone and :class:`KitFinetune` (plain sequential training), each swapped for
the component under test where that is the point. Runs are built the way
``clgym run`` builds them (``resolve`` -> ``build`` ->
``build_trainer``) in an isolated registry, so installed plugins never leak in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.callback import Callback
from clgym_core.component import Params, summary_line, validate_params
from clgym_core.errors import SpecError
from clgym_core.kinds import BY_NAME
from clgym_core.registry import Registry
from clgym_core.build import Components, build, build_trainer, resolve
from clgym_core.spec import RunSpec, parse_spec
from clgym_core.testing.synthetic import SyntheticBlobs
from clgym_core.trainer import ContinualTrainer


#: The kit benchmark: 3 tasks of 3 Gaussian blobs in 8 dimensions, small memories and subsets.
KIT_BENCHMARK: dict[str, Any] = {
    "num_tasks": 3,
    "input_size": 8,
    "classes_per_task": 3,
    "train_examples": 96,
    "test_examples": 48,
    "per_task_memory_examples": 6,
    "per_task_subset_examples": 12,
}
KIT_BACKBONE: dict[str, Any] = {"hidden_sizes": [32]}
KIT_OPTIMIZER: dict[str, Any] = {"name": "sgd", "lr": 0.1, "momentum": 0.5}
KIT_TRAINER: dict[str, Any] = {
    "epochs_per_task": 2,
    "batch_size": 16,
    "eval_batch_size": 64,
    "device": "cpu",
    "progress": False,
}

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine"),
    ),
]


# ---- stand-in components ------------------------------------------------------------------------


class KitFinetune(Algorithm):
    """Plain sequential training: the conformance kit's stand-in algorithm."""

    name = "kit_finetune"


class KitFailure(RuntimeError):
    """The deliberate error :class:`KitFailing` raises."""


class KitFailingParams(Params):
    fail_at_task: int = Field(2, ge=1, description="Task whose first training step raises KitFailure.")


class KitFailing(Algorithm):
    """Sequential training that raises KitFailure at the start of one task (tests failure handling)."""

    name = "kit_failing"
    Params = KitFailingParams

    def train_step(self, batch: Any, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if self.current_task == self.params.fail_at_task:
            raise KitFailure(f"deliberate failure at task {self.current_task} (conformance kit)")
        return super().train_step(batch, optimizer)


class _StopRun(Exception):
    """Raised by :class:`StopAfterTask` to end a run at a task boundary."""


class StopAfterTask(Callback):
    """Ends the run after ``task`` was trained and evaluated, as a crash at a task boundary would."""

    name = "kit_stop_after_task"

    def __init__(self, task: int) -> None:
        super().__init__()
        self.task = task

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        if task == self.task:
            raise _StopRun()


# ---- building and running -----------------------------------------------------------------------


@contextlib.contextmanager
def kit_registry(kind: str, component: type) -> Iterator[Registry]:
    """A registry with the built-ins, the kit's components and ``component``; no installed plugins."""
    from clgym_core.testing import isolated_registry, make_plugin

    kit = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[KitFinetune, KitFailing])
    under_test = make_plugin(**{BY_NAME[kind].plural: [component]})
    with isolated_registry({"clgym_conformance_kit": kit, "under_test": under_test}) as registry:
        yield registry


@dataclass
class KitRun:
    """One built run: its resolved spec, components and trainer."""

    spec: RunSpec
    components: Components
    trainer: ContinualTrainer

    def fit(self) -> KitRun:
        self.trainer.fit()
        return self

    def fit_until(self, task: int) -> KitRun:
        """Train tasks up to ``task`` and stop there (the trainer raises; the state stays)."""
        self.trainer.add_callback(StopAfterTask(task))
        with contextlib.suppress(_StopRun):
            self.trainer.fit()
        return self

    def checkpoint(self, path: Path, map_location: str | None = None) -> dict[str, Any]:
        """The trainer's checkpoint; what components put in it goes through ``torch.save`` and
        ``torch.load(weights_only=True)`` as a resumed run reads it."""
        state = dict(self.trainer.checkpoint_state())
        parts = {key: state[key] for key in ("backbone", "algorithm", "callbacks")}
        state.update(save_and_load(parts, path, "checkpoint", map_location))
        return state

    def resume_from(self, checkpoint: dict[str, Any]) -> KitRun:
        """Continue after the checkpoint's last task, as ``clgym run --resume`` does."""
        self.trainer.restore(checkpoint)
        return self.fit()

    @property
    def accuracy(self) -> list[list[float]]:
        return self.trainer.accuracy_matrix

    @property
    def loss(self) -> list[list[float]]:
        return self.trainer.loss_matrix


def build_run(
    spec: RunSpec | Mapping[str, Any],
    registry: Registry,
    init_seed: int | None = None,
    run_dir: Path | None = None,
) -> KitRun:
    """Build a run as ``clgym run`` does; ``init_seed`` seeds the model initialisation differently."""
    if not isinstance(spec, RunSpec):
        spec = parse_spec(dict(spec), "conformance spec")
    # The kit takes its checkpoints itself, at the points it tests.
    spec = spec.model_copy(update={"trainer": spec.trainer.model_copy(update={"checkpoint": False})})
    resolved = resolve(spec, registry, source="conformance spec")
    to_build = resolved
    if init_seed is not None:
        to_build = dataclasses.replace(resolved, spec=resolved.spec.model_copy(update={"seed": init_seed}))
    components = build(to_build)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(resolved, components, run_dir)
    return KitRun(resolved.spec, components, trainer)


def merged(*parts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


def save_and_load(state: Any, path: Path, what: str, map_location: str | None = None) -> Any:
    """``torch.save`` then ``torch.load(weights_only=True)``, failing with a clear message when unsafe."""
    from clgym_core.checkpoint import CheckpointError, check_plain

    try:
        check_plain(state, what)  # the rule the trainer's checkpoints enforce
    except CheckpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    torch.save(state, path)
    try:
        return torch.load(path, weights_only=True, map_location=map_location)
    except Exception as exc:  # the weights-only unpickler raises assorted types
        lines = [line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line]
        reason = lines[0] if lines else " ".join(str(exc).split())[:300]
        pytest.fail(
            f"{what} cannot be loaded with torch.load(weights_only=True): keep only tensors and plain Python "
            f"values (dict, list, tuple, str, int, float, bool, None) in state_dict() ({reason})",
            pytrace=False,
        )


# ---- comparisons --------------------------------------------------------------------------------


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two nested structures of tensors and plain values differ (exactly), or ``None``."""
    here = path or "value"
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{here}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{here}: shape/dtype {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
        a_cpu, b_cpu = a.detach().cpu(), b.detach().cpu()
        if not torch.equal(a_cpu, b_cpu):
            if a_cpu.is_floating_point() and torch.equal(torch.isnan(a_cpu), torch.isnan(b_cpu)):
                both = ~torch.isnan(a_cpu)
                if torch.equal(a_cpu[both], b_cpu[both]):
                    return None
                diff = (a_cpu[both].double() - b_cpu[both].double()).abs().max().item()
                return f"{here}: values differ (max abs difference {diff:.3g})"
            return f"{here}: values differ"
        return None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return f"{here}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            found = first_difference(a[key], b[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{here}: length {len(a)} vs {len(b)}"
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return f"{here}: {type(a).__name__} vs {type(b).__name__}"
    return None if a == b else f"{here}: {a!r} vs {b!r}"


def assert_same(a: Any, b: Any, what: str, hint: str = "") -> None:
    found = first_difference(a, b)
    if found:
        pytest.fail(f"{what} differ at {found}{'; ' + hint if hint else ''}", pytrace=False)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def learning_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean accuracy on task t right after training it (the diagonal)."""
    diagonal = [matrix[t][t - 1] for t in range(1, len(matrix))]
    return sum(diagonal) / len(diagonal)


def check_matrix(matrix: Sequence[Sequence[float]], num_tasks: int, what: str, classification: bool = True) -> None:
    """Rows 0..T (row 0: untrained), one column per task, finite (accuracies within 0..100)."""
    assert len(matrix) == num_tasks + 1, f"{what}: expected {num_tasks + 1} rows (untrained + one per task)"
    for i, row in enumerate(matrix):
        assert len(row) == num_tasks, f"{what}: row {i} has {len(row)} entries, expected {num_tasks}"
        for j, value in enumerate(row):
            assert math.isfinite(value), f"{what}: entry ({i}, task {j + 1}) is {value}"
            if classification:
                assert 0.0 <= value <= 100.0, f"{what}: entry ({i}, task {j + 1}) = {value} is not a percentage"


# ---- the base class -----------------------------------------------------------------------------


class ComponentConformance:
    """Checks every registered component must pass, whatever its kind.

    Subclass one of the kind-specific classes (never this one) in a module named
    ``test_*.py`` with a class named ``Test*``, and set ``component`` (the class
    under test) and ``params`` (its parameters for the kit's runs).
    """

    __test__ = False  # only concrete subclasses are collected (see __init_subclass__)

    kind: ClassVar[str] = ""
    #: The class under test.
    component: ClassVar[type | None] = None
    #: Its parameters in the kit's runs (what a spec's ``params:`` would hold).
    params: ClassVar[dict[str, Any]] = {}
    #: Params fields that may legitimately have no default (a user must always give them).
    required_params: ClassVar[tuple[str, ...]] = ()
    #: Seed of the kit's runs.
    seed: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass is collected unless it says otherwise (a shared intermediate sets __test__ = False).
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    # ---- helpers ----------------------------------------------------------------------------------
    @classmethod
    def component_class(cls) -> type:
        if cls.component is None:
            pytest.fail(f"{cls.__name__}: set `component = YourClass` (the class under test)", pytrace=False)
        return cls.component

    @pytest.fixture(autouse=True)
    def _one_cpu_thread(self) -> Iterator[None]:
        # The kit's models are tiny: intra-op threads only add overhead, and on a shared
        # machine oversubscribed OpenMP threads make a 10 ms run take half a second.
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    @pytest.fixture
    def component_params(self) -> dict[str, Any]:
        """The parameters the kit uses; kinds with fixture-provided params override this."""
        return dict(self.params)

    # ---- checks -----------------------------------------------------------------------------------
    def test_is_a_registrable_component(self) -> None:
        cls = self.component_class()
        base = BY_NAME[self.kind].base_class()
        assert isinstance(cls, type) and issubclass(cls, base), f"{cls!r} is not a subclass of {base.__name__}"
        try:
            cls.check_component()
        except TypeError as exc:
            pytest.fail(str(exc), pytrace=False)
        assert issubclass(cls.Params, Params), (
            f"{cls.__qualname__}.Params must derive from clgym_core.Params (unknown keys are errors, "
            "assignments are validated)"
        )

    def test_params_fields_have_defaults_and_descriptions(self) -> None:
        cls = self.component_class()
        undocumented = [name for name, f in cls.Params.model_fields.items() if not (f.description or "").strip()]
        assert not undocumented, (
            f"{cls.__qualname__}.Params fields without a description (shown by `clgym show`): "
            f"{', '.join(undocumented)}; use Field(..., description=...)"
        )
        no_default = [
            name for name, f in cls.Params.model_fields.items()
            if f.is_required() and name not in self.required_params
        ]
        assert not no_default, (
            f"{cls.__qualname__}.Params fields without a default: {', '.join(no_default)}; give defaults, "
            "or list the fields a user must always set in `required_params`"
        )

    def test_params_survive_the_spec_round_trip(self, component_params: dict[str, Any]) -> None:
        cls = self.component_class()
        try:
            params = validate_params(cls, component_params)
        except SpecError as exc:
            pytest.fail(f"the test's params do not validate: {exc}", pytrace=False)
        # What the runner writes to spec.yaml must read back as the same parameters.
        dumped = yaml.safe_load(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
        try:
            again = validate_params(cls, dumped)
        except SpecError as exc:
            pytest.fail(f"params dumped to spec.yaml do not validate again: {exc}", pytrace=False)
        assert again == params, f"params changed in the spec.yaml round trip: {params!r} -> {again!r}"

    def test_unknown_params_are_one_line_errors(self, component_params: dict[str, Any]) -> None:
        cls = self.component_class()
        with pytest.raises(SpecError) as info:
            validate_params(cls, {**component_params, "no_such_parameter_xyz": 1})
        message = str(info.value)
        assert "no_such_parameter_xyz" in message, f"the error does not name the unknown key: {message!r}"
        assert "\n" not in message, f"the error is not one line: {message!r}"

    def test_docstring_gives_a_summary_line(self) -> None:
        cls = self.component_class()
        assert cls.__dict__.get("__doc__"), (
            f"{cls.__qualname__} has no docstring; its first line is what `clgym list` shows"
        )
        assert summary_line(cls), f"{cls.__qualname__}'s docstring starts with an empty line"

    def test_registers_through_the_clgym_hook(self) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            assert registry.get(self.kind, cls.name) is cls
            assert registry.get(self.kind, cls.__name__) is cls
            problems = registry.problems()
            assert not problems, "; ".join(problems)
