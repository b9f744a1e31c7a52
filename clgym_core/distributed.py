"""Where a run trains: one device in this process (the default), or the devices and processes of Lightning Fabric.

A :class:`Placement` is what the trainer asks of either: the device, this process's rank
among ``world_size``, its slice of each batch, collectives, and autocast. The default,
:class:`Placement` itself, is one process on one device and every method is free (an
identity, a ``nullcontext``), so a run that sets no Fabric field never imports Lightning.

:class:`FabricPlacement` (``trainer.strategy: ddp`` and friends; ``pip install
clgym-core[fabric]``) lets Fabric pick devices, launch the processes and set up the
process group, and keeps data parallelism exact rather than approximate:

- every process draws the same seeded global batch of ``batch_size`` rows and trains on
  its contiguous slice of it (:meth:`Placement.shard`);
- right after each backward pass, inside it, the gradients of every parameter the
  optimizer steps are summed across processes with each process weighted by its share of
  the global batch (:class:`GradientAverager`), so an algorithm that edits gradients
  (A-GEM, GEM, OGD, EWC's penalty) reads the gradient of the global batch's mean loss
  and never has to know it runs in several processes. The weights sum to one, so a
  backward pass on data every process holds alike (a memory batch drawn from the
  trainer-seeded RNG) comes out unchanged;
- after each task's training, process 0's weights, buffers and algorithm state are sent
  to every process, so task-end statistics (Fisher, bases, importances, computed on the
  full data in each process) are identical everywhere by construction.

Fabric's own DDP wrapper is not used: it synchronises only backward passes whose forward
went through the wrapper, while an algorithm calls its backbone directly and may run
several backward passes per step (A-GEM's reference gradient, GEM's one per past task).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import torch

from clgym_core.checkpoint import to_device
from clgym_core.data import Batch
from clgym_core.errors import ClgymError, SpecError
from clgym_core.settings import FABRIC_FIELDS, TrainerSettings

INSTALL_HINT = "pip install clgym-core[fabric]"
# Set by a process that lets Fabric start the others: they end when it does (see follow_parent).
PARENT_ENV = "CLGYM_FABRIC_PARENT"


class Placement:
    """One process on one device: sharding, collectives and autocast are identities."""

    rank = 0
    world_size = 1

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory, checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager | None:
        """The precision context of training steps and evaluation; None: full precision, no context at all."""
        return None

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        """This process's rows of the global ``batch`` and its share of the batch's mean loss."""
        return batch, 1.0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over processes (in place where distributed)."""
        return tensor

    def broadcast_state(self, state: Any) -> Any:
        """Process 0's ``state`` (tensors and plain values) in every process."""
        return state

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with process 0's."""

    def barrier(self) -> None:
        """Wait until every process reaches this point."""

    def gradient_averager(self, params: Iterable[torch.nn.Parameter]) -> GradientAverager | None:
        """Hooks that average ``params``' gradients across processes in every backward pass (None: one process)."""
        return None


