from __future__ import annotations

import pytest
import torch

from clgym_core.errors import SpecError
from clgym_pamap2 import CNN1D, PAMAP2


def test_default_is_the_cl_gym_network():
    net = CNN1D()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(18, 64, 5), (64, 64, 5)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64 * 62, 200), (200, 12)]
    assert net(torch.randn(3, 18, 256)).shape == (3, 12)


def test_sizes_default_from_the_benchmark():
    bench = PAMAP2(root="/x", channels=["gyro", "heart_rate"], window_length=100, scenario="new_classes",
                   heads="multi", classes_per_task=3)
    values = CNN1D.defaults_from(bench)
    assert values == {"input_channels": 10, "window_length": 100, "output_size": 3, "num_heads": 4}
    net = CNN1D(**values)
    x = torch.randn(5, 10, 100)
    task_ids = torch.tensor([1, 2, 3, 4, 1])
    assert net(x, task_ids).shape == (5, 3)


def test_heads_are_chosen_per_example():
    torch.manual_seed(0)
    net = CNN1D(input_channels=2, window_length=20, output_size=3, num_heads=2, conv_channels=[4])
    x = torch.randn(2, 2, 20)
    both = net(x, torch.tensor([1, 2]))
    assert torch.allclose(both[0], net(x[:1], torch.tensor([1]))[0])
    assert torch.allclose(both[1], net(x[1:], torch.tensor([2]))[0])
    assert not torch.allclose(net(x[:1], torch.tensor([2])), both[:1])
    with pytest.raises(ValueError, match="needs task_ids"):
        net(x)


def test_dropout_is_an_option_that_set_dropout_reaches():
    net = CNN1D(dropout=0.3)
    assert net.set_dropout(0.1) == 1
    net.train()
    x = torch.randn(4, 18, 256)
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_too_short_window_is_a_spec_error():
    with pytest.raises(SpecError, match=r"cnn1d.params.window_length: 10 samples are too short"):
        CNN1D(window_length=10)
