"""The Benchmark interface: a sequence of tasks and the paper's loading options."""

from __future__ import annotations

import abc
import hashlib
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset, Subset

from clgym_core.component import Component, Params, validate_params
from clgym_core.data import DataSource, TaskData, balanced_sample_indices, sample_indices
from clgym_core.errors import DataError

Split = Literal["train", "test"]
Scenario = Literal["new_instances", "new_classes", "new_instances_and_classes"]
Problem = Literal["classification", "regression"]


class BenchmarkParams(Params):
    """Options every benchmark accepts (CL-Gym paper, Section 3.1)."""

    num_tasks: int = Field(5, ge=1, description="Number of tasks in the sequence.")
    per_task_examples: int | None = Field(
        None, ge=1, description="Train on a random subset of this many examples per task (all when unset)."
    )
    per_task_memory_examples: int | None = Field(
        None, ge=1, description="Episodic memory size per task, drawn from training data (class-balanced)."
    )
    per_task_joint_examples: int | None = Field(
        None, ge=1, description="Examples per task used by load_joint (all training data when unset)."
    )
    per_task_subset_examples: int | None = Field(
        None, ge=1, description="Examples per task returned by load_subset (e.g. for OGD or MC-SGD)."
    )
    seed: int = Field(0, description="Seed for everything random in the benchmark (orders, subsets, memory).")
    validation_fraction: float | None = Field(
        None, gt=0, lt=1, description="Hold out this fraction of each task's training data as validation data "
        "(seeded, class-balanced; load_validation); training, memories and subsets use the rest."
    )
    # ---- held-out tasks (A-GEM Section 5; see clgym_core.task_window) ----
    first_task: int = Field(
        1, ge=1, description="Start the stream at this task of the sequence (e.g. K+1 to evaluate on the tasks "
        "held out of a search on the first K)."
    )
    last_task: int | None = Field(
        None, ge=1, description="End the stream after this task of the sequence (e.g. K to search on the first K); "
        "all when unset."
    )

    @model_validator(mode="after")
    def _task_window(self) -> BenchmarkParams:
        last = self.last_task
        if last is not None and last < self.first_task:
            raise ValueError(f"last_task ({last}) is before first_task ({self.first_task})")
        total = getattr(self, "num_tasks", None)
        if isinstance(total, int) and max(self.first_task, last or 1) > total:
            raise ValueError(f"first_task/last_task must be within the {total} tasks of the sequence")
        return self


