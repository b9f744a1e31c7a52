"""Run specs: formats, overrides, validation errors with field paths, resolution against the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.errors import RegistryError, SpecError
from clgym_core.build import resolve_spec
from clgym_core.spec import apply_overrides, dump_spec, load_spec, parse_spec, read_spec_file
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from pydantic import Field

YAML_SPEC = """\
benchmark: {name: synthetic_blobs, params: {num_tasks: 2}}
algorithm: {name: weighted, params: {lambda: 100}}
optimizer: {name: sgd, lr: 0.05, momentum: 0.8}
trainer: {epochs_per_task: 1, batch_size: 16, device: cpu}
seed: 3
"""


class WeightedParams(Params):
    lambda_: float = Field(1.0, alias="lambda", ge=0, description="Penalty strength.")


class Weighted(Algorithm):
    """Test algorithm with a `lambda` parameter."""

    name = "weighted"
    Params = WeightedParams


@pytest.fixture
def registry():
    with isolated_registry({"t": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Weighted])}) as reg:
        yield reg


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_toml_json_give_the_same_spec(tmp_path: Path) -> None:
    from_yaml = load_spec(write(tmp_path, "s.yaml", YAML_SPEC))
    data = read_spec_file(tmp_path / "s.yaml")
    from_json = load_spec(write(tmp_path, "s.json", json.dumps(data)))
    toml = """\
seed = 3
[benchmark]
name = "synthetic_blobs"
params = { num_tasks = 2 }
[algorithm]
name = "weighted"
params = { lambda = 100 }
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.8
[trainer]
epochs_per_task = 1
batch_size = 16
device = "cpu"
"""
    from_toml = load_spec(write(tmp_path, "s.toml", toml))
    assert from_yaml == from_json == from_toml
    assert from_yaml.algorithm.params == {"lambda": 100}
    assert from_yaml.backbone.name == "mlp"  # defaults fill what the spec leaves out


def test_overrides_parse_values_and_create_paths() -> None:
    data = {"benchmark": {"name": "synthetic_blobs"}, "algorithm": "weighted"}
    out = apply_overrides(
        data,
        ["algorithm.params.lambda=100", "trainer.device=cpu", "benchmark.params.spread=0.25", "seed=7"],
    )
    assert out["algorithm"] == {"name": "weighted", "params": {"lambda": 100}}
    assert out["trainer"] == {"device": "cpu"}
    assert out["benchmark"]["params"]["spread"] == 0.25
    assert out["seed"] == 7
    assert data == {"benchmark": {"name": "synthetic_blobs"}, "algorithm": "weighted"}  # input untouched
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        apply_overrides(data, ["seed"])
    with pytest.raises(SpecError, match="seed is not a mapping"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.batch_size=0", "spec: trainer.batch_size: Input should be greater than or equal to 1"),
        ("trainer.device=gpu", "spec: trainer.device: Value error, 'gpu' is not a device"),
        ("trainer.epoch=3", "spec: trainer.epoch: unknown parameter"),
        ("optimizer.name=lbfgs", "spec: optimizer.name: Input should be 'sgd', 'adam', 'adamw' or 'rmsprop'"),
        ("colour=red", "spec: colour: unknown parameter"),
    ],
)
def test_field_errors_name_the_path(override: str, expected: str) -> None:
    data = apply_overrides({"benchmark": "synthetic_blobs"}, [override])
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_missing_benchmark_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec: benchmark: Field required"):
        parse_spec({})
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="unknown spec format '.txt'"):
        load_spec(write(tmp_path, "s.txt", YAML_SPEC))
    with pytest.raises(SpecError, match=r"s.yaml: line 2, column \d+ invalid YAML"):
        load_spec(write(tmp_path, "s.yaml", "benchmark: {name: x\nseed: [1"))
    with pytest.raises(SpecError, match="must be a mapping at the top level"):
        load_spec(write(tmp_path, "l.yaml", "- 1\n- 2\n"))
    with pytest.raises(SpecError, match="invalid JSON at line 1"):
        load_spec(write(tmp_path, "s.json", "{"))


def test_resolve_fills_defaults_from_benchmark_and_seed(registry, tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "s.yaml", YAML_SPEC))
    resolved = resolve_spec(spec, registry)
    assert resolved.benchmark.params["seed"] == 3  # the benchmark seed follows the run seed
    assert resolved.benchmark.params["input_size"] == 8
    assert resolved.backbone.params["input_size"] == 8  # backbone sizes default from the benchmark
    assert resolved.backbone.params["output_size"] == 2
    assert resolved.algorithm.params == {"lambda": 100.0}  # aliases survive the round trip
    again = parse_spec(__import__("yaml").safe_load(dump_spec(resolved)))
    assert resolve_spec(again, registry) == resolved


def test_explicit_params_win_over_derived_defaults(registry) -> None:
    spec = parse_spec({"benchmark": {"name": "synthetic_blobs", "params": {"seed": 11}},
                       "backbone": {"name": "mlp", "params": {"output_size": 5}}, "algorithm": "weighted", "seed": 3})
    resolved = resolve_spec(spec, registry)
    assert resolved.benchmark.params["seed"] == 11
    assert resolved.backbone.params["output_size"] == 5


def test_resolve_errors_name_field_and_component(registry) -> None:
    bad_param = parse_spec({"benchmark": "synthetic_blobs", "algorithm": {"name": "weighted", "params": {"lambda": -1}}})
    with pytest.raises(SpecError, match=r"^x.yaml: algorithm.params.lambda: Input should be greater than or equal to 0$"):
        resolve_spec(bad_param, registry, source="x.yaml")
    unknown = parse_spec({"benchmark": "synthetic_blobs", "algorithm": "weigthed"})
    with pytest.raises(RegistryError, match=r"^x.yaml: algorithm.name: unknown algorithm 'weigthed'; did you mean weighted"):
        resolve_spec(unknown, registry, source="x.yaml")
    bad_backbone = parse_spec({"benchmark": "synthetic_blobs", "backbone": {"name": "mlp", "params": {"width": 3}}})
    with pytest.raises(SpecError, match="backbone.params.width: unknown parameter"):
        resolve_spec(bad_backbone, registry)
