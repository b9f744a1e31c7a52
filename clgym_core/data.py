"""Task data held as tensors and batched by index slices.

This is the fast path every benchmark can use: a task's inputs, targets and
task ids live in three tensors (on the run's device when they fit), an epoch is
a seeded permutation of indices, and a batch is ``tensor[index_slice]``. There
is no per-sample ``__getitem__`` and no DataLoader worker. Inputs may be stored
compactly (``uint8`` images, say) with a ``transform`` that turns a whole batch
into model inputs on the device, so the dataset is converted once per batch,
never once per sample.

A benchmark that needs a plain :class:`torch.utils.data.Dataset` can return one
instead; :func:`iterate_batches` then falls back to a ``DataLoader`` whose items
are ``(input, target, task_id)`` tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Union

import torch
from torch.utils.data import DataLoader, Dataset

from clgym_core.errors import DataError

BatchTransform = Callable[[torch.Tensor], torch.Tensor]


class Batch(NamedTuple):
    """One mini-batch: model inputs, targets, and the (1-based) task id of every example."""

    inputs: torch.Tensor
    targets: torch.Tensor
    task_ids: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


@dataclass(frozen=True)
class TaskData:
    """Examples of one or more tasks as three aligned tensors.

    ``transform`` maps a batch of stored inputs to model inputs (e.g. ``uint8``
    pixels to normalised floats); it must be a batched, elementwise-safe tensor
    function. Two ``TaskData`` can only be concatenated when they share it.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    task_ids: torch.Tensor
    transform: BatchTransform | None = None

    def __post_init__(self) -> None:
        n = self.inputs.shape[0]
        if self.targets.shape[0] != n or self.task_ids.shape[0] != n:
            raise ValueError(
                f"TaskData tensors disagree on length: inputs {n}, targets {self.targets.shape[0]}, "
                f"task_ids {self.task_ids.shape[0]}"
            )

    @classmethod
    def for_task(
        cls,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        task: int,
        transform: BatchTransform | None = None,
    ) -> TaskData:
        """All examples belong to ``task``."""
        task_ids = torch.full((inputs.shape[0],), int(task), dtype=torch.long, device=inputs.device)
        return cls(inputs, targets, task_ids, transform)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def to(self, device: torch.device | str) -> TaskData:
        device = torch.device(device)
        if self.inputs.device == device and self.targets.device == device and self.task_ids.device == device:
            return self
        return replace(
            self,
            inputs=self.inputs.to(device),
            targets=self.targets.to(device),
            task_ids=self.task_ids.to(device),
        )

    def subset(self, indices: torch.Tensor) -> TaskData:
        indices = indices.to(self.inputs.device)
        return replace(
            self,
            inputs=self.inputs[indices],
            targets=self.targets[indices],
            task_ids=self.task_ids[indices],
        )

    def batch(self, indices: torch.Tensor | slice) -> Batch:
        """The batch at ``indices`` with the transform applied."""
        inputs = self.inputs[indices]
        if self.transform is not None:
            inputs = self.transform(inputs)
        return Batch(inputs, self.targets[indices], self.task_ids[indices])

    def all(self) -> Batch:
        """Every example as one batch (for small sets such as episodic memories)."""
        return self.batch(slice(None))

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Mini-batches as index slices; the permutation is drawn on the CPU generator, moved once."""
        n = len(self)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.inputs.device)
        else:
            order = None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, n)
            yield self.batch(order[start:end] if order is not None else slice(start, end))

    @staticmethod
    def concat(parts: Sequence[TaskData]) -> TaskData:
        """Join task data (e.g. tasks 1..t for joint training); they must share one transform."""
        if not parts:
            raise ValueError("TaskData.concat needs at least one part")
        transform = parts[0].transform
        if any(p.transform is not transform for p in parts[1:]):
            raise ValueError("TaskData.concat: parts have different transforms")
        return TaskData(
            torch.cat([p.inputs for p in parts]),
            torch.cat([p.targets for p in parts]),
            torch.cat([p.task_ids for p in parts]),
            transform,
        )


DataSource = Union[TaskData, Dataset]


def _collate(items: list) -> Batch:
    inputs, targets, task_ids = zip(*items)
    return Batch(
        torch.stack([torch.as_tensor(x) for x in inputs]),
        torch.as_tensor(targets),
        torch.as_tensor(task_ids, dtype=torch.long),
    )


def iterate_batches(
    data: DataSource,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Batches of a task's data on ``device``; the tensor fast path or a ``DataLoader`` fallback."""
    if isinstance(data, TaskData):
        if device is not None:
            data = data.to(device)
        yield from data.batches(batch_size, shuffle=shuffle, generator=generator)
        return
    if not isinstance(data, Dataset):
        raise TypeError(f"expected TaskData or torch Dataset, got {type(data).__name__}")
    loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=_collate)
    for batch in loader:
        yield batch.to(device) if device is not None else batch


def num_examples(data: DataSource) -> int:
    return len(data)  # type: ignore[arg-type]


def sample_indices(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct indices out of ``n`` (without replacement), sorted."""
    if k > n:
        raise DataError(f"cannot draw {k} distinct examples from {n}")
    return torch.randperm(n, generator=generator)[:k].sort().values


def balanced_sample_indices(targets: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct indices, spread as evenly as possible over the classes in ``targets``.

    Each class gets ``k // C`` examples and the remainder goes, one each, to
    classes drawn at random; a class with too few examples gives what it has and
    the shortfall is taken from the others. Sampling is without replacement.
    """
    targets = targets.cpu()
    n = targets.shape[0]
    if k > n:
        raise DataError(f"cannot draw {k} distinct examples from {n}")
    classes = torch.unique(targets)
    # One random order over all examples; within each class, take the first m of that order.
    order = torch.randperm(n, generator=generator)
    by_class = [order[targets[order] == c] for c in classes]
    counts = torch.tensor([len(ix) for ix in by_class])
    quota = torch.zeros(len(classes), dtype=torch.long)
    remaining = k
    while remaining > 0:
        room = counts - quota
        open_classes = torch.nonzero(room > 0).flatten()
        share = remaining // len(open_classes)
        if share == 0:
            pick = open_classes[torch.randperm(len(open_classes), generator=generator)[:remaining]]
            quota[pick] += 1
            break
        add = torch.minimum(room[open_classes], torch.tensor(share))
        quota[open_classes] += add
        remaining -= int(add.sum())
    chosen = torch.cat([ix[:q] for ix, q in zip(by_class, quota.tolist())])
    return chosen.sort().values
