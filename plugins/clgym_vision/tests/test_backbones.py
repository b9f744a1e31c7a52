"""MLP2Layers and the reduced ResNet-18: shapes, parameter counts, heads, batch-norm modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clgym_core.errors import SpecError
from clgym_vision.backbones import MLP2Layers, ResNet18Reduced
from clgym_vision.split import SplitCIFAR100, SplitMNIST


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_mlp2layers_default_is_784_256_256_10():
    net = MLP2Layers()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 256), (256, 256), (256, 10)]
    assert _count(net) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    out = net(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)


def test_mlp2layers_dropout_and_width():
    net = MLP2Layers(hidden_size=100, dropout=0.5)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    net.train()
    x = torch.randn(64, 784)
    assert not torch.equal(net(x), net(x))  # dropout is active in training
    net.eval()
    assert torch.equal(net(x), net(x))
    with pytest.raises(SpecError, match="mlp2layers.params.hidden_sizes: unknown parameter"):
        MLP2Layers(hidden_sizes=[10, 10])


def test_mlp2layers_defaults_from_a_task_incremental_benchmark():
    benchmark = SplitMNIST(num_tasks=5)
    values = MLP2Layers.defaults_from(benchmark)
    assert values == {"input_size": 784, "output_size": 2, "num_heads": 5}
    net = MLP2Layers(**values)
    task_ids = torch.tensor([1, 5, 3])
    out = net(torch.randn(3, 1, 28, 28), task_ids)
    assert out.shape == (3, 2)
    # Each example is read from its own task's head.
    features = net.features(torch.zeros(3, 1, 28, 28))
    full = net.head.linear(features).view(3, 5, 2)
    assert torch.allclose(net(torch.zeros(3, 1, 28, 28), task_ids), full[torch.arange(3), task_ids - 1])


def _reduced_resnet_parameter_count(nf: int, in_channels: int, outputs: int) -> int:
    """GEM's reduced ResNet-18 by hand: conv weights, 2 BN parameters per channel, the linear layer."""
    total = in_channels * nf * 9 + 2 * nf  # stem conv + bn
    in_planes = nf
    for planes, stride in ((nf, 1), (2 * nf, 2), (4 * nf, 2), (8 * nf, 2)):
        for block in range(2):
            first_in = in_planes if block == 0 else planes
            total += first_in * planes * 9 + 2 * planes + planes * planes * 9 + 2 * planes
            if block == 0 and (stride != 1 or in_planes != planes):
                total += in_planes * planes + 2 * planes  # 1x1 projection + bn
        in_planes = planes
    return total + 8 * nf * outputs + outputs


def test_resnet18_reduced_matches_gem_architecture():
    net = ResNet18Reduced(output_size=100)
    assert _count(net) == _reduced_resnet_parameter_count(20, 3, 100)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3  # stem, 8 blocks x 2, three projections
    assert sorted({c.out_channels for c in convs}) == [20, 40, 80, 160]
    out = net(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 100)
    assert net.features(torch.randn(2, 3, 32, 32)).shape == (2, 160)


def test_resnet18_reduced_multi_head_and_mnist_input():
    benchmark = SplitCIFAR100()
    net = ResNet18Reduced(**ResNet18Reduced.defaults_from(benchmark))
    assert (net.params.input_channels, net.params.output_size, net.params.num_heads) == (3, 5, 20)
    assert net(torch.randn(3, 3, 32, 32), torch.tensor([1, 7, 20])).shape == (3, 5)
    mnist_net = ResNet18Reduced(**ResNet18Reduced.defaults_from(SplitMNIST()))
    assert mnist_net.params.input_channels == 1
    assert mnist_net(torch.randn(2, 1, 28, 28), torch.tensor([1, 2])).shape == (2, 2)
    with pytest.raises(ValueError, match=r"expects images \[N, C, H, W\]"):
        mnist_net(torch.randn(2, 784), torch.tensor([1, 2]))


