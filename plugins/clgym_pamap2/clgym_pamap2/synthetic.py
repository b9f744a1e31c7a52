"""Synthetic PAMAP2 recordings written in the official format, for tests and demos.

The files look like the real ones: 54 space-separated columns, ``NaN`` for
missing values, timestamps 10 ms apart, heart rate on every 11th line only (the
real monitor runs at ~9 Hz), constant orientation columns, and dropped
wireless packets that blank a whole IMU for a few samples. The activities are
separable on purpose: each has its own posture (a mean per axis, shared by all
subjects) and moves the accelerometers and gyroscopes at its own frequency and
amplitude. The signals are not realistic; only the format is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clgym_pamap2.dataset import IMU_FIRST_COLUMN, OPTIONAL_ACTIVITIES, PROTOCOL_ACTIVITIES

ORDER = PROTOCOL_ACTIVITIES + OPTIONAL_ACTIVITIES
#: Posture: a mean offset per activity and sensor axis, shared by all subjects (like gravity's direction).
POSTURE = 2.0 * np.random.default_rng(1234).standard_normal((len(ORDER), 3, 12))


def recording(plan: list[tuple[int, int]], seed: int = 0, start: float = 5.0, gaps: int = 3) -> np.ndarray:
    """Rows ``[n, 54]`` for ``plan`` = [(activity id, rows), ...] at 100 Hz, continuous time."""
    rng = np.random.default_rng(seed)
    acts = np.concatenate([np.full(n, a, dtype=np.float64) for a, n in plan])
    n = len(acts)
    t = start + np.arange(n) / 100.0
    data = np.full((n, 54), np.nan)
    data[:, 0] = np.round(t, 2)
    data[:, 1] = acts
    data[::11, 2] = 80 + 20 * rng.random(len(data[::11]))
    k = np.array([ORDER.index(int(a)) if a else 0 for a in acts], dtype=np.float64)
    freq = (1.0 + 0.6 * k)[:, None]
    amp = (1.0 + 0.5 * k)[:, None]
    for i, imu in enumerate(("hand", "chest", "ankle")):
        c = IMU_FIRST_COLUMN[imu]
        phases = rng.random(12)[None, :] * 2 * np.pi + i
        data[:, c] = 30.0 + i  # temperature
        wave = amp * np.sin(2 * np.pi * freq * t[:, None] + phases)
        posture = np.where(acts[:, None] > 0, POSTURE[k.astype(np.int64), i], 0.0)
        data[:, c + 1: c + 13] = posture + wave + 0.2 * rng.standard_normal((n, 12))
        data[:, c + 13: c + 17] = (1.0, 0.0, 0.0, 0.0)  # orientation: invalid, constant
    for _ in range(gaps):  # dropped packets: a whole IMU missing for a few samples
        imu = IMU_FIRST_COLUMN[("hand", "chest", "ankle")[int(rng.integers(3))]]
        at = int(rng.integers(1, max(2, n - 10)))
        data[at: at + int(rng.integers(1, 6)), imu: imu + 17] = np.nan
    return data


def write_dat(path: Path, data: np.ndarray) -> Path:
    """Write rows the way the official files are written: ``8.38 0 104 30 2.37223 ...``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(data[:, 2:])
    frame.insert(0, "activity", data[:, 1].astype(np.int64))
    frame.insert(0, "time", [f"{v:.2f}" for v in data[:, 0]])
    frame.to_csv(path, sep=" ", header=False, index=False, na_rep="NaN", float_format="%.6g", lineterminator="\n")
    return path


def standard_plan(acts: tuple[int, ...], seconds: float) -> list[tuple[int, int]]:
    """Transient, then each activity for ``seconds``, with transients between (as in the protocol)."""
    plan = [(0, 150)]
    for a in acts:
        plan += [(a, int(seconds * 100)), (0, 120)]
    return plan
