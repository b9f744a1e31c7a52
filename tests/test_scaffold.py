"""``clgym plugin new``: the generated package is complete, passes its own tests and registers its component."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.kinds import KIND_NAMES
from clgym_core.scaffold import ScaffoldError, new_plugin, plugin_names
from clgym_core.testing import isolated_registry

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

runner = CliRunner()
ALL_KINDS = list(KIND_NAMES)


def generate(parent: Path, name: str, kind: str) -> Path:
    result = runner.invoke(app, ["plugin", "new", name, "--kind", kind, "--dir", str(parent)])
    assert result.exit_code == 0, result.output
    return parent / plugin_names(name, kind).distribution


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated plugin of every kind: kind -> package folder."""
    parent = tmp_path_factory.mktemp("plugins")
    return {kind: generate(parent, f"my-{kind}", kind) for kind in ALL_KINDS}


def test_names_follow_from_the_registry_name() -> None:
    names = plugin_names("My-Method", "algorithm")
    assert (names.name, names.package, names.distribution, names.class_name) == (
        "my_method", "clgym_my_method", "clgym-my-method", "MyMethod"
    )
    assert names.hook == "clgym_register_algorithms" and names.conformance == "AlgorithmConformance"
    assert plugin_names("clgym-replay buffer", "callback").name == "replay_buffer"  # no clgym_clgym_ package


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_package_has_entry_point_component_readme_and_tests(generated: dict[str, Path], kind: str) -> None:
    root = generated[kind]
    names = plugin_names(f"my-{kind}", kind)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == sorted([
        "LICENSE", "README.md", "pyproject.toml", f"{names.package}/__init__.py", f"{names.package}/plugin.py",
        f"{names.package}/py.typed", f"{names.package}/{names.module}.py", f"tests/test_{names.name}.py",
    ])
    for path in root.rglob("*.*"):
        assert "$" not in path.read_text(), f"{path}: an unfilled template placeholder"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == names.distribution
    assert project["entry-points"]["clgym"] == {names.entry_point: f"{names.package}.plugin"}
    assert "clgym-core>=0.1,<0.2" in project["dependencies"]  # capped below the next minor, as docs/plugins.md asks
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]  # SPDX, not the deprecated table
    assert f"the {names.distribution} authors" in (root / "LICENSE").read_text()
    component = (root / names.package / f"{names.module}.py").read_text()
    assert f'name = "{names.name}"' in component and f"class {names.class_name}Params(" in component
    assert names.conformance in (root / "tests" / f"test_{names.name}.py").read_text()
    readme = (root / "README.md").read_text()
    assert f"clgym list {kind}s" in readme and f"name: {names.name}" in readme and "pytest" in readme


def test_generated_plugins_pass_their_own_tests_as_generated(generated: dict[str, Path]) -> None:
    """The generated test modules (the conformance kit) pass, run as a plugin author runs them."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in generated.values())}
    tests = [str(p / "tests") for p in generated.values()]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", *tests],
        capture_output=True, text=True, env=env, cwd=next(iter(generated.values())).parent, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "error" not in summary, summary


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_generated_plugin_registers_its_component(
    generated: dict[str, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = plugin_names(f"my-{kind}", kind)
    monkeypatch.syspath_prepend(str(generated[kind]))
    try:
        plugin = importlib.import_module(f"{names.package}.plugin")
        with isolated_registry({names.entry_point: plugin}) as registry:
            cls = registry.get(kind, names.name)
            assert cls.__name__ == names.class_name
            assert not registry.problems()
            assert registry.plugins[names.entry_point].hooks == [names.hook]
    finally:
        for module in [m for m in sys.modules if m == names.package or m.startswith(names.package + ".")]:
            del sys.modules[module]


def test_bad_names_are_one_line_errors(tmp_path: Path) -> None:
    for bad, words in (("9lives", "snake_case"), ("my__method", "snake_case"), ("plugin", "reserved")):
        result = runner.invoke(app, ["plugin", "new", bad, "--dir", str(tmp_path)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error: NAME"), result.output
    assert not any(tmp_path.iterdir()), "a failed command wrote files"
    unknown_kind = runner.invoke(app, ["plugin", "new", "fine_name", "--kind", "model", "--dir", str(tmp_path)])
    assert unknown_kind.exit_code == 2 and "model" in unknown_kind.output
    with pytest.raises(ScaffoldError, match="--kind 'model'"):
        plugin_names("fine_name", "model")


def test_refuses_to_write_over_a_non_empty_folder(tmp_path: Path) -> None:
    taken = tmp_path / "clgym-taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["plugin", "new", "taken", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "already exists and is not empty" in result.output
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    root, files = new_plugin("fresh", "callback", tmp_path)  # an empty or missing folder is fine
    assert root == tmp_path / "clgym-fresh" and len(files) == 8


@pytest.mark.slow
def test_installed_plugin_appears_in_clgym_list(generated: dict[str, Path], tmp_path: Path) -> None:
    """pip install of the generated package (no deps, into a folder) makes `clgym list` show it at once."""
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(generated["algorithm"])],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    listed = subprocess.run(
        [sys.executable, "-m", "clgym_core", "list", "algorithms"], capture_output=True, text=True, env=env,
        timeout=300, cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    row = next((line for line in listed.stdout.splitlines() if " my_algorithm " in line), "")
    assert "clgym-my-algorithm" in row and "0.1.0" in row, listed.stdout
