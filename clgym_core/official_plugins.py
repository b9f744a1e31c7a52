"""The official plugin distributions and the kinds of component each provides.

The one table behind the hint ``clgym list`` prints for an empty kind; the meta
distribution ``clgym`` (``packaging/clgym``) depends on exactly these, and a test
checks both against what the installed plugins really register.
"""

from __future__ import annotations

META_DISTRIBUTION = "clgym"

OFFICIAL_PLUGINS: dict[str, tuple[str, ...]] = {
    "clgym-toy": ("benchmark", "callback"),
    "clgym-algos": ("algorithm",),
    "clgym-vision": ("benchmark", "backbone"),
    "clgym-pamap2": ("benchmark", "backbone"),
}


def providers(kind: str) -> list[str]:
    """The official distributions that provide components of ``kind`` (e.g. ``"benchmark"``)."""
    return [dist for dist, kinds in OFFICIAL_PLUGINS.items() if kind in kinds]


def empty_kind_hint(kind: str) -> str:
    """One line for a kind with no installed component: which distributions to install."""
    found = providers(kind)
    source = f"official ones come from {', '.join(found)}; " if found else ""
    return f"no {kind}s installed: {source}`pip install {META_DISTRIBUTION}` installs every official plugin"
