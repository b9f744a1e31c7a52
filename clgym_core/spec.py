"""Run specs: what to run, as data. Read from YAML, TOML or JSON; validated with pydantic.

A spec names components by registry name plus params, never by import path, so
loading one imports nothing it does not name and executes no code. It names only
what differs from the defaults; the resolved spec (every default filled in, the
version of every plugin used) is written into the run's output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clgym_core.algorithm import OptimizerConfig
from clgym_core.component import format_validation_error, validate_params
from clgym_core.errors import RegistryError, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

if TYPE_CHECKING:
    from clgym_core.registry import Registry

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentSpec(_Strict):
    """A registered component: its registry name and the params that differ from its defaults."""

    name: str = Field(description="Registry name (see `clgym list`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters (see `clgym show NAME`).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `algorithm: finetune` is short for `algorithm: {name: finetune}`.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class TrainerSpec(_Strict):
    """How the trainer runs (the engineering side)."""

    epochs_per_task: int = Field(1, ge=1, description="Training epochs on each task.")
    batch_size: int = Field(64, ge=1, description="Training batch size.")
    eval_batch_size: int = Field(1024, ge=1, description="Evaluation batch size.")
    device: str = Field("auto", description="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
    shuffle: bool = Field(True, description="Shuffle training data every epoch (seeded).")
    stop_on_nonfinite: bool = Field(True, description="Stop when the training loss becomes NaN or infinite.")
    progress: bool = Field(True, description="Show a live progress display on stderr.")
    num_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (torch.set_num_threads); torch's default when unset."
    )
    checkpoint: bool = Field(True, description="Write RUN_DIR/checkpoint.pt after every task (clgym run --resume).")
    mixed_precision: Literal["none", "bf16"] = Field(
        "none", description="none, or bf16: autocast training steps and evaluation to bfloat16 (CUDA)."
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _mixed_precision(cls, value: Any) -> Any:
        # YAML reads `no`/`off` as false.
        if value is None or value is False:
            return "none"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
        return value


class RunSpec(_Strict):
    """One continual-learning run."""

    benchmark: ComponentSpec
    backbone: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="mlp"))
    algorithm: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="finetune"))
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    callbacks: list[ComponentSpec] = Field(default_factory=list, description="Callbacks to attach, in order.")
    seed: int = Field(0, description="Seed of the run; the benchmark's seed defaults to it.")
    output_dir: str = Field("runs", description="Parent folder of run directories (unless --out is given).")
    name: str | None = Field(None, description="Run name used in the run directory's name.")
    versions: dict[str, str] | None = Field(
        None, description="Written by clgym: versions of the distributions that ran this spec (informational)."
    )

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a spec file, chosen by suffix."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SpecError(f"{path}: unknown spec format {path.suffix!r}; use .yaml, .yml, .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if kind == "yaml":
            data = yaml.safe_load(text)
        elif kind == "toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML: numbers, booleans, lists) to a copy."""
    result = json.loads(json.dumps(data, default=str)) if data else {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. algorithm.params.lambda=100")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and part in {"benchmark", "backbone", "algorithm"}:
                child = node[part] = {"name": child}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise SpecError(f"--set {item!r}: {where} is not a mapping")
            node = child
        node[parts[-1]] = value
    return result


def parse_spec(data: dict[str, Any], source: str = "spec") -> RunSpec:
    """Validate a raw mapping into a :class:`RunSpec` (field paths in errors)."""
    try:
        return RunSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{source}: {format_validation_error(error)}") from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> RunSpec:
    """Read, override and validate a spec file."""
    return parse_spec(apply_overrides(read_spec_file(path), overrides), str(path))


def resolve_spec(spec: RunSpec, registry: Registry | None = None, source: str = "spec") -> RunSpec:
    """Check every component name and params against the registry; return the spec with defaults filled.

    The benchmark's ``seed`` defaults to the run's seed, and the backbone's
    sizes default from the benchmark (``Backbone.defaults_from``).
    """
    from clgym_core.registry import get_registry

    registry = registry or get_registry()

    def lookup(kind: str, component: ComponentSpec, where: str) -> type:
        try:
            return registry.get(kind, component.name)
        except RegistryError as exc:
            raise RegistryError(f"{source}: {where}.name: {exc}") from None

    def checked(kind: str, component: ComponentSpec, where: str, extra: dict[str, Any] | None = None) -> Any:
        cls = lookup(kind, component, where)
        values = {**(extra or {}), **component.params}
        try:
            params = validate_params(cls, values, where=f"{where}.params")
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        return cls, params

    bench_extra = {"seed": spec.seed} if "seed" in _fields(lookup("benchmark", spec.benchmark, "benchmark")) else {}
    bench_cls, bench_params = checked("benchmark", spec.benchmark, "benchmark", bench_extra)
    benchmark = bench_cls(bench_params)
    backbone_cls = lookup("backbone", spec.backbone, "backbone")
    _, backbone_params = checked("backbone", spec.backbone, "backbone", backbone_cls.defaults_from(benchmark))
    _, algo_params = checked("algorithm", spec.algorithm, "algorithm")
    callbacks = [checked("callback", cb, f"callbacks[{i}]")[1] for i, cb in enumerate(spec.callbacks)]

    def dump(cls_kind: str, component: ComponentSpec, params: Any) -> ComponentSpec:
        name = registry.info(cls_kind, component.name).name
        return ComponentSpec(name=name, params=params.model_dump(mode="json", by_alias=True))

    return spec.model_copy(
        update={
            "benchmark": dump("benchmark", spec.benchmark, bench_params),
            "backbone": dump("backbone", spec.backbone, backbone_params),
            "algorithm": dump("algorithm", spec.algorithm, algo_params),
            "callbacks": [dump("callback", cb, p) for cb, p in zip(spec.callbacks, callbacks)],
        }
    )


def _fields(cls: type) -> dict[str, Any]:
    return cls.Params.model_fields


def dump_spec(spec: RunSpec) -> str:
    """The spec as YAML (what ``spec.yaml`` in a run directory holds)."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
