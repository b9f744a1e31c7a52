"""The core's conformance kit on every component of clgym-pamap2, with synthetic recordings in the official format."""

from __future__ import annotations

from typing import Any

import pytest

from clgym_core.testing import BackboneConformance, BenchmarkConformance
from clgym_pamap2.benchmark import PAMAP2
from clgym_pamap2.cnn1d import CNN1D
from clgym_pamap2.synthetic import recording, standard_plan, write_dat

SUBJECTS = (101, 102, 103)
ACTIVITIES = (1, 2, 3, 4, 5, 6)


class _SyntheticRecordings(BenchmarkConformance):
    """Three subjects doing six protocol activities for 3 s each, in PAMAP2_Dataset/Protocol/subjectN.dat."""

    __test__ = False
    component = PAMAP2

    @pytest.fixture(scope="class")
    @classmethod
    def benchmark_params(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        root = tmp_path_factory.mktemp("pamap2")
        for subject in SUBJECTS:
            path = root / "PAMAP2_Dataset" / "Protocol" / f"subject{subject}.dat"
            write_dat(path, recording(standard_plan(ACTIVITIES, 3.0), seed=subject))
        return {"root": str(root), "cache_dir": str(root / "cache"), "subjects": list(SUBJECTS),
                "window_length": 32, **cls.params}


class TestPAMAP2NewInstances(_SyntheticRecordings):
    params = {"activities": list(ACTIVITIES)}


class TestPAMAP2NewClasses(_SyntheticRecordings):
    params = {"scenario": "new_classes", "activities": list(ACTIVITIES), "classes_per_task": 2}


class TestPAMAP2TaskIncremental(_SyntheticRecordings):
    params = {"scenario": "new_classes", "activities": list(ACTIVITIES), "classes_per_task": 2, "heads": "multi",
              "normalize": "per_task", "fill": "linear"}


class TestCNN1D(BackboneConformance):
    component = CNN1D
    params = {"conv_channels": [8, 8], "hidden_size": 16}
    input_shape = (6, 32)  # channels, window length
