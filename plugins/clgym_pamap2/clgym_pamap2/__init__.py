"""PAMAP2 (Reiss & Stricker 2012) as a continual-learning benchmark, and the CL-Gym 1D CNN."""

from clgym_pamap2.benchmark import PAMAP2
from clgym_pamap2.cnn1d import CNN1D

__all__ = ["CNN1D", "PAMAP2"]
