"""Shared by the sweep and tune tests: small sweep files on the toy benchmark (installed plugins,
so that spawned worker processes find the same components)."""

from __future__ import annotations

from pathlib import Path

BASE = (
    "benchmark: {name: toy_2d_classification, params: {num_tasks: 2, cluster_size: 40, test_cluster_size: 40}}\n"
    "backbone: {name: mlp, params: {hidden_sizes: [16]}}\n"
    "algorithm: finetune\n"
    "optimizer: {name: sgd, lr: 0.1}\n"
    "trainer: {epochs_per_task: 2, batch_size: 32, device: cpu, num_threads: 1}\n"
    "seed: 0\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to show nothing was lost or changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
