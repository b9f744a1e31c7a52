from __future__ import annotations

from clgym_core.component import summary_line
from clgym_core.registry import Registry
from clgym_pamap2 import CNN1D, PAMAP2


def test_entry_point_registers_the_benchmark_and_the_backbone():
    registry = Registry(blocked=set())
    assert registry.get("benchmark", "pamap2") is PAMAP2
    assert registry.get("backbone", "cnn1d") is CNN1D
    info = registry.info("benchmark", "pamap2")
    assert info.plugin.name == "pamap2" and info.plugin.distribution == "clgym-pamap2"
    assert not [p for p in registry.problems() if "pamap2" in p]


def test_components_follow_the_house_rules():
    for cls in (PAMAP2, CNN1D):
        cls.check_component()
        assert summary_line(cls)
        for name, field in cls.Params.model_fields.items():
            assert field.description, f"{cls.name}.{name} has no description"


def test_a_run_spec_resolves_cnn1d_sizes_from_pamap2():
    from clgym_core.build import resolve_spec
    from clgym_core.spec import parse_spec

    spec = parse_spec({
        "benchmark": {"name": "pamap2", "params": {"channels": ["ankle"], "window_length": 128, "root": "/x"}},
        "backbone": {"name": "cnn1d", "params": {"dropout": 0.2}},
        "algorithm": {"name": "finetune"},
    })
    resolved = resolve_spec(spec)
    params = resolved.backbone.params
    assert (params["input_channels"], params["window_length"], params["output_size"]) == (13, 128, 12)
    assert params["dropout"] == 0.2
