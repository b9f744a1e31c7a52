"""Test-wide settings: plain output from Typer/rich, one torch thread; real data comes through CLGYM_DATA."""

from __future__ import annotations

import os

os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "200")
# Tests train tiny models: one thread is fastest and steadiest (also for the subprocesses they start).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
