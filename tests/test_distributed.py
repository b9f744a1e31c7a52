"""Data-parallel training through Lightning Fabric on CPU (gloo, 2 processes) matches one process.

Each process trains on its slice of every global batch; the trainer averages gradients
(weighted by slice size) inside every backward pass, so finetune, EWC (whose penalty is
added to the gradient after backward) and A-GEM (which projects the gradient against a
memory gradient drawn alike in every process) must end where one process does with the
same global batch, up to floating-point rounding.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning_fabric")

SUPPORT_FILE = Path(__file__).with_name("ddp_support.py")


def _support():
    name = "clgym_tests_ddp_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SUPPORT_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


support = _support()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: list[str], world_size: int = 2, timeout: float = 240.0) -> None:
    """Start ``world_size`` processes of ``python ARGS`` as torchrun would, and wait for all of them."""
    port = str(free_port())
    processes = []
    for rank in range(world_size):
        env = {**os.environ, "LOCAL_RANK": str(rank), "NODE_RANK": "0", "WORLD_SIZE": str(world_size),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    launch([str(SUPPORT_FILE), str(out)])
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> dict:
    torch.set_num_threads(1)
    return support.train_all(device="cpu")


@pytest.mark.parametrize("name", list(support.ALGORITHMS))
def test_ddp_matches_one_process_with_the_same_global_batch(ddp_results, one_process, name):
    ddp, reference = ddp_results[0][name], one_process[name]
    assert ddp["world_size"] == 2
    assert torch.allclose(torch.tensor(ddp["weights"]), torch.tensor(reference["weights"]), atol=1e-5, rtol=1e-4)
    assert torch.allclose(torch.tensor(ddp["loss"]), torch.tensor(reference["loss"]), atol=1e-5, rtol=1e-4)
    assert ddp["accuracy"] == reference["accuracy"]
    for key, values in reference["state"].items():  # EWC's Fisher and anchors
        assert torch.allclose(torch.tensor(ddp["state"][key]), torch.tensor(values), atol=1e-6, rtol=1e-4), key


@pytest.mark.parametrize("name", list(support.ALGORITHMS))
def test_every_process_ends_with_identical_weights_and_state(ddp_results, name):
    first, second = ddp_results[0][name], ddp_results[1][name]
    assert (first["rank"], second["rank"]) == (0, 1)
    assert first["weights"] == second["weights"]
    assert first["state"] == second["state"]
    assert first["loss"] == second["loss"]  # evaluation is split across processes and summed


def test_the_match_is_not_trivial(ddp_results):
    """Half the batch in one process (what a process would train on without averaging) ends elsewhere."""
    half = support.train("finetune", device="cpu", batch_size=support.TRAINER["batch_size"] // 2)
    ddp = torch.tensor(ddp_results[0]["finetune"]["weights"])
    assert not torch.allclose(ddp, torch.tensor(half["weights"]), atol=1e-3)