class GradientAverager:
    """Sums the gradients of ``params`` across processes at the end of every backward pass.

    Each parameter gets a post-accumulate-grad hook; the first one to fire in a backward
    pass queues one callback on the autograd engine, which runs when that backward pass
    ends: it flattens every parameter's gradient (zeros where a process has none) times
    :attr:`weight` into one buffer, plus one has-a-gradient flag per parameter, and sums
    the buffer across processes in a single all-reduce. A parameter that got no gradient
    in any process keeps ``grad = None``, as it would in one process (so optimizers that
    skip such parameters still do). Summing is linear, so a gradient accumulated over
    several backward passes stays right: what was already averaged is the same everywhere
    and the weights sum to one.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], placement: FabricPlacement) -> None:
        self.params = [p for p in dict.fromkeys(params) if p.requires_grad]
        self.placement = placement
        self.weight = 1.0 / placement.world_size  # outside training steps: a plain average
        self._queued = False
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]

    def _on_grad(self, param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._reduce)

    def _reduce(self) -> None:
        self._queued = False
        params = self.params
        parts, flags = [], []
        for p in params:
            grad = p.grad
            flags.append(grad is not None)
            parts.append(grad.reshape(-1) if grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
        flat = torch.cat(parts)
        if self.weight != 1.0:
            flat.mul_(self.weight)
        flat = torch.cat([flat, torch.tensor(flags, dtype=flat.dtype, device=flat.device)])
        self.placement.all_reduce_sum(flat)
        has_grad = flat[-len(params):].tolist()
        offset = 0
        for p, any_grad in zip(params, has_grad):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p) if any_grad > 0 else None
            offset += n

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class FabricPlacement(Placement):
    """The devices and processes Lightning Fabric launched for this run (see the module docstring)."""

    def __init__(self, fabric: Any, mixed_precision: bool) -> None:
        self.fabric = fabric
        super().__init__(fabric.device)
        self.rank = int(fabric.global_rank)
        self.world_size = int(fabric.world_size)
        self._mixed = mixed_precision

    def autocast(self) -> contextlib.AbstractContextManager | None:
        return self.fabric.autocast() if self._mixed else None

    def shard(self, batch: Batch) -> tuple[Batch, float]:
        if self.world_size == 1:
            return batch, 1.0
        n = batch.targets.shape[0]
        lo, hi = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        if hi == lo:  # a final batch smaller than the process count: train on one row, weighted zero
            lo, hi, weight = n - 1, n, 0.0
        else:
            weight = (hi - lo) / n
        return Batch(*(field[lo:hi] for field in batch)), weight

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def broadcast_state(self, state: Any) -> Any:
        if self.world_size == 1:
            return state
        received = self.fabric.broadcast(to_device(state, torch.device("cpu")) if self.rank == 0 else None, src=0)
        return to_device(received, self.device)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if self.world_size == 1:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.world_size > 1:
            self.fabric.barrier()

    def gradient_averager(self, params: Iterable[torch.nn.Parameter]) -> GradientAverager | None:
        return GradientAverager(params, self) if self.world_size > 1 else None


def fabric_class(settings: TrainerSettings) -> type:
    """Lightning Fabric's ``Fabric`` class; one line with the install hint when it is missing."""
    try:
        from lightning_fabric import Fabric  # the standalone distribution
    except ImportError:
        try:
            from lightning.fabric import Fabric  # the same code inside the `lightning` distribution
        except ImportError:
            raise ClgymError(
                f"trainer: {_fabric_fields(settings)} need Lightning Fabric; install it: {INSTALL_HINT}"
            ) from None
    return Fabric


def splits_batches(settings: TrainerSettings) -> bool:
    """Whether ``settings`` may run several processes, each on a slice of every batch."""
    return settings.strategy == "ddp" or settings.processes > 1


def check_distributable(algorithm_cls: type, settings: TrainerSettings, source: str) -> None:
    """Refuse, in one line, an algorithm that cannot train on slices of batches when ``settings`` split them."""
    if splits_batches(settings) and getattr(algorithm_cls, "stream_memory", False):
        name = getattr(algorithm_cls, "name", algorithm_cls.__name__)
        raise SpecError(
            f"{source}: trainer.strategy: ddp gives each process a slice of every batch, but algorithm {name} "
            "fills its memory from the batches it trains on, so each process would keep a different memory; "
            "run it on one device (unset the Fabric fields)"
        )


def follow_parent() -> None:
    """In a process Fabric started from this one's parent: exit as soon as that parent is gone.

    Otherwise a process 0 that stopped on an error (a run directory it could not claim, a
    failing callback) would leave the others waiting for it in a collective.
    """
    parent = os.environ.get(PARENT_ENV)
    if parent is None or not parent.isdigit() or int(parent) != os.getppid():
        return
    threading.Thread(target=_exit_with_parent, args=(int(parent),), daemon=True, name="clgym-follow-parent").start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def fabric_placement(settings: TrainerSettings) -> FabricPlacement:
    """Start Lightning Fabric as ``settings`` say and launch its processes (this one becomes one of them).

    With ``strategy: ddp`` and no launcher around it, Fabric starts the other local
    processes by running this process's command line again; under ``torchrun`` (or
    any launcher that sets ``LOCAL_RANK``) it joins the processes that launcher started.
    """
    fabric_cls = fabric_class(settings)
    # Fabric names no "single_device" strategy: on one device its "auto" is exactly that.
    strategy = "ddp" if splits_batches(settings) else "auto"
    options: dict[str, Any] = {
        "accelerator": settings.accelerator or "auto",
        "devices": settings.devices if settings.devices is not None else 1,
        "num_nodes": settings.num_nodes,
        "strategy": strategy,
        "precision": settings.precision or "32-true",
    }
    if "LOCAL_RANK" not in os.environ:  # Fabric starts the other processes: they watch this one
        os.environ[PARENT_ENV] = str(os.getpid())
    try:
        fabric = fabric_cls(**options)
        fabric.launch()
    except (ValueError, TypeError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ClgymError(f"trainer: Lightning Fabric cannot run {_fabric_fields(settings)}: {first}") from None
    return FabricPlacement(fabric, mixed_precision=settings.precision == "bf16-mixed")


def _fabric_fields(settings: TrainerSettings) -> str:
    shown = [f"{name}={getattr(settings, name)}" for name in FABRIC_FIELDS
             if getattr(settings, name) is not None and (name != "num_nodes" or settings.num_nodes != 1)]
    return ", ".join(shown)
