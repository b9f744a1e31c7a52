"""A window on a task sequence: the held-out-tasks protocol of A-GEM (Chaudhry et al. 2019, Section 5).

A-GEM's protocol keeps hyper-parameter search off the tasks that are reported:
the first K tasks of the stream are for cross-validation, and the chosen setting
is then trained and evaluated on the remaining tasks only. ``benchmark.params``
``first_task`` and ``last_task`` choose such a window of the benchmark's
sequence (tasks numbered as in the full sequence, both ends included).

:class:`TaskWindow` presents the window as a stream of its own, tasks
``1..W``: everything the trainer and the algorithm load (training, test,
validation, memory, subsets, joint data) comes from the wrapped benchmark's
task ``first_task - 1 + t``, while the wrapped benchmark keeps its full
sequence, so each task's data (rotations, permutations, class splits, seeds)
is exactly what it is in the full stream. Examples keep their task ids from the
full sequence, so multi-head models use the head of the task they come from.
Deliberate difference from A-GEM's code: the evaluation stream starts from a
freshly initialised model (as the search trials do), not from one that saw
the first K tasks.
"""

from __future__ import annotations

from typing import Any

import torch

from clgym_core.benchmark import Benchmark, _concat
from clgym_core.data import DataSource
from clgym_core.errors import DataError


def window_of(benchmark: Benchmark) -> tuple[int, int] | None:
    """``(first, last)`` when the benchmark's params ask for a window other than the whole sequence."""
    params = benchmark.params
    first = int(getattr(params, "first_task", 1) or 1)
    last = getattr(params, "last_task", None)
    last = benchmark.num_tasks if last is None else int(last)
    if (first, last) == (1, benchmark.num_tasks):
        return None
    return first, last


def windowed(benchmark: Benchmark) -> Benchmark:
    """``benchmark`` itself, or a :class:`TaskWindow` on it when its params choose a window."""
    window = window_of(benchmark)
    if window is None:
        return benchmark
    first, last = window
    if not 1 <= first <= last <= benchmark.num_tasks:
        raise DataError(f"{benchmark.name}: tasks {first}..{last} are not within 1..{benchmark.num_tasks} "
                        "(benchmark.params.first_task / last_task)")
    return TaskWindow(benchmark, first, last)


class TaskWindow(Benchmark):
    """Tasks ``first..last`` of another benchmark, presented as tasks ``1..last-first+1``."""

    def __init__(self, inner: Benchmark, first: int, last: int) -> None:  # noqa: D107 (no params of its own)
        self.inner, self.first, self.last = inner, first, last
        self.params = inner.params
        self.name = inner.name  # type: ignore[misc]
        self.problem = inner.problem  # type: ignore[misc]
        self.scenario = inner.scenario  # type: ignore[misc]
        self._prepared = False
        self._cache: dict[tuple[str, int], DataSource] = {}

    def _seq(self, task: int) -> int:
        return self.first - 1 + self.check_task(task)

    # ---- description: the window's length; everything else is the wrapped benchmark's ----------
    @property
    def num_tasks(self) -> int:
        return self.last - self.first + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inner.input_shape

    @property
    def head_size(self) -> int:
        return self.inner.head_size

    @property
    def num_heads(self) -> int:
        return self.inner.num_heads  # task ids stay those of the full sequence

    @property
    def num_classes(self) -> int:
        return self.inner.num_classes

    @property
    def has_validation(self) -> bool:
        return self.inner.has_validation

    # ---- loading: delegated with the task renumbered -----------------------------------------------
    def prepare_datasets(self) -> None:
        self.inner.ensure_prepared()

    def ensure_prepared(self) -> None:
        self.inner.ensure_prepared()

    def build_task(self, task: int, split: Any) -> DataSource:
        return self.inner.build_task(self._seq(task), split)

    def generator(self, purpose: str, task: int = 0) -> torch.Generator:
        return self.inner.generator(purpose, self.first - 1 + task if task else 0)

    def load_test(self, task: int) -> DataSource:
        return self.inner.load_test(self._seq(task))

    def load_train(self, task: int) -> DataSource:
        return self.inner.load_train(self._seq(task))

    def load_validation(self, task: int) -> DataSource:
        return self.inner.load_validation(self._seq(task))

    def load_memory(self, task: int) -> DataSource:
        return self.inner.load_memory(self._seq(task))

    def load_subset(self, task: int) -> DataSource:
        return self.inner.load_subset(self._seq(task))

    def load_memory_joint(self, task: int) -> DataSource:
        return _concat([self.load_memory(t) for t in range(1, self.check_task(task) + 1)])

    def load_joint(self, task: int) -> DataSource:
        # Joint over the window only: the tasks before it are not part of this stream.
        return _concat([self.inner.load_joint_task(self._seq(t)) for t in range(1, self.check_task(task) + 1)])

    def draw_train_examples(self, task: int, k: int, purpose: str) -> DataSource:
        return self.inner.draw_train_examples(self._seq(task), k, purpose)

    def release_training_data(self) -> None:
        self.inner.release_training_data()

    def clear_cache(self) -> None:
        self.inner.clear_cache()
