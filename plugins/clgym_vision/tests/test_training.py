"""End to end: the plugin's registrations, determinism, and learning on real MNIST when it is present."""

from __future__ import annotations

import torch

from clgym_core.algorithm import Algorithm
from clgym_core.registry import Registry
from clgym_core.trainer import ContinualTrainer
from clgym_vision.backbones import MLP2Layers, ResNet18Reduced
from clgym_vision.instances import RotatedMNIST
from clgym_vision.split import SplitCIFAR10

BENCHMARKS = [
    "rotated_mnist", "permuted_mnist", "split_mnist", "rotated_fashion_mnist", "permuted_fashion_mnist",
    "split_fashion_mnist", "split_cifar10", "split_cifar100",
]


def test_registered_through_the_entry_point():
    registry = Registry(autoload=True)
    components = registry.components("benchmark")
    for name in BENCHMARKS:
        assert name in components and components[name].plugin.distribution == "clgym-vision", name
    backbones = registry.components("backbone")
    assert backbones["mlp2layers"].cls is MLP2Layers and backbones["resnet18_reduced"].cls is ResNet18Reduced
    assert registry.get("benchmark", "RotatedMNIST") is RotatedMNIST
    assert not [p for p in registry.problems() if "clgym-vision" in p]


def _run(benchmark, backbone, seed=0, batch_size=16, lr=0.05):
    algorithm = Algorithm(backbone, benchmark, optimizer={"name": "sgd", "lr": lr, "momentum": 0.8})
    trainer = ContinualTrainer(algorithm, epochs_per_task=1, batch_size=batch_size, device="cpu", seed=seed)
    trainer.fit()
    return trainer.accuracy_matrix


def test_same_seed_same_run(mnist_root):
    root, _ = mnist_root

    def run():
        torch.manual_seed(0)
        benchmark = RotatedMNIST(root=str(root), num_tasks=2, per_task_examples=96)
        return _run(benchmark, MLP2Layers(**MLP2Layers.defaults_from(benchmark)))

    first, second = run(), run()
    assert len(first) == 3 and first == second


def test_resnet_trains_on_split_cifar10_task_incremental(tmp_path, write_cifar):
    write_cifar(tmp_path, classes=10, n_train=60, n_test=20)
    benchmark = SplitCIFAR10(root=str(tmp_path), num_tasks=2, download=False)
    torch.manual_seed(0)
    backbone = ResNet18Reduced(**ResNet18Reduced.defaults_from(benchmark), base_filters=4)
    matrix = _run(benchmark, backbone)
    assert len(matrix) == 3 and all(0.0 <= a <= 100.0 for row in matrix for a in row)


def test_real_mnist_first_task_reaches_plausible_accuracy(real_mnist):
    """A short run (6000 examples, one epoch) on real MNIST learns the first task (89% over 3 seeds)."""
    torch.manual_seed(0)
    benchmark = RotatedMNIST(root=str(real_mnist), num_tasks=1, per_task_examples=6000, download=False)
    train, test = benchmark.load(1)
    assert benchmark.images("train").shape == (60000, 1, 28, 28) and len(test) == 10000
    assert torch.bincount(benchmark.labels("test"), minlength=10).tolist()[:2] == [980, 1135]
    matrix = _run(benchmark, MLP2Layers(), batch_size=32, lr=0.01)
    assert 3.0 <= matrix[0][0] <= 20.0  # untrained: about chance
    assert matrix[1][0] >= 85.0, matrix  # after 188 steps
