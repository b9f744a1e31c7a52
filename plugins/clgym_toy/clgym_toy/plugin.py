"""Entry point of clgym-toy: the benchmarks and the callback it registers."""

from __future__ import annotations

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_benchmarks() -> list[type]:
    from clgym_toy.classification_2d import Toy2DClassification
    from clgym_toy.regression_1d import Toy1DRegression

    return [Toy2DClassification, Toy1DRegression]


@hookimpl
def clgym_register_callbacks() -> list[type]:
    from clgym_toy.decision_boundary import DecisionBoundary

    return [DecisionBoundary]
