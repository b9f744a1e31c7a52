"""``clgym plugin new``: write a ready-to-publish plugin package from the templates in ``templates/``.

A generated package holds a pyproject with the ``clgym`` entry point, the
component (a working example of its kind with a ``Params`` model and a
docstring), the plugin module with its hook, a README and a test module that
runs the conformance kit. It passes its tests as generated, and ``pip install
-e`` of it makes the component appear in ``clgym list`` at once.

Templates are :class:`string.Template` files (``$name`` placeholders), shipped
as package data: ``common/`` for every kind, one folder per kind for the rest.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from string import Template

from clgym_core.errors import ScaffoldError
from clgym_core.kinds import KIND_NAMES, kind_named

__all__ = ["PluginNames", "ScaffoldError", "new_plugin", "plugin_names"]

CONFORMANCE = {
    "algorithm": "AlgorithmConformance",
    "benchmark": "BenchmarkConformance",
    "backbone": "BackboneConformance",
    "callback": "CallbackConformance",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYWORDS = {"test", "tests", "plugin", "clgym", "clgym_core"}


@dataclass(frozen=True)
class PluginNames:
    """Every name a generated plugin uses, derived from the component's registry name."""

    name: str  # registry name: my_method
    kind: str  # algorithm
    package: str  # import package: clgym_my_method
    distribution: str  # pip name: clgym-my-method
    class_name: str  # MyMethod
    entry_point: str  # name in [project.entry-points.clgym]
    module: str  # the component's module in the package
    hook: str  # clgym_register_algorithms
    conformance: str  # AlgorithmConformance
    title: str  # My method
    summary: str  # one line for pyproject and README


def plugin_names(raw: str, kind: str) -> PluginNames:
    """Names for a plugin providing the ``kind`` called ``raw`` (``my-method``, ``My Method``, ``clgym-my-method``)."""
    if kind not in KIND_NAMES:
        raise ScaffoldError(f"--kind {kind!r}: use one of {', '.join(KIND_NAMES)}")
    name = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    name = re.sub(r"^clgym_", "", name)  # the package gets the prefix anyway
    if not _NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"NAME {raw!r}: a plugin name is snake_case (a letter, then letters, digits and single "
            "underscores), e.g. my_method"
        )
    if name in _KEYWORDS:
        raise ScaffoldError(f"NAME {raw!r}: {name!r} is reserved; choose a name that says what the {kind} does")
    class_name = "".join(part.capitalize() for part in name.split("_"))
    title = name.replace("_", " ").capitalize()
    return PluginNames(
        name=name,
        kind=kind,
        package=f"clgym_{name}",
        distribution=f"clgym-{name.replace('_', '-')}",
        class_name=class_name,
        entry_point=name,
        module=name,
        hook=kind_named(kind).hook,
        conformance=CONFORMANCE[kind],
        title=title,
        summary=f"{title}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} for clgym, the continual-learning library.",
    )


def _template(*parts: str) -> Template:
    return Template(resources.files(__name__).joinpath("templates", *parts).read_text(encoding="utf-8"))


def _core_versions() -> tuple[str, str]:
    """``(">=" bound, "<" bound)`` for the clgym-core dependency: this minor release and the next."""
    from clgym_core import __version__

    major, minor = (int(x) for x in __version__.split(".")[:2])
    return f"{major}.{minor}", f"{major}.{minor + 1}"


def render(names: PluginNames) -> dict[str, str]:
    """Relative path -> file content of the plugin package."""
    core_minor, core_next_minor = _core_versions()
    values = {
        **asdict(names), "core_minor": core_minor, "core_next_minor": core_next_minor, "year": str(date.today().year)
    }
    values["usage"] = _template(names.kind, "usage.yaml.tmpl").substitute(values).rstrip("\n")
    package = names.package
    return {
        "pyproject.toml": _template("common", "pyproject.toml.tmpl").substitute(values),
        "README.md": _template("common", "README.md.tmpl").substitute(values),
        "LICENSE": _template("common", "LICENSE.tmpl").substitute(values),
        f"{package}/__init__.py": _template("common", "__init__.py.tmpl").substitute(values),
        f"{package}/py.typed": "",
        f"{package}/plugin.py": _template("common", "plugin.py.tmpl").substitute(values),
        f"{package}/{names.module}.py": _template(names.kind, "component.py.tmpl").substitute(values),
        f"tests/test_{names.name}.py": _template(names.kind, "test.py.tmpl").substitute(values),
    }


def new_plugin(raw_name: str, kind: str = "algorithm", parent: str | Path = ".") -> tuple[Path, list[Path]]:
    """Write the package into ``parent/<distribution>``; returns its folder and the files written."""
    names = plugin_names(raw_name, kind)
    root = Path(parent) / names.distribution
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root}: already exists and is not empty; choose another --dir or NAME")
    files = render(names)
    written = []
    try:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise ScaffoldError(f"{root}: cannot write the plugin ({exc.strerror or exc})") from None
    return root, written
