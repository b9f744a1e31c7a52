"""Finetune and joint: the lower and upper bounds on the conflicting-blobs benchmark."""

from __future__ import annotations

import io

import torch

from clgym_core.metrics import average_accuracy, average_forgetting, learning_accuracy
from clgym_core.testing import AlgorithmConformance

from clgym_algos.finetune import Finetune
from clgym_algos.flat import FlatParams
from clgym_algos.joint import Joint


def test_finetune_learns_each_task_and_forgets_the_earlier_ones(finetune_forgetting, run):
    # The benchmark the other tests lean on really has conflicting tasks.
    assert all(f > 30.0 for f in finetune_forgetting.values()), finetune_forgetting
    trainer, alg = run(Finetune)
    assert learning_accuracy(trainer.accuracy_matrix) >= 95.0
    assert alg.state_dict() == {}


def test_joint_training_solves_every_task(run):
    trainer, _ = run(Joint)
    assert average_accuracy(trainer.accuracy_matrix) >= 95.0
    assert average_forgetting(trainer.accuracy_matrix) <= 5.0


def test_joint_trains_on_every_task_seen_so_far(blobs, backbone_for):
    bench = blobs()
    data = Joint(backbone_for(bench), bench).prepare_train_data(3)
    assert sorted(set(data.task_ids.tolist())) == [1, 2, 3] and len(data) == 600


def test_joint_reset_restarts_from_the_initial_weights(blobs, backbone_for):
    bench = blobs()
    alg = Joint(backbone_for(bench), bench, {"reset_each_task": True})
    flat = FlatParams(alg.backbone)
    initial = flat.values()
    alg.prepare_optimizer(1)
    flat.set_values(initial + 1.0)
    alg.prepare_optimizer(2)
    torch.testing.assert_close(flat.values(), initial, rtol=0, atol=0)
    buffer = io.BytesIO()
    torch.save(alg.state_dict(), buffer)
    buffer.seek(0)
    fresh = Joint(alg.backbone, bench, {"reset_each_task": True})
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    flat.set_values(initial + 2.0)
    fresh.prepare_optimizer(3)
    torch.testing.assert_close(flat.values(), initial, rtol=0, atol=0)


class TestFinetuneConformance(AlgorithmConformance):
    component = Finetune


class TestJointConformance(AlgorithmConformance):
    component = Joint


class TestJointResetConformance(AlgorithmConformance):
    component = Joint
    params = {"reset_each_task": True}
