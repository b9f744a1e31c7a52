"""Data-parallel training through Lightning Fabric on CPU (gloo, 2 processes) matches one process.

Each process trains on its slice of every global batch; the trainer averages gradients
(weighted by slice size) inside every backward pass, so finetune, EWC (whose penalty is
added to the gradient after backward) and A-GEM (which projects the gradient against a
memory gradient drawn alike in every process) must end where one process does with the
same global batch, up to floating-point rounding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.file_module import load_file_module

pytest.importorskip("lightning_fabric")

SUPPORT_FILE = Path(__file__).with_name("ddp_support.py")


support = load_file_module("clgym_tests_ddp_support", SUPPORT_FILE)


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


# ---- a ddp run through the CLI, killed after a task, resumes to the same result -------------------------

RESUME_FILE = Path(__file__).with_name("resume_support.py")


def _resume_support():
    return load_file_module("clgym_tests_resume_support", RESUME_FILE)


def _cli(args: list[str], pause: str | None = None) -> subprocess.Popen:
    """``clgym ARGS`` in a child process; under ddp, Fabric starts the second process from it."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if pause is not None:
        env[_resume_support().PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, str(RESUME_FILE), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_ddp_run_killed_after_a_task_resumes_to_the_same_result(tmp_path):
    import signal
    import time

    from clgym_core.checkpoint import load_checkpoint

    resume = _resume_support()
    spec = resume.SPEC.replace("device: cpu, ", "strategy: ddp, devices: 2, accelerator: cpu, ")
    assert "strategy: ddp" in spec
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec)
    reference = tmp_path / "reference"
    child = _cli(["run", str(spec_file), "--out", str(reference), "--no-progress"])
    output = child.communicate(timeout=300)[0]
    assert child.returncode == 0, output[-3000:]
    assert "Starting with 2 processes" in output

    killed, marker = tmp_path / "killed", tmp_path / "paused"
    child = _cli(["run", str(spec_file), "--out", str(killed), "--no-progress"], pause=f"2:3:{marker}")
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert child.poll() is None, child.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never reached task 2"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # process 0; the process it started follows it out
    child.communicate(timeout=60)
    state, _ = load_checkpoint(killed)
    assert state["completed_tasks"] == 1 and not (killed / "metrics.json").exists()

    child = _cli(["run", "--resume", str(killed), "--no-progress"])
    output = child.communicate(timeout=300)[0]
    assert child.returncode == 0, output[-3000:]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (reference, killed)]
    assert resume.comparable(metrics[1]) == resume.comparable(metrics[0])
    assert (killed / "accuracy_matrix.csv").read_text() == (reference / "accuracy_matrix.csv").read_text()
    assert output.count("accuracy matrix") == 1  # only process 0 prints the result
