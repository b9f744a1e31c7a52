"""Conformance checks for benchmarks: the interface's contracts on task ids, shapes, memory and joint loading."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, ClassVar

import pytest
import torch
from torch.utils.data import Subset

from clgym_core.benchmark import Benchmark
from clgym_core.data import DataSource, TaskData, iterate_batches
from clgym_core.errors import DataError
from clgym_core.testing.conformance._kit import (
    DEVICES,
    ComponentConformance,
    assert_same,
    build_run,
    check_matrix,
    kit_registry,
)


def _rows(data: TaskData) -> Counter:
    """The stored examples of ``data`` as a multiset of (target, bytes of the input row)."""
    inputs = data.inputs.detach().cpu().contiguous()
    flat = inputs.reshape(inputs.shape[0], -1).numpy()
    targets = data.targets.detach().cpu().reshape(inputs.shape[0], -1).numpy()
    return Counter((t.tobytes(), row.tobytes()) for t, row in zip(targets, flat))


def _first_batch(data: DataSource, size: int = 8) -> Any:
    return next(iter(iterate_batches(data, size)))


def _expect_data_error(call: Any, *args: Any, why: str) -> str:
    """Call and return the DataError's message; fail naming the call when there is none."""
    where = f"{getattr(call, '__name__', call)}({', '.join(map(repr, args))})"
    try:
        call(*args)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message, f"{where}: the error is not one line: {message!r}"
        return message
    pytest.fail(f"{where} did not raise DataError ({why})", pytrace=False)


