"""The conformance kit, run on the components that ship with clgym-core."""

from __future__ import annotations

import pytest

from clgym_core.backbone import MLP
from clgym_core.progress import ProgressBar
from clgym_core.loggers import CSVLogger, JSONLinesLogger
from clgym_core.testing import BackboneConformance, BenchmarkConformance, CallbackConformance, SyntheticBlobs


class TestMLP(BackboneConformance):
    component = MLP
    params = {"hidden_sizes": [16, 16], "dropout": 0.1}


class TestSyntheticBlobs(BenchmarkConformance):
    component = SyntheticBlobs
    params = {"num_tasks": 3, "classes_per_task": 3}


class TestProgressBar(CallbackConformance):
    component = ProgressBar
    params = {}


# Without a run directory a file logger warns that it logs nothing; the kit checks exactly that case.
@pytest.mark.filterwarnings("ignore:callback csv_logger. no folder:UserWarning")
class TestCSVLogger(CallbackConformance):
    component = CSVLogger
    params = {}


@pytest.mark.filterwarnings("ignore:callback jsonl_logger. no folder:UserWarning")
class TestJSONLinesLogger(CallbackConformance):
    component = JSONLinesLogger
    params = {}
