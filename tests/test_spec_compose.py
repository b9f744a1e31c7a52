"""Issue 18 item 6: ``extends:`` composition, ``validate --print``, close-match hints, the spec reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clgym_core import spec_reference
from clgym_core.algorithm import Algorithm
from clgym_core.cli import app
from clgym_core.component import Params
from clgym_core.errors import SpecError
from clgym_core.optim import OptimizerConfig
from clgym_core.settings import TrainerSettings
from clgym_core.spec import MAX_SPEC_NODES, RunSpec, load_spec, read_composed_spec
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from pydantic import Field

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


class WithLambda(Algorithm):
    """Test algorithm with a lambda parameter."""

    name = "with_lambda"

    class Params(Params):
        lambda_: float = Field(1.0, alias="lambda", description="Penalty strength.")
        memory_size: int = Field(10, description="Examples kept.")


@pytest.fixture
def registry():
    with isolated_registry({"testplugin": make_plugin(benchmarks=[SyntheticBlobs], algorithms=[WithLambda])}) as reg:
        yield reg


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


BASE = (
    "benchmark: {name: synthetic_blobs, params: {num_tasks: 2}}\n"
    "algorithm: {name: with_lambda, params: {lambda: 5, memory_size: 20}}\n"
    "backbone: mlp\n"
    "optimizer: {name: sgd, lr: 0.1}\n"
    "trainer: {batch_size: 16, device: cpu, epochs_per_task: 3}\n"
)


def test_extends_merges_recursively_relative_to_the_file_and_set_goes_on_top(tmp_path):
    write(tmp_path / "base" / "base.yaml", BASE)
    write(tmp_path / "base" / "mid.yaml", "extends: base.yaml\ntrainer: {epochs_per_task: 1}\n")
    child = write(tmp_path / "study" / "child.yaml",
                  "extends: ../base/mid.yaml\nalgorithm: {params: {lambda: 100}}\nseed: 3\n")
    spec = load_spec(child, ["optimizer.lr=0.5"])
    assert spec.algorithm.name == "with_lambda"
    assert spec.algorithm.params == {"lambda": 100, "memory_size": 20}  # the child's value, the base's other one
    assert spec.trainer.epochs_per_task == 1 and spec.trainer.batch_size == 16  # chain: mid over base
    assert spec.optimizer.lr == 0.5 and spec.seed == 3
    assert "extends" not in read_composed_spec(child)


def test_another_component_replaces_the_base_entry_and_lists_replace(tmp_path):
    write(tmp_path / "base.yaml", BASE + "callbacks: [{name: a}, {name: b}]\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nalgorithm: finetune\ncallbacks: []\n")
    data = read_composed_spec(child)
    assert data["algorithm"] == {"name": "finetune"}  # not with_lambda's params under finetune
    assert data["callbacks"] == []


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "cycle (a.yaml -> b.yaml -> a.yaml)"),
        ({"a.yaml": "extends: a.yaml\n"}, "cycle (a.yaml -> a.yaml)"),
        ({"a.yaml": "extends: nowhere.yaml\n"}, "extends: 'nowhere.yaml' does not exist"),
        ({"a.yaml": "extends: [b.yaml]\n"}, "extends: expected the path of a spec file"),
    ],
)
def test_bad_extends_is_one_line_naming_the_file(tmp_path, files, fragment):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "a.yaml")
    message = str(info.value)
    assert fragment in message and "\n" not in message and "a.yaml" in message


def test_the_merged_spec_is_bounded_like_one_file(tmp_path):
    # Each file is under the limit; together they are over it.
    half = MAX_SPEC_NODES // 2 + 10
    base = {"benchmark": {"name": "b", "params": {"xs": list(range(half))}}}
    child = {"extends": "base.yaml", "algorithm": {"name": "a", "params": {"ys": list(range(half))}}}
    write(tmp_path / "base.yaml", yaml.safe_dump(base))
    write(tmp_path / "child.yaml", yaml.safe_dump(child))
    with pytest.raises(SpecError, match=r"child.yaml: expands to more than"):
        read_composed_spec(tmp_path / "child.yaml")


def test_validate_print_shows_the_resolved_spec(registry, tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nalgorithm: {params: {lambda: 7}}\n")
    result = runner.invoke(app, ["validate", str(child), "--print", "--set", "seed=4"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["algorithm"] == {"name": "with_lambda", "params": {"lambda": 7.0, "memory_size": 20}}
    assert printed["seed"] == 4 and printed["benchmark"]["params"]["seed"] == 4  # defaults filled in
    assert printed["trainer"]["eval_batch_size"] == 1024 and "extends" not in printed
    RunSpec.model_validate(printed)  # what it prints is itself a valid spec
    assert "ok: benchmark synthetic_blobs" in result.stderr


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("algorithm.params.lamda=3", "algorithm.params.lamda: unknown parameter; did you mean lambda? "
                                     "(known: lambda, memory_size)"),
        ("backbone.params.hidden_size=[8]", "backbone.params.hidden_size: unknown parameter; did you mean "
                                            "hidden_sizes?"),
        ("trainer.epoch_per_task=2", "trainer.epoch_per_task: unknown parameter; did you mean epochs_per_task?"),
        ("optimizer.moment=0.9", "optimizer.moment: unknown parameter; did you mean momentum?"),
        ("sed=1", "sed: unknown parameter; did you mean seed?"),
    ],
)
def test_unknown_parameter_suggests_the_close_match_and_lists_the_known(registry, tmp_path, override, fragment):
    spec = write(tmp_path / "s.yaml", BASE)
    result = runner.invoke(app, ["validate", str(spec), "--set", override])
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_show_trainer_and_optimizer_list_every_field(registry):
    for section, model in (("trainer", TrainerSettings), ("optimizer", OptimizerConfig)):
        result = runner.invoke(app, ["show", section])
        assert result.exit_code == 0, result.output
        for name, field in model.model_fields.items():
            assert name in result.stdout
            assert (field.description or "").split()[0] in result.stdout


def test_spec_reference_is_current_and_covers_every_field():
    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    assert text == spec_reference.render(), "docs/spec.md is stale: run python scripts/spec_reference.py"
    for name in RunSpec.model_fields:
        assert f"| `{name}` |" in text
    for prefix, model in (("trainer", TrainerSettings), ("optimizer", OptimizerConfig)):
        for name in model.model_fields:
            assert f"| `{prefix}.{name}` |" in text
    assert "`extends`" in text
