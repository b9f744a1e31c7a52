"""The clgym conformance kit, run on every component of clgym-toy."""

from __future__ import annotations

import pytest

from clgym_core.testing import BenchmarkConformance, CallbackConformance
from clgym_toy.classification_2d import Toy2DClassification
from clgym_toy.decision_boundary import DecisionBoundary
from clgym_toy.regression_1d import Toy1DRegression


class TestToy2DClassification(BenchmarkConformance):
    component = Toy2DClassification
    params = {"num_tasks": 4, "cluster_size": 30, "test_cluster_size": 20}


class TestToy1DRegression(BenchmarkConformance):
    component = Toy1DRegression
    params = {"num_tasks": 5, "examples_per_task": 40, "test_examples_per_task": 20}


# Without a run directory the callback warns that it draws nothing; the kit checks exactly that case.
@pytest.mark.filterwarnings("ignore:callback decision_boundary. no folder:UserWarning")
class TestDecisionBoundary(CallbackConformance):
    component = DecisionBoundary
    params = {"resolution": 20, "dpi": 30}
    synthetic_params = {"input_size": 2}
