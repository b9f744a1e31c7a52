"""GDumb: a greedy class-balanced memory, and a model trained from scratch on it alone."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.optim import build_optimizer
from clgym_core.component import Params
from clgym_core.data import Batch
from clgym_core.errors import SpecError

from clgym_algos.memory import default_memory_size

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class GreedyBalancedBuffer:
    """GDumb's sampler (Prabhu et al. 2020, Sec. 3, "greedy class-balancing sampler") over ``capacity`` slots.

    An example is stored while the memory has room; once it is full, an
    example of class y is stored only if y holds fewer than ``capacity / |seen
    classes|`` slots, and then it replaces a random example of the largest
    class. A batch is processed at once: the first examples fill the free
    slots in stream order; for the rest, each class admits its first
    ``ceil(cap) - count`` examples (cap computed once, with the batch's classes
    counted as seen: the one difference from going one by one), and the
    evictions, one per admitted example, are taken level by level from the
    largest classes (ties at random), which is where one-by-one eviction of
    "the largest class" ends up. No host synchronisation: admitted rows go to
    their victims' slots through a spare slot.
    """

    def __init__(self, capacity: int, num_keys: int) -> None:
        self.capacity = int(capacity)
        self.num_keys = int(num_keys)
        self.size = 0  # filled slots (known on the host: it only grows while there is room)
        self.inputs: torch.Tensor | None = None  # (capacity + 1, ...): the last row is a spare slot
        self.targets: torch.Tensor | None = None
        self.task_ids: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None
        self.counts = torch.zeros(self.num_keys, dtype=torch.long)
        self.seen = torch.zeros(self.num_keys, dtype=torch.bool)

    def __len__(self) -> int:
        return self.size

    def _allocate(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        size, device = self.capacity + 1, targets.device
        self.inputs = inputs.new_zeros((size, *inputs.shape[1:]))
        self.targets = targets.new_zeros((size, *targets.shape[1:]))
        self.task_ids = torch.zeros(size, dtype=torch.long, device=device)
        self.keys = torch.full((size,), -1, dtype=torch.long, device=device)
        self.counts, self.seen = self.counts.to(device), self.seen.to(device)

    def _write(self, slots: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, task_ids: torch.Tensor,
               keys: torch.Tensor) -> None:
        self.inputs[slots] = inputs.to(self.inputs.dtype)
        self.targets[slots] = targets.to(self.targets.dtype)
        self.task_ids[slots] = task_ids.long()
        self.keys[slots] = keys

    @torch.no_grad()
    def add(self, inputs: torch.Tensor, targets: torch.Tensor, task_ids: torch.Tensor, keys: torch.Tensor) -> None:
        """Offer a batch in stream order; ``keys`` name each example's class (0 .. num_keys - 1)."""
        if self.inputs is None:
            self._allocate(inputs, targets)
        keys = keys.long()
        self.seen |= F.one_hot(keys, self.num_keys).any(0)
        fill = min(self.capacity - self.size, keys.shape[0])
        if fill:
            slots = torch.arange(self.size, self.size + fill, device=keys.device)
            self._write(slots, inputs[:fill], targets[:fill], task_ids[:fill], keys[:fill])
            self.counts += torch.bincount(keys[:fill], minlength=self.num_keys)
            self.size += fill
        if fill < keys.shape[0]:
            self._balance(inputs[fill:], targets[fill:], task_ids[fill:], keys[fill:])

    def _balance(self, inputs: torch.Tensor, targets: torch.Tensor, task_ids: torch.Tensor, keys: torch.Tensor) -> None:
        k, device, spare = self.capacity, keys.device, self.capacity
        one_hot = F.one_hot(keys, self.num_keys)
        rank = (one_hot.cumsum(0) - 1).gather(1, keys.unsqueeze(1)).squeeze(1)  # order within its class
        cap = k / self.seen.sum()
        quota = (torch.ceil(cap).long() - self.counts).clamp_min(0)  # admitted while count < cap
        admit = rank < quota[keys]
        admitted = admit.sum()
        evict = self.evictions(self.counts, admitted)
        # Victims: within each class, the evict[c] slots first in a random order.
        order = torch.argsort(torch.rand(k, device=device))
        order = order[torch.argsort(self.keys[:k][order], stable=True)]
        sorted_keys = self.keys[:k][order]
        per_class = torch.bincount(sorted_keys, minlength=self.num_keys)
        start = per_class.cumsum(0) - per_class
        position = torch.arange(k, device=device) - start[sorted_keys]
        victim = position < evict[sorted_keys]
        # The i-th admitted example goes to the i-th victim slot; everything else to the spare slot.
        victim_rank = victim.long().cumsum(0) - 1
        slot_of_rank = torch.full((keys.shape[0] + 1,), spare, dtype=torch.long, device=device)
        slot_of_rank.scatter_(0, torch.where(victim, victim_rank, keys.shape[0]), order)
        slot_of_rank[-1] = spare
        admit_rank = admit.long().cumsum(0) - 1
        slots = torch.where(admit, slot_of_rank[admit_rank.clamp(max=keys.shape[0])], spare)
        self._write(slots, inputs, targets, task_ids, keys)
        self.counts = torch.bincount(self.keys[:k], minlength=self.num_keys)

    def evictions(self, counts: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """How many slots to free in each class: ``total`` of them, always from the largest classes.

        Water-filling from the top: cut every class to the level L, the lowest
        with ``sum_c max(0, count_c - L) <= total``, then take the remaining
        few, one each, from classes at L chosen at random.
        """
        levels = torch.arange(self.capacity + 1, device=counts.device)
        above = (counts.unsqueeze(0) - levels.unsqueeze(1)).clamp_min(0).sum(1)  # S(L), non-increasing
        level = torch.searchsorted(-above, -total.reshape(1).to(above.dtype)).clamp(max=self.capacity)[0]
        cut = (counts - level).clamp_min(0)
        remaining = total - cut.sum()
        at_level = counts >= level
        priority = torch.rand(counts.shape[0], device=counts.device).masked_fill(~at_level, 2.0)
        order_rank = torch.argsort(torch.argsort(priority))
        return cut + ((order_rank < remaining) & at_level).long() * (level > 0).long()

    def all(self) -> Batch:
        return Batch(self.inputs[: self.size], self.targets[: self.size], self.task_ids[: self.size])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"capacity": self.capacity, "num_keys": self.num_keys, "size": self.size,
                                 "counts": self.counts, "seen": self.seen}
        if self.inputs is not None:
            state.update(inputs=self.inputs, targets=self.targets, task_ids=self.task_ids, keys=self.keys)
        return state

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.capacity, self.num_keys, self.size = int(state["capacity"]), int(state["num_keys"]), int(state["size"])
        self.counts, self.seen = state["counts"].to(device), state["seen"].to(device)
        for name in ("inputs", "targets", "task_ids", "keys"):
            setattr(self, name, state[name].to(device) if name in state else None)


