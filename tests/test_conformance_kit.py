"""The conformance kit catches broken components, passes good ones, and is collected only through subclasses.

Each broken subject below breaks exactly one contract. The kit runs on all of
them in one pytest session in a subprocess (a fresh interpreter: in-process
pytest runs drop the torch modules they import, which torch cannot survive),
and every subject must fail exactly the checks that guard the broken contract,
and pass the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

SUBJECTS = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    import torch
    from pydantic import BaseModel, ConfigDict, Field
    from torch import nn

    from clgym_core.algorithm import Algorithm
    from clgym_core.backbone import MLP, Backbone, MultiHead
    from clgym_core.callback import Callback
    from clgym_core.component import Params
    from clgym_core.data import TaskData
    from clgym_core.testing import SyntheticBlobs


    # ---- algorithms ----------------------------------------------------------------------------
    class AnchorParams(Params):
        strength: float = Field(0.5, ge=0, description="Pull towards the weights after the previous task.")


    class Anchor(Algorithm):
        """Sequential training with an L2 pull towards the weights after the previous task."""

        name = "anchor"
        Params = AnchorParams

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.anchor = None

        def training_loss(self, batch):
            loss = super().training_loss(batch)
            if self.anchor is not None:
                flat = torch.cat([p.reshape(-1) for p in self.backbone.parameters()])
                loss = loss + self.params.strength * (flat - self.anchor).pow(2).sum()
            return loss

        def train_task_end(self, task):
            self.anchor = torch.cat([p.detach().reshape(-1) for p in self.backbone.parameters()]).clone()

        def state_dict(self):
            return {} if self.anchor is None else {"anchor": self.anchor}

        def load_state_dict(self, state):
            self.anchor = state.get("anchor")


    class ForgetfulAnchor(Anchor):
        """Keeps its anchor across tasks but leaves it out of state_dict()."""

        name = "forgetful_anchor"

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass


    class UnsafeStateAnchor(Anchor):
        """Puts a Python object that torch.load(weights_only=True) refuses into its state."""

        name = "unsafe_state_anchor"

        def state_dict(self):
            return {"anchor": self.anchor, "path": Path("/tmp")}

        def load_state_dict(self, state):
            self.anchor = state.get("anchor")


    class NoStep(Algorithm):
        """Computes the loss and its gradient but never steps the optimizer."""

        name = "no_step"

        def train_step(self, batch, optimizer):
            optimizer.zero_grad()
            loss = self.training_loss(batch)
            loss.backward()
            return loss.detach()


    class Unseeded(Algorithm):
        """Takes its learning rate from the operating system's entropy pool."""

        name = "unseeded"

        def prepare_optimizer(self, task):
            optimizer = super().prepare_optimizer(task)
            for group in optimizer.param_groups:
                group["lr"] *= 0.5 + os.urandom(1)[0] / 255
            return optimizer


    class LooseParams(BaseModel):
        model_config = ConfigDict(extra="forbid")
        strength: float = 1.0


    class LooseParamsAlgorithm(Algorithm):
        """Params is a plain pydantic model: no description, not clgym's Params base."""

        name = "loose_params"
        Params = LooseParams


    class Undocumented(Algorithm):
        name = "undocumented"


    # ---- benchmarks ----------------------------------------------------------------------------
    class MemoryFromTest(SyntheticBlobs):
        """Draws episodic memory from the test split (a bug of the original CL-Gym)."""

        name = "memory_from_test"

        def load_memory(self, task):
            if not self.params.per_task_memory_examples:
                return super().load_memory(task)
            self.check_task(task)
            test = self.load_test(task)
            return test.subset(torch.arange(self.params.per_task_memory_examples))


    class UnbalancedMemory(SyntheticBlobs):
        """Fills memory with the first examples of class 0 only."""

        name = "unbalanced_memory"

        def load_memory(self, task):
            if not self.params.per_task_memory_examples:
                return super().load_memory(task)
            train = self.load_train(self.check_task(task))
            zeros = torch.nonzero(train.targets == 0).flatten()
            return train.subset(zeros[: self.params.per_task_memory_examples])


    class ZeroBasedTaskIds(SyntheticBlobs):
        """Numbers tasks from 0 in the task id tensor."""

        name = "zero_based_task_ids"

        def build_task(self, task, split):
            data = super().build_task(task, split)
            return TaskData(data.inputs, data.targets, data.task_ids - 1)


    class EagerLoading(SyntheticBlobs):
        """Reads its data in the constructor, so validating a spec loads the dataset."""

        name = "eager_loading"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ensure_prepared()


    class LastTaskJoint(SyntheticBlobs):
        """load_joint returns only the last task."""

        name = "last_task_joint"

        def load_joint(self, task):
            return self.load_train(self.check_task(task))


    class NoRangeCheck(SyntheticBlobs):
        """Accepts any task number (task 0 silently wraps to the last task)."""

        name = "no_range_check"

        def check_task(self, task):
            return int(task)


    # ---- backbones -----------------------------------------------------------------------------
    class BatchNormalised(MLP):
        """Normalises inputs by the batch's own statistics, in eval mode too."""

        name = "batch_normalised"

        def forward(self, x, task_ids=None):
            x = (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + 1e-5)
            return super().forward(x, task_ids)


    class FirstIdHeads(MLP):
        """Picks one head for the whole batch from the first example's task id."""

        name = "first_id_heads"

        def forward(self, x, task_ids=None):
            if task_ids is not None:
                task_ids = torch.full_like(task_ids, int(task_ids[0]))
            return super().forward(x, task_ids)


    class DeadLayer(MLP):
        """Holds a layer that forward() never uses."""

        name = "dead_layer"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.unused = nn.Linear(2, 2)


    # ---- callbacks -----------------------------------------------------------------------------
    class Recorder(Callback):
        """Records the mean accuracy after every task."""

        name = "recorder"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.means = []

        def on_validation_end(self, trainer, after_task, evaluation):
            if after_task > 0:
                self.means.append(sum(evaluation.accuracy) / len(evaluation.accuracy))

        def state_dict(self):
            return {"means": list(self.means)}

        def load_state_dict(self, state):
            self.means = list(state.get("means", []))


    class Meddler(Recorder):
        """Shrinks the weights at the start of every task."""

        name = "meddler"

        def on_task_start(self, trainer, task):
            with torch.no_grad():
                for p in trainer.backbone.parameters():
                    p.mul_(0.5)


    class MaskingTeardown(Recorder):
        """Raises in teardown after a failure, hiding the run's real error."""

        name = "masking_teardown"

        def on_exception(self, trainer, exception):
            self.failed = True

        def teardown(self, trainer):
            if getattr(self, "failed", False):
                raise RuntimeError("teardown failed")


    class SetState(Recorder):
        """Keeps a set in its state, which torch.load(weights_only=True) refuses."""

        name = "set_state"

        def state_dict(self):
            return {"means": set(self.means)}


    class NeedsRunDir(Recorder):
        """Writes a file into trainer.run_dir without checking that there is one."""

        name = "needs_run_dir"

        def on_task_end(self, trainer, task):
            (Path(trainer.run_dir) / f"task{task}.txt").write_text("done")
    '''
)

TESTS = textwrap.dedent(
    '''
    from clgym_core.backbone import MLP
    from clgym_core.testing import (
        AlgorithmConformance, BackboneConformance, BenchmarkConformance, CallbackConformance, SyntheticBlobs,
    )
    from subjects import *


    class TestAnchor(AlgorithmConformance):
        component = Anchor


    class TestForgetfulAnchor(AlgorithmConformance):
        component = ForgetfulAnchor


    class TestUnsafeStateAnchor(AlgorithmConformance):
        component = UnsafeStateAnchor


    class TestNoStep(AlgorithmConformance):
        component = NoStep


    class TestUnseeded(AlgorithmConformance):
        component = Unseeded


    class TestLooseParams(AlgorithmConformance):
        component = LooseParamsAlgorithm


    class TestUndocumented(AlgorithmConformance):
        component = Undocumented


    class TestBlobs(BenchmarkConformance):
        component = SyntheticBlobs
        params = {"num_tasks": 3}


    class TestMemoryFromTest(TestBlobs):
        component = MemoryFromTest


    class TestUnbalancedMemory(TestBlobs):
        component = UnbalancedMemory


    class TestZeroBasedTaskIds(TestBlobs):
        component = ZeroBasedTaskIds


    class TestEagerLoading(TestBlobs):
        component = EagerLoading


    class TestLastTaskJoint(TestBlobs):
        component = LastTaskJoint


    class TestNoRangeCheck(TestBlobs):
        component = NoRangeCheck


    class TestMLP(BackboneConformance):
        component = MLP
        params = {"hidden_sizes": [16]}


    class TestBatchNormalised(TestMLP):
        component = BatchNormalised


    class TestFirstIdHeads(TestMLP):
        component = FirstIdHeads


    class TestDeadLayer(TestMLP):
        component = DeadLayer


    class TestRecorder(CallbackConformance):
        component = Recorder


    class TestMeddler(CallbackConformance):
        component = Meddler


    class TestMaskingTeardown(CallbackConformance):
        component = MaskingTeardown


    class TestSetState(CallbackConformance):
        component = SetState


    class TestNeedsRunDir(CallbackConformance):
        component = NeedsRunDir
    '''
)

# Subject class -> the checks it must fail (every other check must pass).
EXPECTED_FAILURES: dict[str, set[str]] = {
    "TestAnchor": set(),
    "TestForgetfulAnchor": {"test_state_dict_round_trip_resumes_exactly"},
    "TestUnsafeStateAnchor": {"test_state_dict_round_trip_resumes_exactly", "test_runs_and_resumes_on_device[cpu]"},
    "TestNoStep": {
        "test_learns_each_task_in_a_short_run[single]",
        "test_learns_each_task_in_a_short_run[multi]",
        "test_runs_and_resumes_on_device[cpu]",
    },
    "TestUnseeded": {"test_same_seed_same_run", "test_state_dict_round_trip_resumes_exactly"},
    "TestLooseParams": {"test_is_a_registrable_component", "test_params_fields_have_defaults_and_descriptions"},
    "TestUndocumented": {"test_docstring_gives_a_summary_line"},
    "TestBlobs": set(),
    "TestMemoryFromTest": {"test_memory_is_class_balanced_distinct_and_from_training_data"},
    "TestUnbalancedMemory": {"test_memory_is_class_balanced_distinct_and_from_training_data"},
    "TestZeroBasedTaskIds": {
        "test_tasks_have_the_declared_shapes_targets_and_ids",
        "test_memory_is_class_balanced_distinct_and_from_training_data",
        "test_joint_is_the_concatenation_of_tasks",
    },
    "TestEagerLoading": {"test_description_needs_no_data"},
    "TestLastTaskJoint": {"test_joint_is_the_concatenation_of_tasks"},
    "TestNoRangeCheck": {"test_out_of_range_tasks_are_one_line_errors"},
    "TestMLP": set(),
    "TestBatchNormalised": {"test_examples_do_not_influence_each_other_in_eval_mode"},
    "TestFirstIdHeads": {"test_task_ids_pick_each_examples_head"},
    "TestDeadLayer": {"test_gradients_reach_every_parameter"},
    "TestRecorder": set(),
    "TestMeddler": {"test_does_not_change_the_results"},
    "TestMaskingTeardown": {"test_a_failing_run_keeps_its_error"},
    "TestSetState": {"test_state_dict_round_trip", "test_runs_from_a_spec_through_the_runner"},
    "TestNeedsRunDir": {"test_runs_without_a_run_directory"},
}


EXTRA_FILES = {
    # A subclass that forgets to name the class under test.
    "test_no_component.py": (
        "from clgym_core.testing import AlgorithmConformance\n\n"
        "class TestNothing(AlgorithmConformance):\n    pass\n"
    ),
    # Importing the bases collects nothing.
    "test_imports_only.py": (
        "from clgym_core.testing import (AlgorithmConformance, BackboneConformance, BenchmarkConformance,\n"
        "    CallbackConformance)\n"
        "from clgym_core.testing.conformance import ComponentConformance\n"
    ),
    # A shared intermediate class opts out; its subclass is collected.
    "test_shared.py": (
        "from clgym_core.testing import BackboneConformance\n"
        "from clgym_core.backbone import MLP\n\n"
        "class TestSharedSettings(BackboneConformance):\n"
        "    __test__ = False\n"
        "    params = {'hidden_sizes': [8]}\n\n"
        "class TestSmallMLP(TestSharedSettings):\n"
        "    component = MLP\n"
    ),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[str, str]]]:
    """Run the kit on every subject: "module::Class" -> {check -> (outcome, message)}."""
    folder = tmp_path_factory.mktemp("kit_subjects")
    (folder / "subjects.py").write_text(SUBJECTS)
    (folder / "test_subjects.py").write_text(TESTS)
    for name, text in EXTRA_FILES.items():
        (folder / name).write_text(text)
    report = folder / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
         f"--junitxml={report}", str(folder)],
        cwd=folder, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])},
    )
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, dict[str, tuple[str, str]]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module, _, cls = case.get("classname", "").rpartition(".")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", child.get("message", "")
            elif child.tag == "skipped":
                outcome, message = "skipped", child.get("message", "")
        results.setdefault(f"{module}::{cls}", {})[case.get("name", "")] = (outcome, message)
    return results


def test_each_broken_subject_fails_exactly_the_checks_of_its_contract(outcomes) -> None:
    wrong = {}
    for cls, expected in EXPECTED_FAILURES.items():
        key = f"test_subjects::{cls}"
        assert key in outcomes, f"{cls} was not collected"
        failed = {check for check, (outcome, _) in outcomes[key].items() if outcome == "failed"}
        if failed != expected:
            wrong[cls] = {"unexpected failures": sorted(failed - expected), "missed": sorted(expected - failed)}
    assert not wrong, wrong
    # Good subjects ran every check (cuda ones skip on machines without it).
    for cls in ("TestAnchor", "TestBlobs", "TestMLP", "TestRecorder"):
        ran = outcomes[f"test_subjects::{cls}"]
        assert sum(outcome == "passed" for outcome, _ in ran.values()) >= 8, ran


def test_failures_say_what_is_wrong(outcomes) -> None:
    def message(cls: str, check: str) -> str:
        return outcomes[f"test_subjects::{cls}"][check][1]

    assert "state_dict()" in message("TestForgetfulAnchor", "test_state_dict_round_trip_resumes_exactly")
    assert "PosixPath" in message("TestUnsafeStateAnchor", "test_state_dict_round_trip_resumes_exactly")
    assert "not (distinct) training examples" in message(
        "TestMemoryFromTest", "test_memory_is_class_balanced_distinct_and_from_training_data"
    )
    assert "did not raise DataError" in message("TestNoRangeCheck", "test_out_of_range_tasks_are_one_line_errors")
    assert "own task's head" in message("TestFirstIdHeads", "test_task_ids_pick_each_examples_head")


def test_a_subclass_without_component_fails_with_a_clear_message(outcomes) -> None:
    ran = outcomes["test_no_component::TestNothing"]
    assert ran and not any(outcome == "passed" for outcome, _ in ran.values()), ran  # cuda checks skip
    assert "TestNothing: set `component = YourClass`" in ran["test_is_a_registrable_component"][1]


def test_bases_are_not_collected_on_their_own(outcomes) -> None:
    assert not [key for key in outcomes if key.startswith("test_imports_only::")]


def test_an_intermediate_base_can_opt_out_of_collection(outcomes) -> None:
    assert "test_shared::TestSharedSettings" not in outcomes
    ran = outcomes["test_shared::TestSmallMLP"]
    assert ran and all(outcome in ("passed", "skipped") for outcome, _ in ran.values()), ran