def test_resnet18_reduced_batch_norm_modes():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    running = ResNet18Reduced(batch_norm="running", base_filters=6)
    batch = ResNet18Reduced(batch_norm="batch", base_filters=6)
    none = ResNet18Reduced(batch_norm="none", base_filters=6)
    assert all(m.track_running_stats for m in running.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(not m.track_running_stats for m in batch.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in none.modules())
    for net in (running, batch, none):
        net.eval()
    # In evaluation, "running" normalises each example alone (running averages) while "batch" uses the
    # statistics of whatever batch it sees: an example's output then depends on its batch mates.
    assert torch.allclose(running(x)[:2], running(x[:2]), atol=1e-5)
    assert not torch.allclose(batch(x)[:2], batch(x[:2]), atol=1e-3)
    assert torch.allclose(none(x)[:2], none(x[:2]), atol=1e-5)
    with pytest.raises(SpecError, match="resnet18_reduced.params.batch_norm"):
        ResNet18Reduced(batch_norm="group")


def test_resnet18_reduced_dropout_acts_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 16, 16)
    plain = ResNet18Reduced(base_filters=6)
    dropped = ResNet18Reduced(base_filters=6, dropout=0.3)
    dropped.load_state_dict(plain.state_dict())  # same weights: dropout has none
    assert [m.p for m in dropped.modules() if isinstance(m, nn.Dropout)] == [0.3] * 16  # two per block
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x))  # evaluation: no dropout
    plain.train(), dropped.train()
    torch.manual_seed(1)
    first = dropped(x)
    assert not torch.allclose(first, plain(x), atol=1e-3)  # training: dropout changes the outputs
    assert not torch.allclose(first, dropped(x), atol=1e-3)  # and draws a new mask each pass
    assert dropped.set_dropout(0.1) == 16  # stable_sgd can set the rate


def test_mlp2layers_xavier_init_bounds_and_zero_biases():
    torch.manual_seed(0)
    net = MLP2Layers(hidden_size=100, output_size=2, num_heads=5, init="xavier")
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    # (fan_in, fan_out) per layer; each of the 5 heads counts as its own 100 -> 2 layer.
    for layer, (fan_in, fan_out) in zip(linears, [(784, 100), (100, 100), (100, 2)]):
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        w = layer.weight
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.95 * bound  # uniform on the whole interval, not PyTorch's narrower default
        assert torch.all(layer.bias == 0)
    default = MLP2Layers(hidden_size=100)
    assert default.features[1].weight.abs().max() <= 1 / 784**0.5  # PyTorch's default is kept unless asked


def test_mlp2layers_truncated_normal_init_is_the_agem_codes():
    torch.manual_seed(0)
    net = MLP2Layers(init="truncated_normal")
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        w = layer.weight
        assert w.abs().max() <= 0.2  # redrawn beyond 2 std of 0.1
        assert w.abs().max() > 0.19
        # the std of N(0, 0.1^2) cut at +-2 std is 0.1 * 0.8796
        assert abs(w.std().item() - 0.08796) < 0.004
        assert torch.all(layer.bias == 0.1)


def test_mlp2layers_dropout_at_eval_stays_on_after_eval():
    x = torch.rand(64, 784)
    torch.manual_seed(0)
    kept = MLP2Layers(dropout=0.25, dropout_at_eval=True).eval()
    torch.manual_seed(0)
    usual = MLP2Layers(dropout=0.25).eval()
    with torch.no_grad():
        assert torch.equal(usual(x), usual(x))  # the default: no dropout in eval mode
        hidden = kept.features[:3](x)
        dropped = kept.features[3](hidden)
        zeroed = ((dropped == 0) & (hidden != 0)).float().sum() / (hidden != 0).float().sum()
        assert 0.2 < zeroed < 0.3  # a quarter of the units dropped in eval mode
        survivors = dropped != 0
        assert torch.allclose(dropped[survivors], hidden[survivors] / 0.75)  # inverted scaling, as in training
        assert not torch.equal(kept(x), kept(x))  # a fresh mask on every evaluation pass
    assert kept.set_dropout(0.5) == 2 and kept.features[3].p == 0.5  # stable_sgd can still set the rate
    without = MLP2Layers(dropout=0.0, dropout_at_eval=True).eval()
    with torch.no_grad():
        assert torch.equal(without(x), without(x))
