"""Toy continual-learning benchmarks for clgym, registered through the ``clgym`` entry point."""

__version__ = "0.1.0"
