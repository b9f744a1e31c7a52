"""What every algorithm of the plugin shares: registration, defaults, determinism, checkpointable state."""

from __future__ import annotations

import io

import pytest
import torch

import clgym_core as cl
from clgym_core.component import Params
from clgym_core.registry import Registry

NAMES = {
    "finetune": "Finetune", "joint": "Joint", "ewc": "EWC", "agem": "AGEM", "er_ring": "ERRing",
    "er_reservoir": "ERReservoir", "ogd": "OGD", "stable_sgd": "StableSGD", "mcsgd": "MCSGD",
}


def test_every_algorithm_is_registered_through_the_entry_point():
    registry = Registry(autoload=True, blocked=set())
    components = registry.components("algorithm")
    for name, class_name in NAMES.items():
        info = components[name]
        assert info.cls.__name__ == class_name and info.plugin.distribution == "clgym-algos"
        assert issubclass(info.cls.Params, Params)
        summary = (info.cls.__doc__ or "").strip().splitlines()[0]
        assert summary.endswith(".") and len(summary) <= 110, summary
        for field, spec in info.cls.Params.model_fields.items():
            assert spec.description, f"{name}.params.{field} has no description"
    assert not [p for p in registry.problems() if "clgym-algos" in p]


@pytest.mark.parametrize("class_name", sorted(NAMES.values()))
def test_paper_api_names_construct_with_default_params(class_name, blobs, backbone_for):
    bench = blobs(per_task_memory_examples=10)
    cls = getattr(cl.algorithms, class_name)
    algorithm = cls(backbone_for(bench, dropout=0.1), bench)
    assert algorithm.params == cls.Params()


@pytest.mark.parametrize(
    ("class_name", "params", "dropout"),
    [("EWC", {"fisher": "sample"}, 0.0), ("ERReservoir", {}, 0.0), ("AGEM", {"reference_batch_size": 8}, 0.0),
     ("StableSGD", {"dropout": 0.3}, 0.3), ("MCSGD", {"line_epochs": 2}, 0.0), ("OGD", {}, 0.0)],
)
def test_same_seed_same_results(class_name, params, dropout, run):
    cls = getattr(cl.algorithms, class_name)
    bench = {"per_task_memory_examples": 10}
    first, alg_a = run(cls, params, benchmark=bench, epochs=2, seed=4, dropout=dropout)
    second, alg_b = run(cls, params, benchmark=bench, epochs=2, seed=4, dropout=dropout)
    assert first.accuracy_matrix == second.accuracy_matrix
    assert torch.equal(torch.nn.utils.parameters_to_vector(alg_a.backbone.parameters()),
                       torch.nn.utils.parameters_to_vector(alg_b.backbone.parameters()))


@pytest.mark.parametrize("class_name", sorted(NAMES.values()))
def test_state_is_tensors_and_plain_values(class_name, run):
    cls = getattr(cl.algorithms, class_name)
    _, alg = run(cls, {}, benchmark={"per_task_memory_examples": 10}, epochs=1, dropout=0.1)
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = cls(alg.backbone, alg.benchmark)
    fresh.load_state_dict(state)
    buffer2 = io.BytesIO()
    torch.save(fresh.state_dict(), buffer2)
    assert buffer2.getvalue() == buffer.getvalue()
