"""Every spec, sweep and tune file under examples/ is valid against the installed plugins (docs/results.md says so)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core.cli import build_app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(p for p in EXAMPLES.rglob("*.yaml") if "plugins" not in p.relative_to(EXAMPLES).parts)


@pytest.fixture(scope="module")
def app():
    return build_app(plugins=True)


def test_there_are_examples_to_check() -> None:
    assert len(FILES) > 50


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example_is_valid(app, path: Path, tmp_path: Path) -> None:
    sections = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "tune" in sections:
        from clgym_core.sweeps.tuning import read_tune_file

        assert read_tune_file(path).section.space
        return
    is_sweep = "sweep" in sections
    args = ["sweep", str(path), "--out", str(tmp_path / "sweep"), "--dry-run"] if is_sweep else ["validate", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert ("run(s) under" in result.output) if is_sweep else (": ok: " in result.output)
