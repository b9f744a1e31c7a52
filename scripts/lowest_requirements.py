"""Print the lowest declared version of every dependency as ``name==floor`` lines for ``pip install -r``.

    python scripts/lowest_requirements.py requirements-dev.txt pyproject.toml plugins/*/pyproject.toml

Reads ``[project].dependencies`` of each pyproject.toml and the plain requirement lines of each
requirements file (``-e`` lines and options are skipped). clgym's own distributions (``clgym-*``)
are left out: they are installed from the checkout. Optional extras (tensorboard, mlflow) are left
out too, as the test suite's environment does not install them. Where several files name one
dependency, the highest floor wins: the lowest version every file accepts. A dependency without a
lower bound is an error: CI could not test its floor. Environment markers are kept, so pip itself
skips e.g. ``tomli`` on Python 3.11+. Used by ``make test-lowest``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*(.+?))?\s*$")
FIRST_PARTY = "clgym-"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def floor_of(requirement: str, source: str) -> tuple[str, str, str | None] | None:
    """``(name, floor, marker)`` of one requirement string, or None for a first-party one."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"error: {source}: cannot read the requirement {requirement!r}")
    name, specifiers, marker = _normalise(match[1]), match[2], match[3]
    if name.startswith(FIRST_PARTY):
        return None
    floors = [spec[2:].strip() for spec in specifiers.replace(" ", "").split(",") if spec[:2] in (">=", "==")]
    if not floors:
        raise SystemExit(f"error: {source}: {requirement!r} has no lower bound (>=); give every dependency one")
    return name, max(floors, key=_release), marker


def requirements_of(path: Path) -> list[str]:
    if path.name == "pyproject.toml":
        return list(tomllib.loads(path.read_text(encoding="utf-8"))["project"].get("dependencies", []))
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def lowest(paths: list[Path]) -> list[str]:
    """One ``name==floor[; marker]`` line per dependency (and marker), sorted by name."""
    found: dict[tuple[str, str | None], str] = {}
    for path in paths:
        for requirement in requirements_of(path):
            parsed = floor_of(requirement, str(path))
            if parsed is None:
                continue
            name, floor, marker = parsed
            key = (name, marker)
            if key not in found or _release(floor) > _release(found[key]):
                found[key] = floor
    return [
        f"{name}=={floor}" + (f"; {marker}" if marker else "")
        for (name, marker), floor in sorted(found.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    ]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    print("\n".join(lowest([Path(arg) for arg in argv])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
