"""Checkpoint files: atomic writes, safe loading, what goes in and comes back out."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from clgym_core import checkpoint as ck
from clgym_core.algorithm import Algorithm
from clgym_core.backbone import MLP
from clgym_core.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, CheckpointError, load_checkpoint, save_checkpoint
from clgym_core.data import TaskData
from clgym_core.testing import SyntheticBlobs
from clgym_core.trainer import ContinualTrainer, RunContext


def minimal(tasks: int, weight: float) -> dict:
    """The smallest state load_checkpoint accepts, told apart by ``tasks`` and ``weight``."""
    return {
        "completed_tasks": tasks,
        "num_tasks": 3,
        "backbone": {"w": torch.full((4,), weight)},
        "algorithm": {},
        "callbacks": {},
        "trainer": {"global_step": 0, "wall_seconds": 0.0},
    }


def test_a_crash_while_writing_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    save_checkpoint(minimal(1, 1.0), tmp_path)
    real_save = torch.save

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04half a zip")  # some bytes reach the disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(minimal(2, 2.0), tmp_path)
    monkeypatch.setattr(torch, "save", real_save)

    state, path = load_checkpoint(tmp_path)
    assert path.name == CHECKPOINT_NAME and state["completed_tasks"] == 1
    assert torch.equal(state["backbone"]["w"], torch.full((4,), 1.0))
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]  # no temporary file left behind


def test_a_leftover_temporary_file_is_ignored(tmp_path):
    save_checkpoint(minimal(1, 1.0), tmp_path)
    (tmp_path / f".{CHECKPOINT_NAME}.tmp").write_bytes(b"garbage from a killed writer")
    assert load_checkpoint(tmp_path)[0]["completed_tasks"] == 1


def test_previous_checkpoint_is_kept_and_used_when_the_newest_is_damaged(tmp_path):
    save_checkpoint(minimal(1, 1.0), tmp_path)
    save_checkpoint(minimal(2, 2.0), tmp_path)
    assert load_checkpoint(tmp_path)[0]["completed_tasks"] == 2
    data = (tmp_path / CHECKPOINT_NAME).read_bytes()
    (tmp_path / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])  # e.g. a disk that lost the tail
    state, path = load_checkpoint(tmp_path)
    assert path.name == PREVIOUS_NAME and state["completed_tasks"] == 1


def test_damaged_checkpoints_give_one_line_naming_the_file(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / CHECKPOINT_NAME) in message


def test_foreign_and_old_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="not a clgym checkpoint"):
        load_checkpoint(tmp_path)
    torch.save({"format": ck.FORMAT, "format_version": 99}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path)


class _Payload:
    """Unpickling this would create a directory: what a malicious checkpoint would do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_loading_never_executes_code_from_the_run_directory(tmp_path):
    target = tmp_path / "pwned"
    state = {**minimal(1, 1.0), "format": ck.FORMAT, "format_version": ck.FORMAT_VERSION}
    state["extra"] = _Payload(str(target))
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="could run code|unsafe to load"):
        load_checkpoint(tmp_path)
    assert not target.exists()


def test_state_that_cannot_be_loaded_safely_is_refused_when_saved(tmp_path):
    data = TaskData.for_task(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 1)
    with pytest.raises(CheckpointError, match=r"checkpoint\['algorithm'\]\['memory'\] is a TaskData"):
        save_checkpoint({**minimal(1, 1.0), "algorithm": {"memory": data}}, tmp_path)
    with pytest.raises(CheckpointError, match="TorchVersion"):
        save_checkpoint({**minimal(1, 1.0), "torch": torch.__version__}, tmp_path)  # a str subclass
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_rng_states_round_trip():
    state = ck.rng_state()
    before = (random.random(), float(np.random.rand()), float(torch.rand(())))
    ck.set_rng_state(state)
    after = (random.random(), float(np.random.rand()), float(torch.rand(())))
    assert before == after


class _MemoryAsTaskData(Algorithm):
    """Keeps its memory as a TaskData in state_dict (a plugin bug the first checkpoint must catch)."""

    name = "memory_as_taskdata"

    def train_task_end(self, task: int) -> None:
        self.memory = self.benchmark.load_train(task)

    def state_dict(self):
        return {"memory": self.memory} if hasattr(self, "memory") else {}


def test_trainer_names_the_algorithm_whose_state_is_not_storable(tmp_path):
    bench = SyntheticBlobs(num_tasks=2, train_examples=16, test_examples=8)
    algo = _MemoryAsTaskData(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench)
    trainer = ContinualTrainer(algo, batch_size=8, device="cpu", checkpoint=True, run=RunContext(run_dir=tmp_path))
    expected = r"algorithm memory_as_taskdata: state_dict\(\)\['memory'\] is a TaskData"
    with pytest.raises(CheckpointError, match=expected):
        trainer.fit()
    assert load_checkpoint(tmp_path)[0]["completed_tasks"] == 0  # the untrained model's checkpoint is intact


def test_trainer_checkpoint_restores_weights_and_counters(tmp_path):
    def build():
        torch.manual_seed(0)
        bench = SyntheticBlobs(num_tasks=2, train_examples=16, test_examples=8)
        return Algorithm(MLP(input_size=8, hidden_sizes=[8], output_size=2), bench)

    trainer = ContinualTrainer(build(), batch_size=8, device="cpu", checkpoint=True, run=RunContext(run_dir=tmp_path))
    trainer.fit()
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # plain torch can read it safely
    assert state["completed_tasks"] == 2 and state["trainer"]["global_step"] == 4

    resumed = ContinualTrainer(build(), batch_size=8, device="cpu")
    resumed.restore(load_checkpoint(tmp_path)[0])
    summary = resumed.fit()  # nothing left to train: restores and reports
    assert resumed.global_step == 4 and resumed.completed_tasks == 2
    for name, tensor in trainer.backbone.state_dict().items():
        assert torch.equal(resumed.backbone.state_dict()[name], tensor)
    assert resumed.accuracy_matrix == trainer.accuracy_matrix and summary == trainer.summary()
