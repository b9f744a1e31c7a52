"""Rotated and Permuted MNIST: the task transforms, the shared head, seeds."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from clgym_core.errors import SpecError
from clgym_vision.instances import PermutedFashionMNIST, PermutedMNIST, RotatedFashionMNIST, RotatedMNIST


def test_rotated_task_t_is_torchvision_rotation_by_t_minus_1_steps(mnist_root):
    root, arrays = mnist_root
    original = torch.from_numpy(arrays["train_x"]).unsqueeze(1)
    original_test = torch.from_numpy(arrays["test_x"]).unsqueeze(1)
    benchmark = RotatedMNIST(root=str(root), num_tasks=4, per_task_rotation_degrees=15, download=False)
    for task in range(1, 5):
        angle = (task - 1) * 15.0
        train, test = benchmark.load(task)
        assert train.inputs.dtype == torch.uint8 and train.inputs.shape == (200, 1, 28, 28)
        for i in (0, 57, 199):
            expected = TF.rotate(original[i], angle, interpolation=InterpolationMode.BILINEAR)
            assert torch.equal(train.inputs[i], expected), (task, i)
        assert torch.equal(test.inputs[3], TF.rotate(original_test[3], angle, interpolation=InterpolationMode.BILINEAR))
        assert torch.equal(train.targets, torch.from_numpy(arrays["train_y"]).long())
        assert torch.all(train.task_ids == task)
    assert torch.equal(benchmark.load_train(1).inputs, original)
    assert not torch.equal(benchmark.load_train(2).inputs, benchmark.load_train(3).inputs)


def test_rotated_defaults_and_head(mnist_root):
    root, _ = mnist_root
    benchmark = RotatedMNIST(root=str(root), num_tasks=6)
    assert benchmark.rotation_degrees == 30.0  # 180 / num_tasks
    assert [benchmark.task_angle(t) for t in (1, 2, 6)] == [0.0, 30.0, 150.0]
    assert (benchmark.num_heads, benchmark.head_size, benchmark.input_shape) == (1, 10, (1, 28, 28))
    assert benchmark.scenario == "new_instances"


def test_rotated_nearest_option(mnist_root):
    root, arrays = mnist_root
    original = torch.from_numpy(arrays["train_x"]).unsqueeze(1)
    benchmark = RotatedMNIST(root=str(root), num_tasks=2, per_task_rotation_degrees=33, interpolation="nearest")
    expected = TF.rotate(original[:10], 33.0, interpolation=InterpolationMode.NEAREST)
    assert torch.equal(benchmark.load_train(2).inputs[:10], expected)


def test_rotated_task_angles_give_each_task_its_own_rotation(mnist_root):
    root, arrays = mnist_root
    original = torch.from_numpy(arrays["train_x"]).unsqueeze(1)
    angles = [120.0, 7.5, 64.0]  # in any order, as the DER paper's random angles come
    benchmark = RotatedMNIST(root=str(root), num_tasks=3, task_angles=angles, interpolation="nearest")
    for task, angle in enumerate(angles, start=1):
        assert benchmark.task_angle(task) == angle
        expected = TF.rotate(original[:5], angle, interpolation=InterpolationMode.NEAREST)
        assert torch.equal(benchmark.load_train(task).inputs[:5], expected), task


def test_rotated_task_angles_must_fit_the_stream():
    with pytest.raises(SpecError, match="task_angles: 2 angles given, num_tasks is 3"):
        RotatedMNIST(num_tasks=3, task_angles=[0.0, 10.0])
    with pytest.raises(SpecError, match="not both"):
        RotatedMNIST(num_tasks=2, task_angles=[0.0, 10.0], per_task_rotation_degrees=5)


def test_rotated_batches_are_normalised_floats(mnist_root):
    root, arrays = mnist_root
    raw = torch.from_numpy(arrays["train_x"][:8]).float().unsqueeze(1)
    standardized = RotatedMNIST(root=str(root), num_tasks=1).load_train(1).batch(slice(0, 8))
    assert standardized.inputs.dtype == torch.float32
    assert torch.allclose(standardized.inputs, (raw / 255 - 0.1307) / 0.3081, atol=1e-5)
    scaled = RotatedMNIST(root=str(root), num_tasks=1, normalization="scale").load_train(1).batch(slice(0, 8))
    assert torch.allclose(scaled.inputs, raw / 255)


def test_permuted_task1_identity_later_tasks_bijections(mnist_root):
    root, arrays = mnist_root
    original = torch.from_numpy(arrays["train_x"]).unsqueeze(1)
    benchmark = PermutedMNIST(root=str(root), num_tasks=4, download=False)
    assert torch.equal(benchmark.load_train(1).inputs, original)
    assert torch.equal(benchmark.permutation(1), torch.arange(784))
    perms = [benchmark.permutation(t) for t in (2, 3, 4)]
    for perm in perms:
        assert torch.equal(perm.sort().values, torch.arange(784))  # a bijection of the 784 pixels
        assert (perm != torch.arange(784)).sum() > 700  # and a real shuffle
    assert not torch.equal(perms[0], perms[1]) and not torch.equal(perms[1], perms[2])
    for task, perm in zip((2, 3, 4), perms):
        train, test = benchmark.load(task)
        assert torch.equal(train.inputs.view(200, 784), original.view(200, 784)[:, perm])
        assert torch.equal(test.inputs.view(100, 784), torch.from_numpy(arrays["test_x"]).view(100, 784)[:, perm])
        assert torch.equal(train.targets, torch.from_numpy(arrays["train_y"]).long())


def test_permutations_follow_the_seed(mnist_root):
    root, _ = mnist_root
    a = PermutedMNIST(root=str(root), num_tasks=3, seed=7)
    b = PermutedMNIST(root=str(root), num_tasks=3, seed=7)
    c = PermutedMNIST(root=str(root), num_tasks=3, seed=8)
    for task in (2, 3):
        assert torch.equal(a.permutation(task), b.permutation(task))
        assert not torch.equal(a.permutation(task), c.permutation(task))
    assert torch.equal(a.load_train(3).inputs, b.load_train(3).inputs)
    # A task's permutation does not depend on which tasks were drawn before it.
    d = PermutedMNIST(root=str(root), num_tasks=3, seed=7)
    assert torch.equal(d.permutation(3), a.permutation(3))


def test_fashion_variants_read_their_own_folder(tmp_path, write_idx_dataset):
    arrays = write_idx_dataset(tmp_path, "FashionMNIST/raw", seed=5)
    rotated = RotatedFashionMNIST(root=str(tmp_path), num_tasks=2, per_task_rotation_degrees=90, normalization="scale")
    permuted = PermutedFashionMNIST(root=str(tmp_path), num_tasks=2)
    original = torch.from_numpy(arrays["train_x"]).unsqueeze(1)
    assert torch.equal(rotated.load_train(2).inputs, torch.rot90(original, 1, dims=(-2, -1)))
    assert torch.equal(permuted.load_train(1).inputs, original)
    assert rotated.transform.mean is None and permuted.transform.mean == (0.2860,)


def test_bad_params_are_spec_errors():
    with pytest.raises(SpecError, match="rotated_mnist.params.interpolation"):
        RotatedMNIST(interpolation="bicubic")
    with pytest.raises(SpecError, match="permuted_mnist.params.rotation: unknown parameter"):
        PermutedMNIST(rotation=3)
