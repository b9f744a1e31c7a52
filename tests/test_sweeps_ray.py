"""The Ray executor: a local Ray instance started in the test runs a 4-point sweep whose results equal
those of the process executor for the same seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clgym_core.sweeps import sweep
from tests.sweep_support import BASE, write

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'clgym-core[ray]')")
pytestmark = pytest.mark.ray


def matrices(out: Path) -> dict[str, list]:
    return {p.parent.name: json.loads(p.read_text())["accuracy_matrix"] for p in sorted(out.glob("*/metrics.json"))}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_sweep_equals_the_process_executor(local_ray, tmp_path) -> None:
    path = write(tmp_path / "s.yaml", BASE + "sweep:\n  seed: [0, 1]\n  optimizer.lr: [0.1, 0.05]\n")
    on_ray = sweep(path, tmp_path / "ray", executor="ray")
    assert list(on_ray["status"]) == ["done"] * 4
    sweep(path, tmp_path / "process", executor="process", workers=2)
    assert matrices(tmp_path / "ray") == matrices(tmp_path / "process")
    assert len(matrices(tmp_path / "ray")) == 4


def test_ray_runs_tuning_workers(local_ray, tmp_path) -> None:
    from clgym_core.sweeps import tune

    path = write(tmp_path / "t.yaml", BASE + "tune:\n  space: {optimizer.lr: [0.1, 0.2]}\n  sampler: grid\n")
    result = tune(path, tmp_path / "study", workers=2, executor="ray")
    assert sorted(result["trials"]["trial"]) == [0, 1]
    assert set(result["trials"]["state"]) == {"complete"}
