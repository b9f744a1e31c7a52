"""Fixtures: synthetic PAMAP2 trees in tmp_path and a per-test window cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from clgym_pamap2.synthetic import recording, write_dat


@pytest.fixture
def make_dataset(tmp_path: Path):
    """``make_dataset({101: plan, ...}, optional={...})`` writes a PAMAP2_Dataset tree and returns its root."""

    def make(subjects: dict[int, list[tuple[int, int]]], optional: dict[int, list[tuple[int, int]]] | None = None,
             root: Path | None = None) -> Path:
        root = root or tmp_path / "data"
        for subject, plan in subjects.items():
            write_dat(root / "PAMAP2_Dataset" / "Protocol" / f"subject{subject}.dat", recording(plan, seed=subject))
        for subject, plan in (optional or {}).items():
            write_dat(root / "PAMAP2_Dataset" / "Optional" / f"subject{subject}.dat", recording(plan, seed=subject + 50))
        return root

    return make


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "cache")
