"""Naive sequential training."""

from __future__ import annotations

from clgym_core.algorithm import Algorithm


class Finetune(Algorithm):
    """Naive sequential fine-tuning on each task in turn: the lower bound.

    Nothing protects earlier tasks: each task starts from the previous weights
    with a fresh optimizer and trains on its own data only (the "naive" /
    "SGD" baseline of the GEM, A-GEM and Stable SGD papers).
    """

    name = "finetune"
