"""Sweep files: a run spec plus a ``sweep:`` section, expanded into the points of the sweep.

A sweep file is an ordinary run spec (the base) with one more top-level key::

    sweep:
      seed: [0, 1, 2]                        # crossed with everything else
      algorithm.params.lambda: [1, 100]
      zip:                                   # lists paired element by element, not crossed
        algorithm.name: [ewc, agem]
        optimizer.lr: [0.01, 0.1]

Each key is a field path as ``clgym run --set`` takes it. The points are the
Cartesian product of the lists (a ``zip`` group counts as one list of tuples;
``zip`` may also be a list of such groups). Every point is checked as a full run
spec before anything runs, so a typo fails at once, naming the field.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clgym_core.errors import ClgymError, SpecError

SWEEP_KEY = "sweep"
ZIP_KEY = "zip"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class SweepError(ClgymError):
    """A sweep or tune file is invalid, or its output folder cannot take it."""


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its directory name, the swept values and the full raw spec."""

    name: str
    values: dict[str, Any]
    data: dict[str, Any] = field(repr=False)


@dataclass
class SweepPlan:
    base: dict[str, Any]
    points: list[SweepPoint]
    fields: list[str]  # swept fields whose value differs between points
    source: str


def split_section(data: dict[str, Any], key: str, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base spec and the ``key:`` section of a sweep or tune file."""
    if key not in data:
        raise SweepError(f"{source}: no {key}: section; a {key} file is a run spec plus a {key}: mapping")
    section = data[key]
    if not isinstance(section, dict) or not section:
        raise SweepError(f"{source}: {key}: must be a non-empty mapping of field paths")
    base = {k: v for k, v in data.items() if k != key}
    return base, section


def set_path(data: dict[str, Any], path: str, value: Any, where: str) -> None:
    """Set the dotted ``path`` in ``data`` in place, as ``--set path=value`` would."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise SweepError(f"{where}: {path!r} is not a field path (e.g. algorithm.params.lambda)")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and part in {"benchmark", "backbone", "algorithm", "optimizer"}:
            child = node[part] = {"name": child}
        if not isinstance(child, dict):
            raise SweepError(f"{where}: {'.'.join(parts[:depth + 1])} is not a mapping in the base spec")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _values(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise SweepError(f"{where}: expected a list of values, got {type(raw).__name__}")
    if not raw:
        raise SweepError(f"{where}: empty list; give at least one value")
    return raw


def sweep_factors(section: dict[str, Any], source: str) -> list[list[dict[str, Any]]]:
    """The lists to cross: each is a list of ``{path: value}`` assignments (a zip group assigns several)."""
    factors: list[list[dict[str, Any]]] = []
    for key, raw in section.items():
        where = f"{source}: {SWEEP_KEY}.{key}"
        if key != ZIP_KEY:
            factors.append([{key: v} for v in _values(raw, where)])
            continue
        groups = raw if isinstance(raw, list) else [raw]
        for i, group in enumerate(groups):
            gwhere = f"{source}: {SWEEP_KEY}.{ZIP_KEY}" + (f"[{i}]" if isinstance(raw, list) else "")
            if not isinstance(group, dict) or not group:
                raise SweepError(f"{gwhere}: must be a non-empty mapping of field paths to lists of equal length")
            columns = {path: _values(v, f"{gwhere}.{path}") for path, v in group.items()}
            lengths = {path: len(v) for path, v in columns.items()}
            if len(set(lengths.values())) > 1:
                detail = ", ".join(f"{p} has {n}" for p, n in lengths.items())
                raise SweepError(f"{gwhere}: paired lists must have equal lengths ({detail})")
            n = next(iter(lengths.values()))
            factors.append([{p: columns[p][j] for p in columns} for j in range(n)])
    paths = [p for f in factors for p in f[0]]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise SweepError(f"{source}: {SWEEP_KEY}.{repeated[0]}: swept twice; give each field one list")
    return factors


def short_names(paths: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each path that no other path ends with (``lambda`` for
    ``algorithm.params.lambda``)."""
    names = {}
    for path in paths:
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if not any(o != path and (o == suffix or o.endswith("." + suffix)) for o in paths):
                break
        names[path] = suffix
    return names


def _text(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (dict, list)):
        text = "-".join(_text(v) for v in (value.values() if isinstance(value, dict) else value))
    else:
        text = str(value)
    return _UNSAFE.sub("-", text).strip("-") or "x"


def run_name(values: dict[str, Any], fields: list[str], labels: dict[str, str]) -> str:
    """``lambda=100_seed=1``: the fields that differ across the sweep, in the file's order."""
    if not fields:
        return "run"
    return "_".join(f"{_UNSAFE.sub('-', labels[f])}={_text(values[f])}" for f in fields)


def expand(data: dict[str, Any], source: str) -> SweepPlan:
    """Every point of a sweep file (not yet checked against the registry)."""
    base, section = split_section(data, SWEEP_KEY, source)
    factors = sweep_factors(section, source)
    combos = [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*factors)]
    paths = [p for f in factors for p in f[0]]
    fields = [p for p in paths if len({repr(c[p]) for c in combos}) > 1]
    labels = short_names(fields)
    points, seen = [], set()
    for combo in combos:
        spec = copy.deepcopy(base)
        for path, value in combo.items():
            set_path(spec, path, value, f"{source}: {SWEEP_KEY}.{path}")
        name = run_name(combo, fields, labels)
        if name in seen:  # two values that print alike (e.g. 0.1 and '0.1')
            n = 2
            while f"{name}-{n}" in seen:
                n += 1
            name = f"{name}-{n}"
        seen.add(name)
        points.append(SweepPoint(name=name, values=combo, data=spec))
    return SweepPlan(base=base, points=points, fields=fields, source=source)


def check_points(plan: SweepPlan, registry: Any = None) -> list[Any]:
    """Validate every point as a run spec against the registry; the resolved specs, in order.

    Errors name the point and the field: a swept field comes out as ``sweep.PATH``.
    """
    from clgym_core.build import resolve_spec, with_run_callbacks
    from clgym_core.spec import parse_spec

    resolved = []
    for point in plan.points:
        source = f"{plan.source} (run {point.name})"
        try:
            # As the point will run: in its own directory, without a progress display.
            spec = with_run_callbacks(parse_spec(point.data, source), writes_run_dir=True, progress=False)
            resolved.append(resolve_spec(spec, registry, source=source))
        except SpecError as exc:
            raise SweepError(name_field(str(exc), list(point.values), SWEEP_KEY)) from None
        refuse_several_processes(resolved[-1], source)
    return resolved


def refuse_several_processes(spec: Any, source: str) -> None:
    """Sweeps and studies run each point in one worker process: a spec that starts several is refused."""
    from clgym_core.distributed import splits_batches

    if splits_batches(spec.trainer):
        raise SweepError(f"{source}: trainer.strategy: a sweep or study runs each point in one process; "
                         "drop the ddp settings (devices, num_nodes, strategy) from its spec")


def name_field(message: str, paths: list[str], prefix: str) -> str:
    """Point an error at the file's section: ``algorithm.params.lamda: ...`` -> ``sweep.algorithm.params...``."""
    for path in sorted(paths, key=len, reverse=True):
        pattern = rf"(^|[\s(]){re.escape(path)}(?=[:.\s\[]|$)"
        if re.search(pattern, message):
            return re.sub(pattern, rf"\1{prefix}.{path}", message, count=1)
    return message


def read_sweep_file(path: str | Path, registry: Any = None, check: bool = True) -> SweepPlan:
    """Read, expand and (with ``check``) validate a sweep file."""
    from clgym_core.spec import read_spec_file

    plan = expand(read_spec_file(path), str(path))
    if check:
        check_points(plan, registry)
    return plan