class GDumbParams(Params):
    memory_size: int | None = Field(
        None, ge=1,
        description="k: memory slots; unset: per_task_memory_examples x num_tasks, or one per class per task.",
    )
    epochs: int = Field(30, ge=1, description="Epochs of training from scratch on the memory after each task.")
    batch_size: int = Field(16, ge=1, description="Batch size of that training (16 in the paper).")
    lr_min: float = Field(
        0.0005, ge=0, description="Floor of the cosine schedule (SGDR, T_0 = 1 epoch, T_mult = 2); the "
        "optimizer's lr is its top (the paper: 0.05 to 0.0005).",
    )
    clip_grad_norm: float | None = Field(10.0, gt=0, description="Gradient-norm clipping (10 in the paper); unset: none.")


class GDumb(Algorithm):
    """GDumb: store a class-balanced memory greedily; before evaluation, train a fresh model on it alone.

    Prabhu, Torr & Dokania 2020, "GDumb: A Simple Approach that Questions Our
    Progress in Continual Learning" (ECCV), Sec. 3: the stream only feeds the
    sampler (:class:`GreedyBalancedBuffer`; no gradient step is taken on it),
    and whenever the model is to be evaluated (here: after every task) the
    backbone is re-initialised (every module's ``reset_parameters``, from the
    trainer-seeded generator) and trained from scratch on the memory only,
    for ``epochs`` with SGDR and gradient clipping as in the paper. The
    sampler balances (task, label) pairs: the paper's classes in a
    class-incremental stream (where a label belongs to one task), and what
    keeps later tasks in memory when tasks share labels (balancing labels
    alone would refuse every example of a new task once memory is full). With
    one head per task the heads mask the outputs, as the paper's masking at
    inference does. Not done: the paper's cutmix and augmentation.
    """

    stream_memory = True  # the buffer is written from each training batch
    name = "gdumb"
    Params = GDumbParams
    params: GDumbParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification":
            raise SpecError("gdumb balances classes and needs a classification benchmark")
        for name, module in self.backbone.named_modules():
            if any(True for _ in module.parameters(recurse=False)) and not hasattr(module, "reset_parameters"):
                raise SpecError(
                    f"gdumb retrains from scratch and needs reset_parameters() on every module with parameters; "
                    f"backbone module {name or type(module).__name__!r} has none"
                )
        size = default_memory_size(self.benchmark, self.params.memory_size)
        self.buffer = GreedyBalancedBuffer(size, self.benchmark.head_size * self.benchmark.num_tasks)

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.buffer.load_state_dict(self.buffer.state_dict(), self.device)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        keys = (batch.task_ids.long() - 1) * self.benchmark.head_size + batch.targets.long()
        self.buffer.add(batch.inputs, batch.targets, batch.task_ids, keys)
        return torch.zeros((), device=batch.targets.device)

    def reset_backbone(self) -> None:
        for module in self.backbone.modules():
            if hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False)):
                module.reset_parameters()

    def train_task_end(self, task: int) -> None:
        """Re-initialise the backbone and train it on the memory alone."""
        if not len(self.buffer):
            return
        self.reset_backbone()
        memory = self.buffer.all()
        n, size = len(self.buffer), self.params.batch_size
        optimizer = build_optimizer(self.backbone.parameters(), self.optimizer_config)
        schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=1, T_mult=2, eta_min=self.params.lr_min
        )
        steps = math.ceil(n / size)
        self.backbone.train()
        for epoch in range(self.params.epochs):
            order = torch.randperm(n, device=memory.targets.device)
            for step in range(steps):
                rows = order[step * size : (step + 1) * size]
                batch = Batch(memory.inputs[rows], memory.targets[rows], memory.task_ids[rows])
                optimizer.zero_grad(set_to_none=True)
                self.training_loss(batch).backward()
                if self.params.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), self.params.clip_grad_norm)
                optimizer.step()
                schedule.step(epoch + (step + 1) / steps)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"], self.device)
