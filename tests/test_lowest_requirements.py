"""scripts/lowest_requirements.py: the pins `make test-lowest` installs are the declared floors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("lowest_requirements", ROOT / "scripts" / "lowest_requirements.py")
lowest_requirements = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lowest_requirements)


def _pyproject(folder: Path, *dependencies: str) -> Path:
    folder.mkdir()
    path = folder / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\ndependencies = [" + ", ".join(repr(d) for d in dependencies) + "]\n")
    return path


def test_repository_floors_are_pinned_with_markers_and_without_first_party() -> None:
    paths = [ROOT / "requirements-dev.txt", ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml"))]
    pins = lowest_requirements.lowest(paths)
    core = (ROOT / "pyproject.toml").read_text()
    for name in ("torch", "typer", "pydantic", "numpy"):
        floor = core.split(f'"{name}>=', 1)[1].split('"', 1)[0]
        assert f"{name}=={floor}" in pins
    assert "tomli==2.0; python_version < '3.11'" in pins
    assert not [pin for pin in pins if pin.startswith("clgym")]
    names = [pin.split("==")[0] for pin in pins]
    assert names == sorted(names) and len(names) == len(set(names))


def test_the_highest_floor_wins_across_files(tmp_path: Path) -> None:
    a = _pyproject(tmp_path / "a", "numpy>=1.24", "clgym-core>=0.1,<0.2")
    b = _pyproject(tmp_path / "b", "NumPy >= 1.26.4, <3", "torch[opt]>=2.1")
    assert lowest_requirements.lowest([a, b]) == ["numpy==1.26.4", "torch==2.1"]


def test_a_dependency_without_a_floor_is_an_error(tmp_path: Path) -> None:
    path = _pyproject(tmp_path / "a", "rich<14")
    with pytest.raises(SystemExit, match="'rich<14' has no lower bound"):
        lowest_requirements.lowest([path])
