"""Every distribution in the repository is publishable as it stands: SPDX license and LICENSE file, project URLs
that lead to real files, a README of its own, py.typed, first-party dependencies capped below clgym-core's next
minor, and built wheels that carry all of it without a deprecation warning."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest

import clgym_core
from clgym_core.official_plugins import META_DISTRIBUTION, OFFICIAL_PLUGINS
from clgym_core.kinds import KIND_NAMES
from clgym_core.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://github.com/clgym/clgym"
PROJECTS = sorted(
    path.parent
    for pattern in ("pyproject.toml", "plugins/*/pyproject.toml", "examples/plugins/*/pyproject.toml",
                    "packaging/*/pyproject.toml")
    for path in ROOT.glob(pattern)
)
LICENSE_TEXT = (ROOT / "LICENSE").read_text(encoding="utf-8")


def _pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))


def _where(folder: Path) -> str:
    return folder.relative_to(ROOT).as_posix()


def _packages(folder: Path) -> list[str]:
    """The import packages a distribution ships (its ``packages.find`` include patterns without the ``*``)."""
    packages = _pyproject(folder).get("tool", {}).get("setuptools", {}).get("packages", {})
    if isinstance(packages, list):  # the meta distribution: `packages = []`
        return packages
    return [pattern.rstrip("*") for pattern in packages["find"]["include"]]


CORE = _pyproject(ROOT)["project"]
CORE_MINOR = ".".join(CORE["version"].split(".")[:2])
CORE_NEXT_MINOR = f"{CORE_MINOR.split('.')[0]}.{int(CORE_MINOR.split('.')[1]) + 1}"


def test_the_repository_has_every_distribution() -> None:
    names = {_pyproject(folder)["project"]["name"] for folder in PROJECTS}
    assert names == {"clgym-core", "clgym-si", META_DISTRIBUTION, *OFFICIAL_PLUGINS}
    assert "MIT License" in LICENSE_TEXT and "Copyright (c) 2026 the clgym developers" in LICENSE_TEXT


@pytest.mark.parametrize("folder", PROJECTS, ids=_where)
def test_license_is_an_spdx_string_with_its_file(folder: Path) -> None:
    project = _pyproject(folder)["project"]
    assert project["license"] == "MIT"  # not the deprecated {text = ...} table
    assert project["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_text(encoding="utf-8") == LICENSE_TEXT
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # an SPDX license forbids them
    assert _pyproject(folder)["build-system"]["requires"] == ["setuptools>=77"]  # the first to read SPDX licenses


@pytest.mark.parametrize("folder", PROJECTS, ids=_where)
def test_declared_pythons_are_the_tested_ones(folder: Path) -> None:
    project = _pyproject(folder)["project"]
    assert project["requires-python"] == ">=3.10"
    versions = sorted(c.rsplit(" ", 1)[1] for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3."))
    assert versions == ["3.10", "3.11"]  # `make test-py310` and `make test` run the suite on exactly these


@pytest.mark.parametrize("folder", PROJECTS, ids=_where)
def test_urls_lead_to_files_in_this_repository(folder: Path) -> None:
    urls = _pyproject(folder)["project"]["urls"]
    assert {"Homepage", "Documentation", "Source", "Plugin guide"} <= set(urls)
    assert urls["Homepage"] == REPOSITORY
    assert urls["Source"] == (REPOSITORY if folder == ROOT else f"{REPOSITORY}/tree/main/{_where(folder)}")
    assert urls["Plugin guide"] == f"{REPOSITORY}/blob/main/docs/plugins.md"
    for key in ("Documentation", "Plugin guide"):
        assert urls[key].startswith(f"{REPOSITORY}/blob/main/"), key
        assert (ROOT / urls[key].removeprefix(f"{REPOSITORY}/blob/main/")).is_file(), urls[key]


@pytest.mark.parametrize("folder", PROJECTS, ids=_where)
def test_each_distribution_has_its_own_readme(folder: Path) -> None:
    project = _pyproject(folder)["project"]
    readme = (folder / project["readme"]).read_text(encoding="utf-8")
    assert readme.splitlines()[0] == f"# {project['name']}"  # the PyPI page opens with what it is
    assert "make run" not in readme  # a pip user has no Makefile; that is the repository README's business


@pytest.mark.parametrize("folder", PROJECTS, ids=_where)
def test_first_party_dependencies_are_capped_below_the_next_core_minor(folder: Path) -> None:
    project = _pyproject(folder)["project"]
    first_party = [dep for dep in project["dependencies"] if dep.startswith("clgym-")]
    if folder != ROOT:
        assert f"clgym-core>={CORE_MINOR},<{CORE_NEXT_MINOR}" in first_party
    for dep in first_party:
        assert dep.endswith(f">={CORE_MINOR},<{CORE_NEXT_MINOR}"), dep


@pytest.mark.parametrize("folder", [f for f in PROJECTS if _packages(f)], ids=_where)
def test_every_package_is_marked_typed(folder: Path) -> None:
    package_data = _pyproject(folder)["tool"]["setuptools"]["package-data"]
    for package in _packages(folder):
        assert (folder / package / "py.typed").is_file(), package
        assert "py.typed" in package_data[package]
    assert "Typing :: Typed" in _pyproject(folder)["project"]["classifiers"]


def test_core_version_attribute_matches_its_metadata() -> None:
    assert clgym_core.__version__ == CORE["version"]


def test_meta_distribution_installs_core_and_exactly_the_official_plugins() -> None:
    project = _pyproject(ROOT / "packaging" / META_DISTRIBUTION)["project"]
    names = {dep.split(">=")[0] for dep in project["dependencies"]}
    assert names == {"clgym-core", *OFFICIAL_PLUGINS}
    plugins_folder = {_pyproject(path.parent)["project"]["name"] for path in ROOT.glob("plugins/*/pyproject.toml")}
    assert plugins_folder == set(OFFICIAL_PLUGINS)


def test_official_table_says_what_each_plugin_registers() -> None:
    """The kinds in clgym_core.official_plugins are the kinds each installed official plugin really provides."""
    provided: dict[str, set[str]] = defaultdict(set)
    registry = Registry(autoload=True)
    for kind in KIND_NAMES:
        for info in registry.components(kind).values():
            provided[info.plugin.distribution].add(kind)
    for distribution, kinds in OFFICIAL_PLUGINS.items():
        assert provided[distribution] == set(kinds), distribution


def _copy_sources(folder: Path, into: Path) -> Path:
    """What a source distribution holds, without the build litter of an editable install."""
    project = _pyproject(folder)["project"]
    target = into / project["name"]
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "LICENSE", project["readme"]):
        shutil.copy2(folder / name, target / name)
    for package in _packages(folder):
        shutil.copytree(folder / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return target


def test_wheels_carry_license_urls_readme_and_py_typed(tmp_path: Path) -> None:
    sources = [_copy_sources(folder, tmp_path / "src") for folder in PROJECTS]
    out = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", str(out),
         *map(str, sources)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "deprecated" not in (build.stdout + build.stderr).lower()  # e.g. the license table warnings
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == len(PROJECTS)
    for wheel, folder in zip(wheels, sorted(PROJECTS, key=lambda f: _pyproject(f)["project"]["name"])):
        project = _pyproject(folder)["project"]
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
            assert archive.read(f"{info}/licenses/LICENSE").decode() == LICENSE_TEXT
        assert metadata["Name"] == project["name"], wheel.name
        assert metadata["License-Expression"] == "MIT"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert f"Plugin guide, {REPOSITORY}/blob/main/docs/plugins.md" in metadata.get_all("Project-URL")
        assert metadata.get_payload().startswith(f"# {project['name']}\n")
        assert metadata["Description-Content-Type"] == "text/markdown"
        for package in _packages(folder):
            assert f"{package}/py.typed" in names, wheel.name
        for requirement in metadata.get_all("Requires-Dist") or []:
            if requirement.startswith("clgym-"):
                assert f"<{CORE_NEXT_MINOR},>={CORE_MINOR}" in requirement.replace(" ", ""), requirement
