"""Conformance checks for backbones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F

from clgym_core.backbone import Backbone
from clgym_core.testing.conformance._kit import (
    DEVICES,
    KIT_BENCHMARK,
    ComponentConformance,
    assert_same,
    build_run,
    check_matrix,
    kit_registry,
    learning_accuracy,
    merged,
    save_and_load,
    weights,
)
from clgym_core.testing.synthetic import SyntheticBlobs


class BackboneConformance(ComponentConformance):
    """What every backbone must honour. Subclass it and set ``component`` and ``params``::

        from clgym_core.testing import BackboneConformance

        class TestMyNet(BackboneConformance):
            component = MyNet
            params = {"width": 16}
            input_shape = (3, 32, 32)

    The kit feeds Gaussian blobs of ``input_shape`` with ``head_size`` classes
    and fills the sizes from ``Backbone.defaults_from`` as a run spec does.
    Multi-head checks run when the Params model has a ``num_heads`` field.
    ``unused_parameters`` names parameters that legitimately get no gradient.
    """

    __test__ = False
    kind = "backbone"

    input_shape: ClassVar[tuple[int, ...]] = (8,)
    head_size: ClassVar[int] = 3
    unused_parameters: ClassVar[tuple[str, ...]] = ()
    #: Mean accuracy each kit task must reach right after training (chance: 100 / head_size); None skips.
    min_learning_accuracy: ClassVar[float | None] = 60.0
    #: Absolute tolerance when one example's output is compared alone and inside a batch.
    batch_atol: ClassVar[float] = 1e-5

    # ---- helpers ----------------------------------------------------------------------------------
    def synthetic(self, heads: str = "single", num_tasks: int = 3) -> dict[str, Any]:
        return merged(KIT_BENCHMARK, {"num_tasks": num_tasks, "input_shape": list(self.input_shape),
                                      "classes_per_task": self.head_size, "heads": heads})

    @property
    def multi_head(self) -> bool:
        return "num_heads" in self.component_class().Params.model_fields

    def make(self, heads: str = "single", seed: int | None = None) -> tuple[Backbone, SyntheticBlobs]:
        cls = self.component_class()
        bench = SyntheticBlobs(self.synthetic(heads))
        if seed is not None:
            torch.manual_seed(seed)
        return cls({**cls.defaults_from(bench), **self.params}), bench

    def inputs(self, bench: SyntheticBlobs, n: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        data = bench.load_test(1)
        pick = torch.arange(n) % len(data)
        ids = torch.arange(n) % bench.num_tasks + 1
        return data.inputs[pick], data.targets[pick], ids

    def spec(self, device: str = "cpu") -> dict[str, Any]:
        cls = self.component_class()
        return {
            "benchmark": {"name": "synthetic_blobs", "params": self.synthetic(num_tasks=2)},
            "backbone": {"name": cls.name, "params": dict(self.params)},
            "algorithm": "kit_finetune",
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.5},
            "trainer": {"epochs_per_task": 2, "batch_size": 16, "device": device, "progress": False},
            "seed": self.seed,
        }

    # ---- checks -----------------------------------------------------------------------------------
    def test_builds_from_a_spec_with_sizes_from_the_benchmark(self) -> None:
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(), registry)
        assert type(run.components.backbone) is cls
        implied = cls.defaults_from(run.components.benchmark)
        for key, value in implied.items():
            if key not in self.params:
                assert getattr(run.components.backbone.params, key) == value, f"{key} was not taken from the benchmark"

    def test_outputs_one_row_of_head_size_per_example(self) -> None:
        backbone, bench = self.make(seed=self.seed)
        x, _, ids = self.inputs(bench)
        out = backbone(x, ids)
        assert tuple(out.shape) == (x.shape[0], self.head_size), (
            f"output shape {tuple(out.shape)}, expected (batch, head_size) = {(x.shape[0], self.head_size)}"
        )
        assert out.is_floating_point() and torch.isfinite(out).all(), "outputs are not finite floats"

    def test_examples_do_not_influence_each_other_in_eval_mode(self) -> None:
        backbone, bench = self.make(seed=self.seed)
        backbone.eval()
        x, _, ids = self.inputs(bench)
        with torch.no_grad():
            together = backbone(x, ids)
            alone = torch.cat([backbone(x[i:i + 1], ids[i:i + 1]) for i in range(x.shape[0])])
            flipped = backbone(x.flip(0), ids.flip(0)).flip(0)
        scale = max(1.0, float(together.abs().max()))
        assert torch.allclose(together, alone, atol=self.batch_atol * scale), (
            "an example's output depends on the rest of its batch in eval mode (batch statistics?)"
        )
        assert torch.allclose(together, flipped, atol=self.batch_atol * scale), "outputs depend on batch order"

    def test_task_ids_pick_each_examples_head(self) -> None:
        if not self.multi_head:
            pytest.skip("no num_heads parameter: single-head backbone")
        backbone, bench = self.make(heads="multi", seed=self.seed)
        assert bench.num_heads > 1 and backbone.params.num_heads == bench.num_heads
        backbone.eval()
        x, _, ids = self.inputs(bench)
        with torch.no_grad():
            mixed = backbone(x, ids)
            per_head = {t: backbone(x, torch.full_like(ids, t)) for t in range(1, bench.num_heads + 1)}
        expected = torch.stack([per_head[int(t)][i] for i, t in enumerate(ids)])
        scale = max(1.0, float(mixed.abs().max()))
        assert torch.allclose(mixed, expected, atol=self.batch_atol * scale), (
            "with mixed task ids in one batch, an example does not get the output of its own task's head"
        )
        assert not torch.allclose(per_head[1], per_head[2]), "heads 1 and 2 give the same outputs"

    def test_gradients_reach_every_parameter(self) -> None:
        backbone, bench = self.make(heads="multi" if self.multi_head else "single", seed=self.seed)
        backbone.train()
        x, y, ids = self.inputs(bench)
        F.cross_entropy(backbone(x, ids), y).backward()
        missing = [
            name for name, p in backbone.named_parameters()
            if p.requires_grad and p.grad is None and name not in self.unused_parameters
        ]
        assert not missing, f"parameters without a gradient: {', '.join(missing)} (list them in unused_parameters?)"
        bad = [
            name for name, p in backbone.named_parameters()
            if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        assert not bad, f"non-finite gradients: {', '.join(bad)}"

    def test_same_seed_same_initial_weights(self) -> None:
        a, _ = self.make(seed=self.seed)
        b, _ = self.make(seed=self.seed)
        assert_same(weights(a), weights(b), "initial weights of two backbones built after one torch seed")

    def test_state_dict_round_trip(self, tmp_path: Path) -> None:
        a, bench = self.make(seed=self.seed)
        b, _ = self.make(seed=self.seed + 1009)
        b.load_state_dict(save_and_load(a.state_dict(), tmp_path / "backbone.pt", "backbone.state_dict()"))
        a.eval()
        b.eval()
        x, _, ids = self.inputs(bench)
        with torch.no_grad():
            assert_same(a(x, ids), b(x, ids), "outputs of a backbone and its restored copy")
        assert_same(weights(a), weights(b), "weights of a backbone and its restored copy")

    @pytest.mark.parametrize("device", DEVICES)
    def test_trains_on_device(self, device: str) -> None:
        backbone, bench = self.make(seed=self.seed)
        backbone.eval()
        x, _, ids = self.inputs(bench)
        with torch.no_grad():
            on_cpu = backbone(x, ids)
            backbone.to(device)
            moved = [n for n, t in [*backbone.named_parameters(), *backbone.named_buffers()] if t.device.type != device]
            assert not moved, f"after .to({device!r}) still elsewhere: {', '.join(moved)}"
            on_device = backbone(x.to(device), ids.to(device))
        assert on_device.device.type == device
        scale = max(1.0, float(on_cpu.abs().max()))
        # TF32 and other kernels differ a little across devices.
        assert torch.allclose(on_device.cpu(), on_cpu, atol=1e-2 * scale), f"outputs on {device} differ from cpu"
        cls = self.component_class()
        with kit_registry(self.kind, cls) as registry:
            run = build_run(self.spec(device=device), registry).fit()
        check_matrix(run.accuracy, run.components.benchmark.num_tasks, f"accuracy matrix on {device}")
        if self.min_learning_accuracy is not None:
            reached = learning_accuracy(run.accuracy)
            assert reached >= self.min_learning_accuracy, (
                f"the kit tasks reach only {reached:.1f}% right after training (min_learning_accuracy = "
                f"{self.min_learning_accuracy}%; chance is {100 / self.head_size:.0f}%)"
            )
