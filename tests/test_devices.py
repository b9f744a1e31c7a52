"""Devices: auto picks CUDA, then MPS, then CPU; missing devices are clear errors; bf16 mixed precision."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.cli import app
from clgym_core.errors import ClgymError, SpecError
from clgym_core.spec import parse_spec
from clgym_core.testing import SyntheticBlobs, isolated_registry, make_plugin
from clgym_core.trainer import ContinualTrainer, check_mixed_precision, resolve_device


@pytest.fixture
def no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_prefers_cuda_then_mps_then_cpu(no_accelerators, monkeypatch):
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(
    "device, fragment",
    [
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
        ("mps", "MPS is not available"),
        ("tpu", "is not a device"),
    ],
)
def test_a_device_that_is_not_there_is_a_one_line_error(no_accelerators, device, fragment):
    with pytest.raises(ClgymError) as info:
        resolve_device(device)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_cuda_index_past_the_last_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ClgymError, match=r"'cuda:2' does not exist \(2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_run_on_a_missing_device_exits_2(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("benchmark: {name: synthetic_blobs, params: {num_tasks: 2}}\nalgorithm: recording\n"
                    "trainer: {device: cuda}\n")
    plugin = make_plugin(benchmarks=[SyntheticBlobs], algorithms=[Recording])
    with isolated_registry({"blobs": plugin}):
        result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: trainer.device: 'cuda' was asked for but CUDA is not available here; use auto or cpu"
    ]
    assert not (tmp_path / "run").exists()  # checked before the run directory is made


def test_spec_mixed_precision_values():
    base = {"benchmark": "synthetic_blobs"}
    assert parse_spec({**base, "trainer": {"mixed_precision": False}}).trainer.mixed_precision == "none"  # YAML `no`
    assert parse_spec({**base, "trainer": {"mixed_precision": "BF16"}}).trainer.mixed_precision == "bf16"
    with pytest.raises(SpecError, match="trainer.mixed_precision"):
        parse_spec({**base, "trainer": {"mixed_precision": "fp8"}})


def test_mixed_precision_needs_a_device_that_supports_it(monkeypatch):
    with pytest.raises(ClgymError, match="not available on mps"):
        check_mixed_precision("bf16", torch.device("mps"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ClgymError, match="Tesla T4 has none"):
        check_mixed_precision("bf16", torch.device("cuda"))
    check_mixed_precision("none", torch.device("mps"))  # full precision runs anywhere


class Recording(Algorithm):
    """Finetuning that records the dtype of every forward pass, split by training and evaluation."""

    name = "recording"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: set[tuple[str, torch.dtype]] = set()

    def forward(self, batch):
        outputs = super().forward(batch)
        self.seen.add(("eval" if torch.is_inference_mode_enabled() else "train", outputs.dtype))
        return outputs


def run(mixed_precision: str) -> ContinualTrainer:
    torch.manual_seed(0)
    bench = SyntheticBlobs(num_tasks=2, train_examples=64, test_examples=32)
    algo = Recording(MLP(input_size=8, hidden_sizes=[16], output_size=2), bench, optimizer={"lr": 0.1})
    trainer = ContinualTrainer(algo, epochs_per_task=2, batch_size=16, device="cpu", mixed_precision=mixed_precision)
    trainer.fit()
    return trainer


def test_bf16_autocasts_training_and_evaluation_but_keeps_float32_weights():
    full, mixed = run("none"), run("bf16")
    assert full.algorithm.seen == {("train", torch.float32), ("eval", torch.float32)}
    assert mixed.algorithm.seen == {("train", torch.bfloat16), ("eval", torch.bfloat16)}
    assert all(p.dtype == torch.float32 for p in mixed.backbone.parameters())
    # Both learn each task when it is trained (the blobs are easy; bf16 must not break training).
    for trainer in (full, mixed):
        assert trainer.summary()["learning_accuracy"] > 90.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_copies_no_data_per_step():
    """Data and model move once: host-to-device copies stay far below the number of steps."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    bench = SyntheticBlobs(num_tasks=2, train_examples=640, test_examples=64)
    algo = Algorithm(MLP(input_size=8, hidden_sizes=[16], output_size=2), bench)
    trainer = ContinualTrainer(algo, epochs_per_task=2, batch_size=16, device="cuda")
    bench.ensure_prepared()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        trainer.fit()
    steps = trainer.global_step  # 2 tasks x 2 epochs x 40 steps
    copies = sum(e.count for e in prof.key_averages() if "HtoD" in e.key)
    assert steps == 160 and copies < 40, copies
