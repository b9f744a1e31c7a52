"""Stable SGD: the per-task learning-rate schedule, dropout on the backbone, and less forgetting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clgym_core.backbone import Backbone
from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance

from clgym_algos.stable_sgd import StableSGD

AUTHORS_OPTIMIZER = {"name": "sgd", "lr": 0.1, "momentum": 0.8}


def test_learning_rate_decays_per_task_down_to_the_bound(blobs, backbone_for):
    bench = blobs(num_tasks=12)
    alg = StableSGD(backbone_for(bench), bench, {"lr_decay": 0.5, "min_lr": 0.001},
                    optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.8})
    expected = [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125, 0.0015625] + [0.001] * 5
    for task, lr in enumerate(expected, start=1):
        assert alg.learning_rate(task) == pytest.approx(lr, rel=1e-12)
        optimizer = alg.prepare_optimizer(task)
        assert isinstance(optimizer, torch.optim.SGD)
        group = optimizer.param_groups[0]
        assert group["lr"] == pytest.approx(lr, rel=1e-12) and group["momentum"] == 0.8
        assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in alg.backbone.parameters())


def test_sets_dropout_on_every_dropout_layer(blobs, backbone_for):
    bench = blobs()
    backbone = backbone_for(bench, dropout=0.0)
    StableSGD(backbone, bench, {"dropout": 0.3}, optimizer=AUTHORS_OPTIMIZER)
    rates = [m.p for m in backbone.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.3, 0.3]


class _NoDropout(Backbone):
    name = "no_dropout"

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x, task_ids=None):
        return self.linear(x)


def test_a_backbone_without_dropout_is_an_error(blobs):
    with pytest.raises(SpecError, match="no_dropout has no dropout layer") as info:
        StableSGD(_NoDropout(), blobs())
    assert "\n" not in str(info.value)
    StableSGD(_NoDropout(), blobs(), {"dropout": 0.0}, optimizer=AUTHORS_OPTIMIZER)  # no dropout asked for: fine


def test_the_loss_is_plain_cross_entropy(blobs, backbone_for):
    bench = blobs()
    alg = StableSGD(backbone_for(bench), bench, optimizer=AUTHORS_OPTIMIZER)
    batch = bench.load_train(1).batch(slice(0, 10))
    alg.backbone.eval()
    expected = torch.nn.functional.cross_entropy(alg.backbone(batch.inputs), batch.targets)
    torch.testing.assert_close(alg.training_loss(batch), expected)
    assert alg.state_dict() == {}


def test_default_dropout_is_the_authors_corrected_025(blobs, backbone_for):
    bench = blobs()
    backbone = backbone_for(bench, dropout=0.0)
    StableSGD(backbone, bench, optimizer=AUTHORS_OPTIMIZER)
    assert [m.p for m in backbone.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25]


def test_warns_in_one_line_when_the_optimizer_is_left_at_its_defaults(blobs, backbone_for):
    bench = blobs()
    with pytest.warns(UserWarning, match="stable_sgd: optimizer left at its defaults") as record:
        StableSGD(backbone_for(bench), bench)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a chosen optimizer: no warning
        StableSGD(backbone_for(bench), bench, optimizer=AUTHORS_OPTIMIZER)


def test_forgets_less_than_finetune(check_forgets_less):
    check_forgets_less(StableSGD, {"dropout": 0.2, "lr_decay": 0.3}, dropout=0.2)


class TestStableSGDConformance(AlgorithmConformance):
    component = StableSGD
    params = {"dropout": 0.1, "lr_decay": 0.8}
    backbone_params = {"dropout": 0.1}