class Benchmark(Component, abc.ABC):
    """A sequence of tasks.

    Subclasses describe the tasks through the class attributes and properties
    below (known without loading any data, so that specs can be validated fast)
    and implement :meth:`prepare_datasets` (read the files once) and
    :meth:`build_task` (one split of one task). The base class caches what
    ``build_task`` returns and implements the paper's loading options on top:
    per-task subsets, episodic memory, joint loading. Tasks are numbered from 1.

    Every random choice is drawn from a generator seeded by ``(seed, purpose,
    task)``, so the memory of task 3 does not depend on what was loaded before.
    """

    Params: ClassVar[type[Params]] = BenchmarkParams
    problem: ClassVar[Problem] = "classification"
    scenario: ClassVar[Scenario] = "new_instances"

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a params object or keyword arguments, not both")
        self.params = validate_params(type(self), params if params is not None else kwargs)
        self._prepared = False
        self._cache: dict[tuple[str, int], DataSource] = {}

    # ---- description (no data needed) -------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return int(self.params.num_tasks)

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input (without the batch dimension)."""

    @property
    def num_classes(self) -> int:
        """Classes over the whole sequence (1 output for regression)."""
        return self.head_size * self.num_heads

    @property
    def num_heads(self) -> int:
        """Output heads: ``num_tasks`` for task-incremental multi-head setups, else 1."""
        return 1

    @property
    @abc.abstractmethod
    def head_size(self) -> int:
        """Outputs of one head (classes per head, or 1 for scalar regression)."""

    @property
    def task_incremental(self) -> bool:
        return self.num_heads > 1

    # ---- what subclasses implement -------------------------------------------------------------
    @abc.abstractmethod
    def prepare_datasets(self) -> None:
        """Read or generate the raw data once; later calls may be cheap no-ops."""

    @abc.abstractmethod
    def build_task(self, task: int, split: Split) -> DataSource:
        """All examples of ``split`` for ``task`` (targets as the model's head expects them)."""

    # ---- loading ------------------------------------------------------------------------------
    def ensure_prepared(self) -> None:
        if not self._prepared:
            self.prepare_datasets()
            self._prepared = True

    def check_task(self, task: int) -> int:
        if not 1 <= int(task) <= self.num_tasks:
            raise DataError(f"{self.name}: task {task} is out of range 1..{self.num_tasks}")
        return int(task)

    def generator(self, purpose: str, task: int = 0) -> torch.Generator:
        digest = hashlib.sha256(f"{self.params.seed}/{self.name}/{purpose}/{task}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))

    def _split(self, task: int, split: Split) -> DataSource:
        key = (split, self.check_task(task))
        if key not in self._cache:
            self.ensure_prepared()
            self._cache[key] = self.build_task(task, split)
        return self._cache[key]

    def _full_train(self, task: int) -> DataSource:
        if not self.has_validation:
            return self._split(task, "train")
        # ---- validation split: training data are the rows not held out --------------------------
        key = ("train_kept", self.check_task(task))
        if key not in self._cache:
            data = self._split(task, "train")
            keep = torch.ones(len(data), dtype=torch.bool)
            keep[self._validation_rows(data, task)] = False
            self._cache[key] = subset(data, keep.nonzero().flatten())
        return self._cache[key]

    # ---- validation split ------------------------------------------------------------------------
    @property
    def has_validation(self) -> bool:
        """Whether ``validation_fraction`` holds out part of each task's training data."""
        return bool(getattr(self.params, "validation_fraction", None))

    def _validation_rows(self, data: DataSource, task: int) -> torch.Tensor:
        """The held-out rows of the full training split (at least one kept, at least one held out)."""
        n = len(data)  # type: ignore[arg-type]
        k = min(max(1, round(self.params.validation_fraction * n)), n - 1)
        return self.draw_indices(data, k, "validation", task)

    def load_validation(self, task: int) -> DataSource:
        """The validation data of ``task``: ``validation_fraction`` of its training split, class-balanced.

        Disjoint from :meth:`load_train` (and so from memories, subsets and joint
        data, which draw from it); drawn from a generator seeded by ``(seed,
        "validation", task)``.
        """
        if not self.has_validation:
            raise DataError(f"{self.name}: no validation split; set benchmark.params.validation_fraction")
        key = ("validation", self.check_task(task))
        if key not in self._cache:
            data = self._split(task, "train")
            self._cache[key] = subset(data, self._validation_rows(data, task))
        return self._cache[key]
    # ---- end of validation split -----------------------------------------------------------------

    def release_training_data(self) -> None:
        """Drop the cached full training splits (and their per_task_examples subsets).

        The trainer calls this after every task: a finished task's training data is
        rebuilt on demand, identically, if anything asks for it again (joint training,
        memory drawn later), so a long sequence holds one task's training data at a
        time instead of all of them. Memories, subsets and test splits stay cached.
        """
        for key in [k for k in self._cache if k[0] in ("train", "train_subset", "train_kept")]:
            del self._cache[key]

    def clear_cache(self) -> None:
        """Drop everything built so far (test splits and memories too)."""
        self._cache.clear()

    def load_test(self, task: int) -> DataSource:
        """The test split of ``task``."""
        return self._split(task, "test")

    def load_train(self, task: int) -> DataSource:
        """The training split of ``task``, reduced to ``per_task_examples`` when that is set."""
        data = self._full_train(task)
        k = self.params.per_task_examples
        if k is None or k >= len(data):
            return data
        key = ("train_subset", task)
        if key not in self._cache:
            self._cache[key] = subset(data, sample_indices(len(data), k, self.generator("examples", task)))
        return self._cache[key]

    def load(self, task: int) -> tuple[DataSource, DataSource]:
        """Training and test data of ``task`` (CL-Gym's ``load``)."""
        return self.load_train(task), self.load_test(task)

    def load_memory(self, task: int) -> DataSource:
        """Episodic memory of ``task``: ``per_task_memory_examples`` training examples, class-balanced."""
        k = self.params.per_task_memory_examples
        if not k:
            raise DataError(
                f"{self.name}: episodic memory was not requested; set benchmark.params.per_task_memory_examples"
            )
        key = ("memory", self.check_task(task))
        if key not in self._cache:
            data = self.load_train(task)
            k = min(k, len(data))
            self._cache[key] = subset(data, self.draw_indices(data, k, "memory", task))
        return self._cache[key]

    def load_memory_joint(self, task: int) -> DataSource:
        """Episodic memories of tasks ``1..task`` together."""
        return _concat([self.load_memory(t) for t in range(1, self.check_task(task) + 1)])

    def load_subset(self, task: int) -> DataSource:
        """``per_task_subset_examples`` training examples of ``task`` (class-balanced)."""
        k = self.params.per_task_subset_examples
        if not k:
            raise DataError(f"{self.name}: no subset size given; set benchmark.params.per_task_subset_examples")
        key = ("subset", self.check_task(task))
        if key not in self._cache:
            data = self.load_train(task)
            self._cache[key] = subset(data, self.draw_indices(data, min(k, len(data)), "subset", task))
        return self._cache[key]

    def load_joint(self, task: int) -> DataSource:
        """Training data of tasks ``1..task`` together (``per_task_joint_examples`` each when set)."""
        return _concat([self.load_joint_task(t) for t in range(1, self.check_task(task) + 1)])

    def load_joint_task(self, task: int) -> DataSource:
        """Task ``task``'s part of :meth:`load_joint`."""
        k = self.params.per_task_joint_examples
        key = ("joint", self.check_task(task))
        if key in self._cache:  # a cached joint subset: the full training split is not needed again
            return self._cache[key]
        data = self.load_train(task)
        if k is not None and k < len(data):
            data = self._cache[key] = subset(data, sample_indices(len(data), k, self.generator("joint", task)))
        return data

    def draw_indices(self, data: DataSource, k: int, purpose: str, task: int) -> torch.Tensor:
        """``k`` distinct rows of ``data`` (class-balanced for classification), seeded by ``(purpose, task)``.

        The one sampling rule of clgym: memories, subsets and whatever an algorithm
        draws from a task's training data (Fisher examples, OGD's gradients) use it.
        """
        gen = self.generator(purpose, task)
        targets = targets_of(data)
        if self.problem == "classification" and targets is not None:
            return balanced_sample_indices(targets, k, gen)
        return sample_indices(len(data), k, gen)

    def draw_train_examples(self, task: int, k: int, purpose: str) -> DataSource:
        """``min(k, n)`` distinct training examples of ``task`` drawn by :meth:`draw_indices`."""
        data = self.load_train(task)
        return subset(data, self.draw_indices(data, min(k, len(data)), purpose, task))


def targets_of(data: DataSource) -> torch.Tensor | None:
    """The targets of ``data`` as a tensor (a ``Subset`` reads its parent's at its rows); None if unknown."""
    if isinstance(data, TaskData):
        return data.targets
    if isinstance(data, Subset):  # e.g. after per_task_examples: the parent's targets at the subset's rows
        parent = targets_of(data.dataset)
        return parent[torch.as_tensor(data.indices)] if parent is not None else None
    targets = getattr(data, "targets", None)
    return torch.as_tensor(targets) if targets is not None else None


def subset(data: DataSource, indices: torch.Tensor) -> DataSource:
    """The rows ``indices`` of ``data`` (tensor data stays tensor data)."""
    if isinstance(data, TaskData):
        return data.subset(indices)
    return Subset(data, indices.tolist())


def _concat(parts: list[DataSource]) -> DataSource:
    if all(isinstance(p, TaskData) for p in parts):
        return TaskData.concat(parts)  # type: ignore[arg-type]
    if len(parts) == 1:
        return parts[0]
    return torch.utils.data.ConcatDataset(parts)  # type: ignore[arg-type]


__all__ = ["Benchmark", "BenchmarkParams", "Dataset", "Problem", "Scenario", "Split"]
