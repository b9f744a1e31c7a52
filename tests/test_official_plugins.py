"""``clgym list`` points at the distribution to install for every kind that has no component."""

from __future__ import annotations

from typer.testing import CliRunner

from clgym_core.cli import app
from clgym_core.official_plugins import empty_kind_hint, providers
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin

runner = CliRunner()


def test_providers_follow_the_table() -> None:
    assert providers("algorithm") == ["clgym-algos"]
    assert providers("benchmark") == ["clgym-toy", "clgym-vision", "clgym-pamap2"]
    assert providers("widget") == []


def test_each_empty_kind_names_its_distributions_and_the_meta_install() -> None:
    with isolated_registry():  # built-ins only: an mlp backbone and the loggers, no benchmark, no algorithm
        result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "no benchmarks installed: official ones come from clgym-toy, clgym-vision, clgym-pamap2; "
        "`pip install clgym` installs every official plugin"
    ) in lines
    assert empty_kind_hint("algorithm") in lines and "clgym-algos" in empty_kind_hint("algorithm")
    assert not [line for line in lines if line.startswith(("no backbones", "no callbacks"))]  # built-ins exist


def test_a_kind_with_components_gets_no_hint() -> None:
    with isolated_registry({"blobs": make_plugin(benchmarks=[SyntheticBlobs])}):
        result = runner.invoke(app, ["list", "benchmarks"])
    assert result.exit_code == 0 and "synthetic_blobs" in result.output
    assert "installed:" not in result.output
