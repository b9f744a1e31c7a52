"""docs/plugins.md documents every hook with its exact signature, and nothing that no longer exists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from clgym_core import hookspecs, registry
from clgym_core.kinds import KINDS
from clgym_core.callback import HOOKS, Callback

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def hookspec_functions() -> dict[str, object]:
    """The functions of clgym_core.hookspecs marked as pluggy hook specifications."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: fn for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and getattr(fn, marker, None) is not None
    }


def signature_line(fn: object) -> str:
    """``def name(params) -> ret:`` as source spells it (string annotations without quotes)."""
    signature = inspect.signature(fn)  # type: ignore[arg-type]

    def annotation(value: object) -> str:
        return value if isinstance(value, str) else inspect.formatannotation(value)

    params = []
    for p in signature.parameters.values():
        text = p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {annotation(p.annotation)}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        params.append(text)
    returns = signature.return_annotation
    returns = "" if returns is inspect.Signature.empty else f" -> {annotation(returns)}"
    return f"def {fn.__name__}({', '.join(params)}){returns}:"  # type: ignore[attr-defined]


def test_every_hookspec_appears_with_its_exact_signature(doc: str) -> None:
    specs = hookspec_functions()
    assert len(specs) >= 4, f"found only {sorted(specs)} in clgym_core.hookspecs"
    missing = [signature_line(fn) for fn in specs.values() if signature_line(fn) not in doc]
    assert not missing, f"docs/plugins.md lacks these hook signatures (verbatim): {missing}"


def test_docs_name_no_hook_that_does_not_exist(doc: str) -> None:
    documented = set(re.findall(r"\b(clgym_register_\w+)\b", doc))
    assert documented, "docs/plugins.md names no hook"
    # The misspelled hook in the failure table is there on purpose.
    stale = documented - set(hookspec_functions()) - {"clgym_register_algorithm"}
    assert not stale, f"docs/plugins.md names hooks that clgym_core.hookspecs does not declare: {sorted(stale)}"


def test_every_callback_hook_appears_with_its_exact_signature(doc: str) -> None:
    missing = []
    for hook in HOOKS:
        line = signature_line(getattr(Callback, hook))
        if line not in doc:
            missing.append(line)
    assert not missing, f"docs/plugins.md lacks these callback hook signatures (verbatim): {missing}"


def test_registry_kinds_and_switches_are_documented(doc: str) -> None:
    for kind in KINDS:
        assert kind.hook in doc
    for variable in (registry.ENV_DISABLE, registry.ENV_BLOCK, registry.ENV_TRACE):
        assert f"`{variable}" in doc, f"{variable} is not documented"
    assert f"[project.entry-points.{registry.ENTRY_POINT_GROUP}]" in doc
    for name in ("AlgorithmConformance", "BenchmarkConformance", "BackboneConformance", "CallbackConformance"):
        assert f"`{name}`" in doc


def test_signature_line_spells_annotations_as_source_does() -> None:
    def example(self, trainer: ContinualTrainer, task: int = 1) -> None: ...  # noqa: F821 (a string here)

    assert signature_line(example) == "def example(self, trainer: ContinualTrainer, task: int = 1) -> None:"


def _example(doc: str, class_name: str) -> type:
    """The class defined by the python block of docs/plugins.md that defines ``class_name``."""
    for block in re.findall(r"```python\n(.*?)```", doc, flags=re.S):
        if f"class {class_name}(" in block:
            namespace: dict = {}
            exec(compile(block, f"docs/plugins.md:{class_name}", "exec"), namespace)
            return namespace[class_name]
    raise AssertionError(f"docs/plugins.md has no example defining {class_name}")


def test_the_documented_minimal_algorithm_and_callback_run_and_resume(doc: str, tmp_path: Path) -> None:
    import torch

    from clgym_core.runner import run_spec
    from clgym_core.spec import parse_spec
    from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin

    algorithm, callback = _example(doc, "L2Anchor"), _example(doc, "SeenAccuracyLog")
    plugin = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[algorithm], callbacks=[callback])
    spec = parse_spec({
        "benchmark": {"name": "synthetic_blobs", "params": {"num_tasks": 2, "train_examples": 32}},
        "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
        "algorithm": {"name": "l2_anchor", "params": {"strength": 0.5}},
        "callbacks": ["seen_accuracy_log"],
        "trainer": {"batch_size": 16, "device": "cpu", "progress": False},
    })
    with isolated_registry({"docs": plugin}):
        run_spec(spec, out_dir=tmp_path / "run")
    lines = (tmp_path / "run" / "seen_accuracy.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert len(state["algorithm"]["anchor"]) == 4  # two layers' weights and biases
