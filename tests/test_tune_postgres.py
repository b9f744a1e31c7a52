"""Several machines on one study: two `clgym tune` processes share a study on a real PostgreSQL server
(a throw-away one started by the fixture); no trial runs twice and the total is what was asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres_support import postgres_server, skip_reason
from tests.sweep_support import BASE, write

REASON = skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def test_two_processes_share_one_study_without_running_a_trial_twice(pg_url, tmp_path) -> None:
    import optuna

    path = write(tmp_path / "tune.yaml", BASE + (
        "tune:\n"
        "  space:\n"
        "    optimizer.lr: {type: float, low: 0.01, high: 0.5, log: true}\n"
        "  sampler: random\n"
        "  study_name: shared\n"
    ))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # As on two machines: the same command, each with its own DIR, one database.
    procs = [
        subprocess.Popen([sys.executable, "-m", "clgym_core", "tune", str(path), "--out", str(tmp_path / name),
                          "--storage", pg_url, "--trials", "6", "--executor", "inline", "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("machine_a", "machine_b")
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=pg_url.replace("postgresql://", "postgresql+psycopg2://"))
    trials = study.get_trials()
    assert len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    dirs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(dirs)) == 6 and all((d / "metrics.json").is_file() for d in dirs)
    on_disk = sorted(p.name for m in ("machine_a", "machine_b") for p in (tmp_path / m / "trials").iterdir())
    assert on_disk == sorted(d.name for d in dirs)  # each trial ran in exactly one place
    assert {d.parent.parent.name for d in dirs} == {"machine_a", "machine_b"}  # both did work


def test_a_rerun_on_the_shared_study_adds_nothing(pg_url, tmp_path) -> None:
    from clgym_core.sweeps import tune

    path = write(tmp_path / "tune.yaml", BASE + "tune:\n  space: {optimizer.lr: [0.1, 0.2]}\n  study_name: rerun\n")
    first = tune(path, tmp_path / "a", trials=2, storage=pg_url, executor="inline")
    again = tune(path, tmp_path / "b", trials=2, storage=pg_url, executor="inline")
    assert len(first["trials"]) == len(again["trials"]) == 2
    assert not (tmp_path / "b" / "trials").exists()
