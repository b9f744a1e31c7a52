"""Experience replay with a tiny episodic memory: ring buffer and reservoir sampling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData
from clgym_core.errors import SpecError

from clgym_algos.memory import default_memory_size, random_rows

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class RingBuffer:
    """Per-class FIFO rings of ``per_class`` slots for the task being learned, plus frozen past tasks.

    Writes are vectorised: the examples of a batch are ranked within their
    class in stream order, only the last ``per_class`` of each class can
    survive, and each goes to slot ``(count[c] + rank) mod per_class``; the
    rest are sent to a spare slot that is never read. So after any stream the
    ring of class ``c`` holds its last ``per_class`` examples and the oldest is
    overwritten first, exactly as writing them one by one would.
    """

    def __init__(self, per_class: int, num_classes: int) -> None:
        self.per_class = int(per_class)
        self.num_classes = int(num_classes)
        self.task = 0
        self._x: torch.Tensor | None = None  # (C * m + 1, ...): the current task's rings, then the spare slot
        self._y: torch.Tensor | None = None
        self._count: torch.Tensor | None = None  # examples of each class seen in this task
        # Earlier tasks' filled slots, concatenated: what replay samples from.
        self.inputs: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        """Examples of completed tasks available for replay."""
        return 0 if self.targets is None else int(self.targets.shape[0])

    def start_task(self, task: int, per_class: int | None = None) -> None:
        self.task = int(task)
        if per_class is not None:
            self.per_class = int(per_class)
        self._x = self._y = self._count = None

    @torch.no_grad()
    def add(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Write a batch of the current task, in stream order."""
        m, c = self.per_class, self.num_classes
        if self._x is None:
            self._x = inputs.new_zeros((c * m + 1, *inputs.shape[1:]))
            self._y = targets.new_zeros((c * m + 1,))
            self._count = torch.zeros(c, dtype=torch.long, device=targets.device)
        targets = targets.long()
        one_hot = F.one_hot(targets, c)
        rank = (one_hot.cumsum(0) - 1).gather(1, targets.unsqueeze(1)).squeeze(1)
        per_class_in_batch = one_hot.sum(0)
        survives = rank >= per_class_in_batch[targets] - m
        slot = targets * m + (self._count[targets] + rank) % m
        slot = torch.where(survives, slot, torch.full_like(slot, c * m))
        self._x[slot] = inputs.to(self._x.dtype)
        self._y[slot] = targets
        self._count += per_class_in_batch

    def ring(self, cls: int) -> torch.Tensor:
        """Slots of class ``cls`` in the current task (for inspection and tests)."""
        assert self._x is not None
        return self._x[cls * self.per_class : (cls + 1) * self.per_class]

    def filled(self) -> torch.Tensor:
        """Indices of written slots of the current task."""
        assert self._count is not None
        fill = self._count.clamp(max=self.per_class)
        slots = torch.arange(self.per_class, device=fill.device)
        return torch.nonzero((slots.unsqueeze(0) < fill.unsqueeze(1)).flatten()).flatten()

    @torch.no_grad()
    def end_task(self) -> None:
        """Freeze the current task's filled slots into the replay memory (one host sync per task)."""
        if self._x is None:
            return
        keep = self.filled()
        parts = [(self._x[keep], self._y[keep])]
        if self.inputs is not None:
            parts.insert(0, (self.inputs, self.targets))
        self.inputs = torch.cat([p[0] for p in parts])
        self.targets = torch.cat([p[1] for p in parts])
        new_ids = torch.full((len(keep),), self.task, dtype=torch.long, device=keep.device)
        self.task_ids = new_ids if self.task_ids is None else torch.cat([self.task_ids, new_ids])
        self._x = self._y = self._count = None

    def sample(self, k: int) -> Batch:
        rows = random_rows(len(self), k, self.targets.device)
        return Batch(self.inputs[rows], self.targets[rows], self.task_ids[rows])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"per_class": self.per_class, "num_classes": self.num_classes, "task": self.task}
        if self.inputs is not None:
            state.update(inputs=self.inputs, targets=self.targets, task_ids=self.task_ids)
        if self._x is not None:
            state.update(ring_inputs=self._x, ring_targets=self._y, ring_count=self._count)
        return state

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.per_class, self.num_classes = int(state["per_class"]), int(state["num_classes"])
        self.task = int(state["task"])
        self.inputs = state["inputs"].to(device) if "inputs" in state else None
        self.targets = state["targets"].to(device) if "targets" in state else None
        self.task_ids = state["task_ids"].to(device) if "task_ids" in state else None
        self._x = state["ring_inputs"].to(device) if "ring_inputs" in state else None
        self._y = state["ring_targets"].to(device) if "ring_targets" in state else None
        self._count = state["ring_count"].to(device) if "ring_count" in state else None


