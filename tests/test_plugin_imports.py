"""Loading a plugin's entry point stays light: no component module (and no torch) is imported until a hook runs."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import subprocess
import sys

import pytest

ENTRY_POINTS = sorted(
    (ep.name, ep.value) for ep in importlib_metadata.entry_points(group="clgym")
)


@pytest.mark.skipif(not ENTRY_POINTS, reason="no clgym plugins installed")
@pytest.mark.parametrize("name, value", ENTRY_POINTS, ids=[n for n, _ in ENTRY_POINTS])
def test_entry_point_module_does_not_import_torch(name: str, value: str) -> None:
    code = f"import importlib, sys; importlib.import_module({value!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"importing the entry point of plugin {name} ({value}) imports torch"