class BenchmarkConformance(ComponentConformance):
    """What every benchmark must honour. Subclass it and set ``component`` and ``params``::

        from clgym_core.testing import BenchmarkConformance

        class TestMyBenchmark(BenchmarkConformance):
            component = MyBenchmark
            params = {"num_tasks": 3}

    A benchmark that reads files gets them from a fixture: override
    ``benchmark_params`` (class scope) to write small files in the official
    format and return the params pointing at them::

        @pytest.fixture(scope="class")
        @classmethod
        def benchmark_params(cls, tmp_path_factory):
            root = write_fake_dataset(tmp_path_factory.mktemp("data"))
            return {"root": str(root), "num_tasks": 3}

    Keep the data small: every task is loaded several times. ``run_examples``
    caps the training examples per task in the short training run.
    """

    __test__ = False
    kind = "benchmark"
    run_examples: ClassVar[int] = 64

    # ---- fixtures -----------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def benchmark_params(cls) -> dict[str, Any]:
        """The benchmark's params; override (class scope) to point at files written for the test."""
        return dict(cls.params)

    @pytest.fixture
    def component_params(self, benchmark_params: dict[str, Any]) -> dict[str, Any]:
        return dict(benchmark_params)

    @pytest.fixture(scope="class")
    @classmethod
    def benchmark(cls, benchmark_params: dict[str, Any]) -> Benchmark:
        """One instance shared by the read-only checks of a class (loaded data stays cached)."""
        return cls.make(benchmark_params)

    # ---- helpers ----------------------------------------------------------------------------------
    @classmethod
    def make(cls, params: dict[str, Any], **overrides: Any) -> Benchmark:
        return cls.component_class()({**params, **overrides})

    def memory_size(self, bench: Benchmark) -> int:
        train = bench.load_train(1)
        classes = len(torch.unique(train.targets)) if isinstance(train, TaskData) else bench.head_size
        if bench.problem != "classification":
            classes = 2
        # Not a multiple of the class count, so the remainder must be spread too.
        return max(1, min(2 * classes + 1, len(train) - 1))

    # ---- checks -----------------------------------------------------------------------------------
    def test_description_needs_no_data(self, benchmark_params: dict[str, Any]) -> None:
        """What specs are validated with (sizes, heads, problem) comes without reading any data."""
        cls = self.component_class()
        calls: list[str] = []

        class Probe(cls):  # type: ignore[misc, valid-type]
            def prepare_datasets(self) -> None:
                calls.append("prepare_datasets")
                super().prepare_datasets()

            def build_task(self, task: int, split: Any) -> DataSource:
                calls.append("build_task")
                return super().build_task(task, split)

        bench = Probe(benchmark_params)
        shape = tuple(bench.input_shape)
        facts = (bench.num_tasks, bench.head_size, bench.num_heads, bench.num_classes, bench.problem, bench.scenario)
        assert not calls, f"constructing the benchmark or reading its description called {calls}"
        assert shape and all(isinstance(d, int) and d >= 1 for d in shape), f"input_shape {shape!r} is not a shape"
        assert bench.num_tasks >= 1 and bench.head_size >= 1 and bench.num_heads >= 1, facts
        assert bench.problem in ("classification", "regression"), f"problem {bench.problem!r}"

    def test_builds_from_a_spec(self, benchmark_params: dict[str, Any]) -> None:
        cls = self.component_class()
        spec = {
            "benchmark": {"name": cls.name, "params": benchmark_params},
            "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
            "algorithm": "kit_finetune",
            "trainer": {"device": "cpu", "progress": False},
            "seed": 7,
        }
        with kit_registry(self.kind, cls) as registry:
            run = build_run(spec, registry)
        bench = run.components.benchmark
        assert type(bench) is cls
        if "seed" in cls.Params.model_fields and "seed" not in benchmark_params:
            assert bench.params.seed == 7, "the benchmark's seed does not default to the run's seed"
        mlp = run.spec.backbone.params
        assert mlp["input_size"] == math.prod(bench.input_shape) and mlp["output_size"] == bench.head_size

    def test_tasks_have_the_declared_shapes_targets_and_ids(self, benchmark: Benchmark) -> None:
        classification = benchmark.problem == "classification"
        for task in range(1, benchmark.num_tasks + 1):
            for split, data in zip(("train", "test"), benchmark.load(task)):
                where = f"task {task} {split}"
                assert len(data) > 0, f"{where}: no examples"
                batch = _first_batch(data)
                assert tuple(batch.inputs.shape[1:]) == tuple(benchmark.input_shape), (
                    f"{where}: inputs of shape {tuple(batch.inputs.shape[1:])}, input_shape says "
                    f"{tuple(benchmark.input_shape)}"
                )
                assert batch.inputs.is_floating_point(), f"{where}: model inputs are {batch.inputs.dtype}"
                assert torch.isfinite(batch.inputs).all(), f"{where}: inputs hold NaN or infinity"
                targets = data.targets if isinstance(data, TaskData) else batch.targets
                task_ids = data.task_ids if isinstance(data, TaskData) else batch.task_ids
                assert bool((task_ids == task).all()), f"{where}: task ids {torch.unique(task_ids).tolist()}"
                if classification:
                    assert targets.dtype == torch.long, f"{where}: class targets are {targets.dtype}, not int64"
                    low, high = int(targets.min()), int(targets.max())
                    assert 0 <= low and high < benchmark.head_size, (
                        f"{where}: targets span {low}..{high}, outside the head's 0..{benchmark.head_size - 1}"
                    )
                else:
                    assert targets.is_floating_point(), f"{where}: regression targets are {targets.dtype}"

    def test_train_and_test_splits_are_disjoint(self, benchmark: Benchmark) -> None:
        train, test = benchmark.load(1)
        if not (isinstance(train, TaskData) and isinstance(test, TaskData)):
            pytest.skip("only checked for TaskData")
        shared = set(_rows(train)) & set(_rows(test))
        assert len(shared) <= 0.01 * len(test), f"{len(shared)} test examples of task 1 are also training examples"

    def test_per_task_examples_draws_a_reproducible_subset(self, benchmark_params: dict[str, Any]) -> None:
        full = self.make(benchmark_params).load_train(1)
        k = max(1, min(len(full) - 1, 10))
        a = self.make(benchmark_params, per_task_examples=k).load_train(1)
        b = self.make(benchmark_params, per_task_examples=k).load_train(1)
        assert len(a) == k, f"per_task_examples={k} gave {len(a)} examples"
        if isinstance(a, TaskData) and isinstance(full, TaskData):
            assert not _rows(a) - _rows(full), "per_task_examples drew examples that are not training examples"
            assert_same((a.inputs, a.targets), (b.inputs, b.targets), "two subsets drawn with one seed")

    def test_memory_is_class_balanced_distinct_and_from_training_data(self, benchmark_params: dict[str, Any]) -> None:
        probe = self.make(benchmark_params)
        _expect_data_error(probe.load_memory, 1, why="per_task_memory_examples is not set")
        m = self.memory_size(probe)
        bench = self.make(benchmark_params, per_task_memory_examples=m)
        last = bench.num_tasks
        for task in sorted({1, last}):
            memory, train = bench.load_memory(task), bench.load_train(task)
            assert len(memory) == m, f"task {task}: memory of {len(memory)} examples, asked for {m}"
            if isinstance(memory, Subset):
                indices = list(memory.indices)
                assert len(set(indices)) == len(indices), f"task {task}: memory repeats examples"
                continue
            if not isinstance(memory, TaskData):
                continue
            assert bool((memory.task_ids == task).all()), f"task {task}: memory holds other task ids"
            extra = _rows(memory) - _rows(train)
            assert not extra, (
                f"task {task}: {sum(extra.values())} memory examples are not (distinct) training examples: "
                "draw memory from training data without replacement"
            )
            if bench.problem == "classification":
                have = Counter(train.targets.tolist())
                got = Counter(memory.targets.tolist())
                # Exact balance is only possible when every class can fill its quota.
                if min(have.values()) >= math.ceil(m / len(have)):
                    counts = [got.get(c, 0) for c in have]
                    assert max(counts) - min(counts) <= 1, f"task {task}: memory per class {dict(got)} is not balanced"
        joint = bench.load_memory_joint(last)
        assert len(joint) == m * last, f"load_memory_joint({last}) has {len(joint)} examples, expected {m * last}"
        # A task's memory depends only on the seed and the task, not on what was loaded before.
        fresh = self.make(benchmark_params, per_task_memory_examples=m)
        if isinstance(fresh.load_memory(last), TaskData):
            assert_same(fresh.load_memory(last).targets, bench.load_memory(last).targets, "memories of one task")
            assert_same(fresh.load_memory(last).inputs, bench.load_memory(last).inputs, "memories of one task")

    def test_subset_is_distinct_training_data(self, benchmark_params: dict[str, Any]) -> None:
        probe = self.make(benchmark_params)
        _expect_data_error(probe.load_subset, 1, why="per_task_subset_examples is not set")
        k = self.memory_size(probe)
        bench = self.make(benchmark_params, per_task_subset_examples=k)
        subset, train = bench.load_subset(1), bench.load_train(1)
        assert len(subset) == k, f"load_subset gave {len(subset)} examples, asked for {k}"
        if isinstance(subset, TaskData):
            assert not _rows(subset) - _rows(train), "load_subset drew examples that are not distinct training examples"

    def test_joint_is_the_concatenation_of_tasks(self, benchmark: Benchmark, benchmark_params: dict[str, Any]) -> None:
        last = benchmark.num_tasks
        joint = benchmark.load_joint(last)
        parts = [benchmark.load_train(t) for t in range(1, last + 1)]
        assert len(joint) == sum(len(p) for p in parts), "load_joint's length is not the sum of the tasks'"
        if isinstance(joint, TaskData) and all(isinstance(p, TaskData) for p in parts):
            assert_same(joint.targets, torch.cat([p.targets for p in parts]), "joint and per-task targets")
            assert_same(joint.task_ids, torch.cat([p.task_ids for p in parts]), "joint and per-task task ids")
            assert_same(joint.inputs, torch.cat([p.inputs for p in parts]), "joint and per-task inputs")
        k = max(1, min(len(p) for p in parts) // 2)
        capped = self.make(benchmark_params, per_task_joint_examples=k).load_joint(last)
        assert len(capped) == k * last, f"per_task_joint_examples={k} gave {len(capped)} joint examples"
        if isinstance(capped, TaskData):
            counts = Counter(capped.task_ids.tolist())
            assert counts == {t: k for t in range(1, last + 1)}, f"joint examples per task: {dict(counts)}"

    def test_out_of_range_tasks_are_one_line_errors(self, benchmark_params: dict[str, Any]) -> None:
        bench = self.make(benchmark_params, per_task_memory_examples=1, per_task_subset_examples=1)
        last = bench.num_tasks
        for loader in (bench.load_train, bench.load_test, bench.load_memory, bench.load_subset, bench.load_joint):
            for task in (0, last + 1):
                message = _expect_data_error(loader, task, why=f"tasks are numbered 1..{last}")
                assert str(task) in message, f"{loader.__name__}({task}): the error does not name the task: {message!r}"

    def test_same_seed_same_data(self, benchmark_params: dict[str, Any]) -> None:
        a, b = self.make(benchmark_params), self.make(benchmark_params)
        for task in sorted({1, a.num_tasks}):
            for split, (x, y) in zip(("train", "test"), zip(a.load(task), b.load(task))):
                if isinstance(x, TaskData) and isinstance(y, TaskData):
                    assert_same((x.inputs, x.targets, x.task_ids), (y.inputs, y.targets, y.task_ids),
                                f"task {task} {split} data of two instances with one seed")
                else:
                    assert_same(tuple(_first_batch(x)), tuple(_first_batch(y)), f"task {task} {split} batches")

    @pytest.mark.parametrize("device", DEVICES)
    def test_trains_in_a_short_run(self, device: str, benchmark_params: dict[str, Any]) -> None:
        cls = self.component_class()
        params = dict(benchmark_params)
        params.setdefault("per_task_examples", self.run_examples)
        spec = {
            "benchmark": {"name": cls.name, "params": params},
            "backbone": {"name": "mlp", "params": {"hidden_sizes": [16]}},
            "algorithm": "kit_finetune",
            "optimizer": {"name": "sgd", "lr": 0.01},
            "trainer": {"epochs_per_task": 1, "batch_size": 32, "device": device, "progress": False},
            "seed": self.seed,
        }
        with kit_registry(self.kind, cls) as registry:
            run = build_run(spec, registry).fit()
        bench = run.components.benchmark
        check_matrix(run.loss, bench.num_tasks, "loss matrix", classification=False)
        if bench.problem == "classification":
            check_matrix(run.accuracy, bench.num_tasks, "accuracy matrix")
