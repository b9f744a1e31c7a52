"""Test-wide settings: plain output from Typer/rich, a per-test cache dir, real data found through CLGYM_DATA."""

from __future__ import annotations

import os

os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "200")
