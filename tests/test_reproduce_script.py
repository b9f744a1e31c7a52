"""scripts/reproduce.py: its spec grid and its published-number tables stay in step with examples/reproduce/."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_published_row_names_an_existing_spec(reproduce):
    for (table, bench), rows in reproduce.PUBLISHED.items():
        folder = reproduce.SPECS / table / bench
        assert folder.is_dir(), folder
        for stem in rows:
            assert (folder / f"{stem}.yaml").is_file(), f"{table}/{bench}: no spec for published row {stem}"


def test_der_table_publishes_every_seq_mnist_spec(reproduce):
    # The authors' table has a Seq-MNIST number for every method we have a spec for.
    for bench in ("seq_mnist_class_il", "seq_mnist_task_il"):
        stems = {p.stem for p in (reproduce.SPECS / "der_table" / bench).glob("*.yaml")}
        assert stems == set(reproduce.PUBLISHED[("der_table", bench)])


def test_benchmarks_option_restricts_the_grid(reproduce):
    specs = reproduce.grid(["der"], ["der_200"], ["seq_mnist_class_il", "seq_mnist_task_il"])
    assert sorted(p.parent.name for p in specs) == ["seq_mnist_class_il", "seq_mnist_task_il"]
    assert all(p.stem == "der_200" for p in specs)
    everything = reproduce.grid(["der"], ["der_200"])
    assert {p.parent.name for p in everything} == {
        "permuted_mnist", "rotated_mnist", "seq_mnist_class_il", "seq_mnist_task_il"
    }


def test_summary_puts_mean_and_std_of_seeds_beside_the_published_mean(reproduce, tmp_path):
    bench = tmp_path / "der_table" / "seq_mnist_class_il"
    for seed, acc in enumerate([80.0, 82.0, 84.0]):
        run = bench / "der_200" / f"seed{seed}"
        run.mkdir(parents=True)
        matrix = [[0.0, 0.0], [90.0, 0.0], [acc - 10.0, 90.0]]
        (run / "metrics.json").write_text(json.dumps({"average_accuracy": acc, "accuracy_matrix": matrix}))
    text = reproduce.summary(tmp_path, ["der"])
    row = next(line for line in text.splitlines() if line.startswith("| der_200 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "84.5"  # published (means only in the authors' table)
    assert cells[2] == "82.0 ± 2.0"  # ours over three seeds
    assert cells[-1] == "3"
    assert "| er_200 | 80.4 | not run |" in text


@pytest.fixture(scope="module")
def masked():
    spec = importlib.util.spec_from_file_location("der_masked_task_il", ROOT / "scripts" / "der_masked_task_il.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_masked_task_il_scores_only_the_test_tasks_classes(masked):
    """The paper's Task-IL: an example is right when its label wins among its own task's classes."""
    from types import SimpleNamespace

    import torch

    from clgym_core.data import TaskData

    # Two tasks of classes {0, 1} and {2, 3}; the input *is* the logit vector the model returns.
    logits = {
        1: torch.tensor([[0.0, 1.0, 0.0, 5.0], [2.0, 1.0, 9.0, 0.0]]),  # labels 1, 0: Class-IL picks 3 and 2
        2: torch.tensor([[9.0, 0.0, 2.0, 1.0], [7.0, 0.0, 1.0, 0.0]]),  # labels 2, 3: within the task 2 wins twice
    }
    labels = {1: torch.tensor([1, 0]), 2: torch.tensor([2, 3])}
    tests = {t: TaskData.for_task(logits[t], labels[t], t) for t in (1, 2)}
    backbone = torch.nn.Identity()
    trainer = SimpleNamespace(
        backbone=backbone, num_tasks=2, eval_batch_size=1, device=torch.device("cpu"),
        benchmark=SimpleNamespace(load_test=tests.__getitem__),
        algorithm=SimpleNamespace(predict=lambda batch: batch.inputs),
    )
    assert masked.masked_accuracy(trainer) == [100.0, 50.0]


def test_random_angle_runs_use_the_seeds_twenty_angles_and_nearest_rotation(tmp_path):
    from tests.file_module import load_file_module

    script = load_file_module("der_rotated_random_angles", ROOT / "scripts" / "der_rotated_random_angles.py")
    angles = script.task_angles(0)
    assert len(angles) == 20 and all(0 <= a < 180 for a in angles)
    assert angles[:3] == [114.65, 48.56, 7.38]  # the list docs/results.md quotes for seed 0
    assert script.task_angles(1) != angles
    cmd = script.command("er_200", 1, tmp_path)
    sets = [cmd[i + 1] for i, word in enumerate(cmd) if word == "--set"]
    assert sets[:2] == ["seed=1", "benchmark.params.interpolation=nearest"]
    assert sets[2] == "benchmark.params.task_angles=[" + ",".join(f"{a:.2f}" for a in script.task_angles(1)) + "]"
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "er_200" / "seed1")
