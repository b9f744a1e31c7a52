"""Issue 18 item 10: a name two plugins claim, `plugin new` over an installed name, tables at 80 columns."""

from __future__ import annotations

import pytest
from pydantic import Field
from typer.testing import CliRunner

from clgym_core.algorithm import Algorithm
from clgym_core.cli import app
from clgym_core.cli.common import console
from clgym_core.component import Params
from clgym_core.hookspecs import hookimpl
from clgym_core.testing import isolated_registry, make_plugin

runner = CliRunner()


def ewc_class(doc: str) -> type:
    class Ewc(Algorithm):
        __doc__ = doc
        name = "ewc"

    return Ewc


class LongNames(Algorithm):
    """Test algorithm whose params have long names."""

    name = "long_names"

    class Params(Params):
        per_task_memory_examples_of_every_class: int = Field(
            10, description="A long description that has to wrap inside an 80-column terminal, many words long."
        )
        first_task_epoch_factor_for_warm_start: float = Field(1.0, description="Another one.")


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setattr(console, "width", 80)


def test_show_names_both_providers_of_a_name_claimed_twice():
    plugins = {"first": make_plugin(algorithms=[ewc_class("One EWC.")]),
               "second": make_plugin(algorithms=[ewc_class("Another EWC.")])}
    with isolated_registry(plugins):
        result = runner.invoke(app, ["show", "ewc"])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "did you mean" not in message
    assert "registered by more than one plugin" in message and "first" in message and "second" in message


def test_plugin_new_warns_when_an_installed_component_has_the_name(tmp_path):
    with isolated_registry({"algos": make_plugin(algorithms=[ewc_class("EWC.")])}):
        clash = runner.invoke(app, ["plugin", "new", "ewc", "--dir", str(tmp_path / "a")])
        fine = runner.invoke(app, ["plugin", "new", "my_ewc", "--dir", str(tmp_path / "b")])
    assert clash.exit_code == 0, clash.output
    warnings = [line for line in clash.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "already called 'ewc'" in warnings[0] and "algos" in warnings[0]
    assert (tmp_path / "a" / "clgym-ewc").is_dir() or any((tmp_path / "a").iterdir())
    assert fine.exit_code == 0 and "warning" not in fine.stderr


def test_show_keeps_parameter_names_whole_at_80_columns(narrow):
    with isolated_registry({"t": make_plugin(algorithms=[LongNames])}):
        result = runner.invoke(app, ["show", "long_names"])
    assert result.exit_code == 0, result.output
    for name in LongNames.Params.model_fields:
        assert name in result.stdout
    assert "…" not in result.stdout
    table = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 80


def test_plugins_table_keeps_problems_whole_at_80_columns(narrow):
    class Broken:
        @staticmethod
        @hookimpl
        def clgym_register_algorithms():
            raise RuntimeError("broken on purpose because the configuration file was not found anywhere")

    with isolated_registry({"broken_plugin": Broken()}):
        result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 1
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    status = "".join(line.split("│")[-2].strip() for line in result.stdout.splitlines() if line.count("│") >= 6)
    assert "configurationfilewasnotfoundanywhere" in status.replace(" ", "")
