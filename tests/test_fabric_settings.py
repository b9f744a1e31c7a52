"""The Fabric fields of ``trainer:``: their combinations, the install hint, and the untouched default path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clgym_core.build import build, resolve
from clgym_core.distributed import INSTALL_HINT, fabric_class
from clgym_core.errors import ClgymError, SpecError
from clgym_core.settings import TrainerSettings
from clgym_core.spec import parse_spec

BASE = {"benchmark": {"name": "toy_2d_classification", "params": {"num_tasks": 2, "per_task_memory_examples": 8}},
        "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}}, "algorithm": {"name": "finetune"}}


@pytest.mark.parametrize("trainer, message", [
    ({"strategy": "ddp", "device": "cpu"}, "spec: trainer.device: leave it auto when Fabric fields"),
    ({"precision": "bf16-mixed", "mixed_precision": "bf16"}, "spec: trainer.mixed_precision: use precision: bf16-mixed"),
    ({"strategy": "single_device", "devices": 2}, "spec: trainer.strategy: single_device runs one process"),
    ({"devices": 4, "batch_size": 3}, "spec: trainer.batch_size: 3 is the global batch and must give each of the 4"),
    ({"precision": "16-mixed"}, "spec: trainer.precision: Input should be '32-true' or 'bf16-mixed'"),
])
def test_a_clash_is_one_line_naming_the_field(trainer, message):
    with pytest.raises(SpecError) as caught:
        parse_spec({**BASE, "trainer": trainer})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_which_settings_go_through_fabric():
    assert not TrainerSettings().uses_fabric
    assert not TrainerSettings(device="cpu", mixed_precision="bf16").uses_fabric
    assert TrainerSettings(num_nodes=2, strategy="ddp").uses_fabric
    assert TrainerSettings(precision="32-true").uses_fabric


def test_missing_fabric_is_one_line_with_the_install_hint(monkeypatch):
    for module in ("lightning_fabric", "lightning", "lightning.fabric"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ClgymError) as caught:
        fabric_class(TrainerSettings(strategy="ddp", devices=2))
    assert str(caught.value) == f"trainer: devices=2, strategy=ddp need Lightning Fabric; install it: {INSTALL_HINT}"


def test_an_algorithm_filling_memory_from_batches_is_refused_under_ddp():
    pytest.importorskip("lightning_fabric")
    spec = parse_spec({**BASE, "algorithm": {"name": "er_ring"}, "trainer": {"strategy": "ddp", "devices": 2}})
    with pytest.raises(SpecError, match=r"^spec: trainer.strategy: ddp gives each process a slice .* er_ring fills"):
        build(resolve(spec))


def test_fabric_on_one_device_gives_the_default_path_results():
    pytest.importorskip("lightning_fabric")
    from clgym_core.runner import run_spec

    spec = {**BASE, "trainer": {"epochs_per_task": 2, "batch_size": 16, "progress": False, "checkpoint": False}}
    plain = run_spec(parse_spec({**spec, "trainer": {**spec["trainer"], "device": "cpu"}}), write=False)
    fabric = run_spec(parse_spec({**spec, "trainer": {**spec["trainer"], "strategy": "single_device",
                                                      "accelerator": "cpu"}}), write=False)
    assert fabric.trainer.placement.world_size == 1
    assert fabric.loss_matrix == plain.loss_matrix


def test_the_default_path_never_imports_lightning():
    code = (
        "import sys\n"
        "from clgym_core.runner import run_spec\nfrom clgym_core.spec import parse_spec\n"
        f"run_spec(parse_spec({BASE!r} | {{'trainer': {{'progress': False, 'checkpoint': False}}}}), write=False)\n"
        "assert not any(m.split('.')[0] in ('lightning', 'lightning_fabric') for m in sys.modules), 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