class ReservoirBuffer:
    """``capacity`` slots filled by reservoir sampling (Vitter 1985, Algorithm R) over the whole stream.

    The n-th example (0-based) goes to slot n while the buffer is not full;
    afterwards it replaces slot ``j ~ U{0..n}`` when ``j < capacity``, so every
    example seen so far is in the buffer with probability ``capacity / seen``.
    A batch is processed at once: draws depend only on n, and when two
    examples of a batch pick the same slot the later one wins, as it would
    one by one.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.seen = 0
        self.inputs: torch.Tensor | None = None  # (capacity + 1, ...): the last row is a spare slot
        self.targets: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None
        # Further per-slot tensors written with each example (DER's logits), same layout.
        self.extras: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    @torch.no_grad()
    def add(
        self, inputs: torch.Tensor, targets: torch.Tensor, task_ids: torch.Tensor, **extras: torch.Tensor
    ) -> None:
        """Offer a batch in stream order; ``extras`` (e.g. ``logits=``) are stored alongside each example."""
        size, device = self.capacity, targets.device
        if self.inputs is None:
            self.inputs = inputs.new_zeros((size + 1, *inputs.shape[1:]))
            self.targets = targets.new_zeros((size + 1, *targets.shape[1:]))
            self.task_ids = torch.zeros(size + 1, dtype=torch.long, device=device)
        for name, value in extras.items():
            if name not in self.extras:
                self.extras[name] = value.new_zeros((size + 1, *value.shape[1:]))
        b = targets.shape[0]
        order = torch.arange(b, device=device)
        index = order + self.seen  # 0-based stream position of each example
        if self.seen + b <= size:
            slot = index
        else:
            # Uniform on 0..n; the modulo bias of a 62-bit draw is below 2^-40 for any real stream.
            draw = torch.randint(0, 1 << 62, (b,), device=device) % (index + 1)
            slot = torch.where(index < size, index, torch.where(draw < size, draw, torch.full_like(draw, size)))
            # Of several examples aimed at one slot only the last survives.
            last = torch.full((size + 1,), -1, dtype=torch.long, device=device).scatter_reduce(
                0, slot, order, reduce="amax"
            )
            slot = torch.where(last[slot] == order, slot, torch.full_like(slot, size))
        self.inputs[slot] = inputs.to(self.inputs.dtype)
        self.targets[slot] = targets
        self.task_ids[slot] = task_ids.long()
        for name, value in extras.items():
            self.extras[name][slot] = value.detach().to(self.extras[name].dtype)
        self.seen += b

    def sample_rows(self, k: int) -> torch.Tensor:
        """``min(k, len)`` distinct random filled slots."""
        return random_rows(len(self), k, self.targets.device)

    def batch_at(self, rows: torch.Tensor) -> Batch:
        return Batch(self.inputs[rows], self.targets[rows], self.task_ids[rows])

    def sample(self, k: int) -> Batch:
        return self.batch_at(self.sample_rows(k))

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"capacity": self.capacity, "seen": self.seen}
        if self.inputs is not None:
            state.update(inputs=self.inputs, targets=self.targets, task_ids=self.task_ids)
        if self.extras:
            state["extras"] = dict(self.extras)
        return state

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.capacity, self.seen = int(state["capacity"]), int(state["seen"])
        self.inputs = state["inputs"].to(device) if "inputs" in state else None
        self.targets = state["targets"].to(device) if "targets" in state else None
        self.task_ids = state["task_ids"].to(device) if "task_ids" in state else None
        self.extras = {name: value.to(device) for name, value in state.get("extras", {}).items()}


def _joined(batch: Batch, replay: Batch) -> Batch:
    return Batch(
        torch.cat([batch.inputs, replay.inputs.to(batch.inputs.dtype)]),
        torch.cat([batch.targets, replay.targets]),
        torch.cat([batch.task_ids, replay.task_ids.to(batch.task_ids.dtype)]),
    )


class _Replay(Algorithm):
    """What both replay writers share: a buffer on the device, replay joined to each batch, state."""

    stream_memory = True  # the buffer is written from each training batch
    buffer: Any

    @property
    def replay_batch_size(self) -> int:
        return self.params.replay_batch_size or self.batch_size

    def write(self, batch: Batch) -> None:
        """Offer the (already trained on) ``batch`` to the buffer."""
        raise NotImplementedError

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        joint = _joined(batch, self.buffer.sample(self.replay_batch_size)) if len(self.buffer) else batch
        loss = super().train_step(joint, optimizer)
        self.write(batch)
        return loss

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.buffer.load_state_dict(self.buffer.state_dict(), self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"], self.device)


class ERRingParams(Params):
    memory_per_class: int | None = Field(
        None, ge=1,
        description="Ring slots per class and task; unset: per_task_memory_examples / classes in the task "
        "(at least 1), or 1 when the benchmark sets no memory size.",
    )
    replay_batch_size: int | None = Field(
        None, ge=1, description="Memory examples joined to each batch; unset: the trainer's batch size."
    )


class ERRing(_Replay):
    """Experience replay with a per-class FIFO ring buffer filled from the stream.

    Chaudhry et al. 2019b, "On Tiny Episodic Memories in Continual Learning",
    Algorithm 1 with the ring-buffer writer (Sec. 4): every training step of
    task t > 1 joins a random batch of ``replay_batch_size`` memory examples
    of tasks 1..t-1 to the current batch and takes one SGD step on the joint
    mean loss; after the step the current batch is written into task t's
    rings, ``memory_per_class`` slots per class, the oldest overwritten first.
    At the end of the task its filled slots are frozen into the memory. As in
    the authors' code, replay draws from completed tasks only.
    """

    name = "er_ring"
    Params = ERRingParams
    params: ERRingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification":
            raise SpecError("er_ring keeps one ring per class and needs a classification benchmark; use er_reservoir")
        # Rings are indexed by the label as the head sees it (0 .. head_size-1).
        self.buffer = RingBuffer(self.params.memory_per_class or 1, self.benchmark.head_size)

    def slots_per_class(self, task: int) -> int:
        """``memory_per_class``, or the benchmark's per-task memory budget spread over the task's classes."""
        if self.params.memory_per_class is not None:
            return self.params.memory_per_class
        per_task = getattr(self.benchmark.params, "per_task_memory_examples", None)
        if not per_task:
            return 1
        data = self.benchmark.load_train(task)
        targets = data.targets if isinstance(data, TaskData) else getattr(data, "targets", None)
        classes = int(torch.unique(torch.as_tensor(targets)).numel()) if targets is not None else self.benchmark.head_size
        return max(1, per_task // classes)

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        if self.buffer.task != task:
            self.buffer.start_task(task, self.slots_per_class(task))
        return super().prepare_optimizer(task)

    def write(self, batch: Batch) -> None:
        self.buffer.add(batch.inputs, batch.targets)

    def train_task_end(self, task: int) -> None:
        self.buffer.end_task()


class ERReservoirParams(Params):
    memory_size: int | None = Field(
        None, ge=1,
        description="Total memory slots; unset: per_task_memory_examples x num_tasks, or one example "
        "per class per task when the benchmark sets no memory size.",
    )
    replay_batch_size: int | None = Field(
        None, ge=1, description="Memory examples joined to each batch; unset: the trainer's batch size."
    )


class ERReservoir(_Replay):
    """Experience replay with a reservoir-sampled memory over the whole stream.

    Chaudhry et al. 2019b, Algorithm 1 with the reservoir writer (the "ER"
    rows of Mirzadeh et al. 2020's tables): every step joins a random batch of
    up to ``replay_batch_size`` memory examples to the current batch (from the
    first step on, whenever the memory holds anything, current task included)
    and takes one SGD step on the joint mean loss; the batch is then offered
    to the reservoir. The authors' code draws ``j`` from ``0..n-1``; this
    draws from ``0..n``, which is what makes the sample uniform.
    """

    name = "er_reservoir"
    Params = ERReservoirParams
    params: ERReservoirParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = ReservoirBuffer(default_memory_size(self.benchmark, self.params.memory_size))

    def write(self, batch: Batch) -> None:
        self.buffer.add(batch.inputs, batch.targets, batch.task_ids)
