"""Presets: named run specs that plugins publish (``clgym run --preset rotated_mnist/ewc``).

A preset is data like any spec: a plugin's ``clgym_register_presets`` hook maps names to
spec files (usually package data, see :func:`presets_in`) or to mappings. The registry
collects them, refuses a name two plugins claim, and names close matches for an unknown
one; this module turns a name into a spec.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from clgym_core.registry import PRESET_SUFFIXES, PresetInfo, Registry, get_registry
from clgym_core.spec import RunSpec, apply_overrides, parse_spec, read_composed_spec


def presets_in(folder: str | Path) -> dict[str, Path]:
    """Every spec file below ``folder`` by its path without suffix: ``folder/rotated_mnist/ewc.yaml`` is
    ``rotated_mnist/ewc``. For a plugin's hook: ``return presets_in(Path(__file__).parent / "presets")``."""
    folder = Path(folder)
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PRESET_SUFFIXES)
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in found}


def preset_data(name: str, registry: Registry | None = None) -> tuple[dict[str, Any], str]:
    """The raw mapping of preset ``name`` (its ``extends`` followed) and a label for messages."""
    info: PresetInfo = (registry or get_registry()).preset(name)
    if info.path is not None:
        return read_composed_spec(info.path), f"preset {info.name} ({info.path})"
    return copy.deepcopy(info.data or {}), f"preset {info.name}"


def load_preset(name: str, overrides: list[str] | None = None, registry: Registry | None = None) -> tuple[RunSpec, str]:
    """Preset ``name`` with ``--set`` overrides applied, validated; and the label of its source."""
    data, source = preset_data(name, registry)
    return parse_spec(apply_overrides(data, overrides), source), source
