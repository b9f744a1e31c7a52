"""The core's conformance kit on every component of the plugin, with synthetic files in the official formats."""

from __future__ import annotations

from typing import Any

import pytest

from clgym_core.testing import BackboneConformance, BenchmarkConformance
from clgym_vision.backbones import MLP2Layers, ResNet18Reduced
from clgym_vision.instances import PermutedFashionMNIST, PermutedMNIST, RotatedFashionMNIST, RotatedMNIST
from clgym_vision.split import SplitCIFAR10, SplitCIFAR100, SplitFashionMNIST, SplitMNIST


class _IdxFiles(BenchmarkConformance):
    __test__ = False
    folder = "MNIST/raw"

    @pytest.fixture(scope="class")
    @classmethod
    def benchmark_params(cls, tmp_path_factory, request) -> dict[str, Any]:
        write = request.getfixturevalue("write_idx_dataset")
        root = tmp_path_factory.mktemp("data")
        write(root, cls.folder, n_train=120, n_test=60)
        return {"root": str(root), "download": False, **cls.params}


class TestRotatedMNIST(_IdxFiles):
    component = RotatedMNIST
    params = {"num_tasks": 3, "per_task_rotation_degrees": 20}


class TestRotatedFashionMNIST(_IdxFiles):
    component = RotatedFashionMNIST
    folder = "FashionMNIST/raw"
    params = {"num_tasks": 2}


class TestPermutedMNIST(_IdxFiles):
    component = PermutedMNIST
    params = {"num_tasks": 3}


class TestPermutedFashionMNIST(_IdxFiles):
    component = PermutedFashionMNIST
    folder = "FashionMNIST/raw"
    params = {"num_tasks": 2}


class TestSplitMNIST(_IdxFiles):
    component = SplitMNIST
    params = {"num_tasks": 3}


class TestSplitMNISTClassIncremental(_IdxFiles):
    component = SplitMNIST
    params = {"num_tasks": 3, "scenario": "class_incremental", "shuffle_classes": True}


class TestSplitFashionMNIST(_IdxFiles):
    component = SplitFashionMNIST
    folder = "FashionMNIST/raw"
    params = {"num_tasks": 2, "class_order": [9, 8, 7, 6]}


class _CifarFiles(BenchmarkConformance):
    __test__ = False
    classes = 10

    @pytest.fixture(scope="class")
    @classmethod
    def benchmark_params(cls, tmp_path_factory, request) -> dict[str, Any]:
        write = request.getfixturevalue("write_cifar")
        root = tmp_path_factory.mktemp("data")
        write(root, classes=cls.classes, n_train=10 * cls.classes, n_test=4 * cls.classes)
        return {"root": str(root), "download": False, **cls.params}


class TestSplitCIFAR10(_CifarFiles):
    component = SplitCIFAR10
    params = {"num_tasks": 3}


class TestSplitCIFAR100(_CifarFiles):
    component = SplitCIFAR100
    classes = 100
    params = {"num_tasks": 3, "scenario": "class_incremental"}


class TestMLP2Layers(BackboneConformance):
    component = MLP2Layers
    params = {"hidden_size": 32}
    input_shape = (1, 28, 28)


class TestResNet18Reduced(BackboneConformance):
    component = ResNet18Reduced
    params = {"base_filters": 6}
    input_shape = (3, 16, 16)
