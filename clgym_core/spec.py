"""Run specs: what to run, as data. Read from YAML, TOML or JSON; validated with pydantic.

A spec names components by registry name plus params, never by import path, so
loading one imports nothing it does not name and executes no code. It names only
what differs from the defaults; the resolved spec (every default filled in, the
version of every plugin used) is written into the run's output.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clgym_core.component import format_validation_error
from clgym_core.errors import SpecError
from clgym_core.optim import OptimizerConfig
from clgym_core.settings import TrainerSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Bounds on what a spec file may expand to: YAML aliases can make a few hundred bytes
#: describe billions of nodes ("billion laughs"), and deep nesting exhausts the stack.
MAX_SPEC_NODES = 100_000
MAX_SPEC_DEPTH = 64
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


TrainerSpec = TrainerSettings  # the ``trainer:`` section (its own module: the trainer reads it too)


class RunSpec(_Strict):
    """One continual-learning run."""

    benchmark: ComponentSpec
    backbone: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="mlp"))
    algorithm: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="finetune"))
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    callbacks: list[ComponentSpec] = Field(default_factory=list, description="Callbacks to attach, in order.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of the run; the benchmark's seed defaults to it.")
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
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the spec as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_spec_text(text, kind, str(path))


def parse_spec_text(text: str, kind: str, source: str) -> dict[str, Any]:
    """The mapping in ``text`` (``kind``: yaml, toml or json), bounded in size and depth; one-line errors."""
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
        raise SpecError(f"{source}:{where} invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply (a spec needs at most {MAX_SPEC_DEPTH} levels)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a mapping at the top level, got {type(data).__name__}")
    check_spec_size(data, source)
    return data


def check_spec_size(data: Any, source: str) -> None:
    """Refuse data that expands beyond :data:`MAX_SPEC_NODES` nodes or :data:`MAX_SPEC_DEPTH` levels.

    YAML anchors make shared (or cyclic) sub-trees; they are counted as often as they
    are referenced, without expanding them, so the check itself stays linear in the file.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if depth > MAX_SPEC_DEPTH:
            raise SpecError(f"{source}: nested too deeply (a spec needs at most {MAX_SPEC_DEPTH} levels)")
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in on_path:
            raise SpecError(f"{source}: a YAML alias refers to itself; a spec must be a tree")
        if key in sizes:
            return sizes[key]
        on_path.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_SPEC_NODES:
                raise SpecError(f"{source}: expands to more than {MAX_SPEC_NODES} values "
                                "(YAML aliases repeating data?); write the spec out plainly")
        on_path.discard(key)
        sizes[key] = total
        return total

    size(data, 0)


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML: numbers, booleans, lists) to a copy."""
    result = copy.deepcopy(data) if data else {}
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
            elif isinstance(child, str) and depth == 0 and part in SHORTHAND_FIELDS:
                child = node[part] = {"name": child}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise SpecError(f"--set {item!r}: {where} is not a mapping")
            node = child
        node[parts[-1]] = value
    return result


#: Top-level fields that may be written as just a name (``optimizer: adam``, ``algorithm: ewc``).
SHORTHAND_FIELDS = frozenset(
    name for name, f in RunSpec.model_fields.items() if f.annotation in (ComponentSpec, OptimizerConfig)
)


def parse_spec(data: dict[str, Any], source: str = "spec") -> RunSpec:
    """Validate a raw mapping into a :class:`RunSpec` (field paths in errors)."""
    try:
        return RunSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{source}: {format_validation_error(error, model=RunSpec)}") from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> RunSpec:
    """Read (following ``extends``), override and validate a spec file."""
    return parse_spec(apply_overrides(read_composed_spec(path), overrides), str(path))


EXTENDS = "extends"


def read_composed_spec(path: str | Path) -> dict[str, Any]:
    """The mapping of a spec file with its ``extends:`` chain merged in (``--set`` goes on top of this).

    ``extends: base.yaml`` names a spec file relative to the extending file's folder. Mappings merge
    recursively and the extending file wins; a list or a plain value replaces the base's. A component
    given another name (``algorithm: agem`` over a base's ``ewc``) replaces the base's whole entry,
    params included, since they belong to the other component. Chains are followed; a cycle or a
    missing base is one line naming the file. The merged result is bounded like any single spec.
    """
    path = Path(path)
    chain: list[Path] = []
    data = _read_extending(path, chain)
    check_spec_size(data, str(path))
    return data


def _read_extending(path: Path, chain: list[Path]) -> dict[str, Any]:
    key = path.resolve()
    if key in chain:
        loop = " -> ".join(str(p.name) for p in [*chain[chain.index(key):], key])
        raise SpecError(f"{path}: extends itself through a cycle ({loop}); remove one extends")
    chain.append(key)
    data = read_spec_file(path)
    base_name = data.pop(EXTENDS, None)
    if base_name is None:
        return data
    if not isinstance(base_name, str) or not base_name.strip():
        raise SpecError(f"{path}: {EXTENDS}: expected the path of a spec file, got {base_name!r}")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise SpecError(f"{path}: {EXTENDS}: {base_name!r} does not exist (looked for {base_path})")
    return merge_specs(_read_extending(base_path, chain), data)


def merge_specs(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` merged over ``base`` (new dicts; neither argument changes). See :func:`read_composed_spec`."""
    merged = copy.deepcopy(base)
    for key, value in top.items():
        old = merged.get(key)
        if key in SHORTHAND_FIELDS:
            old, value = _long_form(old), _long_form(value)
            if isinstance(old, dict) and isinstance(value, dict) and "name" in value and value["name"] != old.get("name"):
                old = None  # another component: the base's params are not its params
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = merge_specs(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _long_form(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def dump_spec(spec: RunSpec) -> str:
    """The spec as YAML (what ``spec.yaml`` in a run directory holds)."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
