"""Every algorithm clgym-algos registers is checked by the core's conformance kit.

The kit's test classes live next to each algorithm's own tests (``TestEWCConformance``
in ``test_ewc.py``, ...). This module guards the set: an algorithm added to the
plugin without a conformance class fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from clgym_core.testing import AlgorithmConformance, isolated_registry

import clgym_algos.plugin

TESTS = Path(__file__).resolve().parent


def conformance_components() -> dict[type, list[str]]:
    """Classes under test of every AlgorithmConformance subclass in this folder -> the test classes."""
    found: dict[type, list[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        spec = importlib.util.spec_from_file_location(f"_clgym_algos_conformance_scan.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        for name, value in vars(module).items():
            if not (isinstance(value, type) and issubclass(value, AlgorithmConformance)):
                continue
            if name.startswith("Test") and value.__dict__.get("__test__", True) and value.component is not None:
                found.setdefault(value.component, []).append(f"{path.name}::{name}")
    return found


def test_every_registered_algorithm_has_a_conformance_test_class() -> None:
    with isolated_registry({"algos": clgym_algos.plugin}) as registry:
        registered = {info.cls for info in registry.components("algorithm").values()
                      if info.plugin.name == "algos"}
        assert not registry.problems(), registry.problems()
    assert len(registered) >= 2, registered
    covered = conformance_components()
    missing = sorted(cls.__name__ for cls in registered - set(covered))
    assert not missing, f"algorithms without an AlgorithmConformance test class: {', '.join(missing)}"
