"""Presets: named run specs published through clgym_register_presets; `clgym run --preset`, `clgym list
presets`, unknown names with close matches, bad and doubly claimed presets as plugin problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clgym_core.algorithm import Algorithm
from clgym_core.build import resolve_spec
from clgym_core.cli import app
from clgym_core.errors import RegistryError
from clgym_core.hookspecs import hookimpl
from clgym_core.presets import load_preset, presets_in
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin

runner = CliRunner()

SPEC = (
    "benchmark: {name: synthetic_blobs, params: {num_tasks: 2}}\n"
    "backbone: {name: mlp, params: {hidden_sizes: [8]}}\n"
    "algorithm: plain\n"
    "optimizer: {name: sgd, lr: 0.1}\n"
    "trainer: {batch_size: 16, device: cpu, checkpoint: false}\n"
)


class Plain(Algorithm):
    """Plain sequential SGD (test algorithm)."""

    name = "plain"


def preset_plugin(table: object) -> object:
    class Presets:
        @staticmethod
        @hookimpl
        def clgym_register_presets() -> object:
            return table

    return Presets()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "presets/blobs").mkdir(parents=True)
    (tmp_path / "presets/blobs/plain.yaml").write_text(SPEC)
    (tmp_path / "presets/blobs/notes.txt").write_text("not a spec")
    return tmp_path / "presets"


@pytest.fixture
def registry(folder: Path):
    components = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Plain])
    mapping = {"blobs/fast": {"benchmark": "synthetic_blobs", "algorithm": "plain", "trainer": {"device": "cpu"}}}
    with isolated_registry({"components": components, "files": preset_plugin(presets_in(folder)),
                            "mapping": preset_plugin(mapping)}) as reg:
        yield reg


def test_presets_in_names_spec_files_by_their_path(folder: Path) -> None:
    assert presets_in(folder) == {"blobs/plain": folder / "blobs/plain.yaml"}


def test_run_preset_runs_the_published_spec_with_overrides(registry, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--preset", "blobs/plain", "--set", "seed=3", "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 3 and metrics["algorithm"] == "plain" and metrics["num_tasks"] == 2
    spec, source = load_preset("blobs/fast")
    assert spec.algorithm.name == "plain" and source == "preset blobs/fast"
    assert resolve_spec(spec).benchmark.name == "synthetic_blobs"


def test_list_presets_shows_each_with_its_provider(registry) -> None:
    result = runner.invoke(app, ["list", "presets"])
    assert result.exit_code == 0, result.output
    assert "blobs/plain" in result.output and "blobs/fast" in result.output
    assert result.output.count("ready") == 2


def test_unknown_preset_is_one_line_with_close_matches(registry) -> None:
    result = runner.invoke(app, ["run", "--preset", "blobs/plian"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error: unknown preset 'blobs/plian'; did you mean blobs/plain")
    assert line.endswith("(2 installed, see `clgym list presets`)")
    both = runner.invoke(app, ["run", "spec.yaml", "--preset", "blobs/plain"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_bad_presets_are_problems_of_their_plugin_and_the_rest_still_work(tmp_path: Path) -> None:
    bad = preset_plugin({"Has Spaces": {"benchmark": "x"}, "ok/one": 42})
    not_a_mapping = preset_plugin(["a/b"])
    with isolated_registry({"bad": bad, "list": not_a_mapping,
                            "good": preset_plugin({"good/one": {"benchmark": "x"}})}) as reg:
        problems = "\n".join(reg.problems())
        assert "plugin bad" in problems and "'Has Spaces' is not snake_case" in problems
        assert "preset 'ok/one': expected a spec file path" in problems
        assert "plugin list" in problems and "expected a mapping" in problems
        assert list(reg.presets()) == ["good/one"]


def test_a_preset_two_plugins_claim_is_an_error_naming_both() -> None:
    first, second = preset_plugin({"a/b": {"benchmark": "x"}}), preset_plugin({"a/b": {"benchmark": "y"}})
    with isolated_registry({"first": first, "second": second}) as reg:
        with pytest.raises(RegistryError, match="preset 'a/b' is registered by more than one plugin") as caught:
            reg.preset("a/b")
        assert "first" in str(caught.value) and "second" in str(caught.value)
        assert any("more than one plugin" in p for p in reg.problems())


def test_clgym_algos_publishes_the_boards_chosen_specs_and_each_resolves() -> None:
    with isolated_registry(autoload=True) as reg:
        published = {n: p for n, p in reg.presets().items() if p.plugin.distribution == "clgym-algos"}
        board = Path(__file__).resolve().parent.parent / "leaderboard" / "entries"
        entries = {f"{p.parent.parent.name}/{p.parent.name}" for p in board.glob("*/*/entry.json")}
        assert set(published) == entries  # one preset per board entry, no more
        for name in published:
            spec, _ = load_preset(name, registry=reg)
            assert spec.algorithm.name == name.rpartition("/")[2]
            resolve_spec(spec, reg)
