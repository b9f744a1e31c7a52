"""Averaged Gradient Episodic Memory."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams
from clgym_algos.memory import as_task_data, random_rows


class AGEMParams(Params):
    reference_batch_size: int = Field(
        256, ge=1, description="Memory examples behind each reference gradient (all of memory when it is smaller)."
    )


def agem_project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """A-GEM Eq. 11: ``g - (g.g_ref / g_ref.g_ref) g_ref`` when ``g.g_ref < 0``, else ``g`` unchanged.

    Branch-free, so the device never waits for the host: the coefficient is
    exactly zero when there is no conflict.
    """
    dot = torch.dot(g, g_ref)
    coefficient = dot.clamp(max=0) / torch.dot(g_ref, g_ref).clamp_min(torch.finfo(g.dtype).tiny)
    return g - coefficient * g_ref


class AGEM(UsesFlatParams, Algorithm):
    """A-GEM: project the gradient so the average loss on episodic memory does not increase.

    Chaudhry et al. 2019a, "Efficient Lifelong Learning with A-GEM" (ICLR),
    Eq. 10-11. At each step of task t > 1 a reference gradient ``g_ref`` is
    computed on a random batch of ``reference_batch_size`` examples from the
    episodic memories of tasks 1..t-1 ALONE (never mixed with the current
    batch, the original CL-Gym's bug), then the batch gradient ``g`` is replaced
    by ``g - (g.g_ref / g_ref.g_ref) g_ref`` when ``g.g_ref < 0``. Task 1 trains
    as plain SGD.

    Memory is the benchmark's episodic memory (``per_task_memory_examples``
    class-balanced training examples per task, drawn without replacement),
    held on the device; memory examples go through their own task's head.
    The paper fills its memory from the stream as it trains; the benchmark's
    memory is an equally sized sample of the same task's training data.
    """

    name = "agem"
    Params = AGEMParams
    params: AGEMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not getattr(self.benchmark.params, "per_task_memory_examples", None):
            raise SpecError(
                "agem needs episodic memory: set benchmark.params.per_task_memory_examples (e.g. 250)"
            )
        self.memory: TaskData | None = None

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        # Memories of tasks before this one only, moved to the device once per task.
        self.memory = self.to_device(as_task_data(self.benchmark.load_memory_joint(task - 1))) if task > 1 else None
        return super().prepare_optimizer(task)

    def reference_gradient(self) -> torch.Tensor:
        """The flat gradient of the loss on a random memory batch (leaves ``.grad`` set to it)."""
        assert self.memory is not None
        rows = random_rows(len(self.memory), self.params.reference_batch_size, self.memory.device)
        reference = self.memory.batch(rows)
        self.backbone.zero_grad(set_to_none=True)
        self.criterion(self.forward(reference), reference.targets).backward()
        return self.flat.grads()

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if self.memory is None:
            return super().train_step(batch, optimizer)
        g_ref = self.reference_gradient()
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        self.flat.set_grads(agem_project(self.flat.grads(), g_ref))
        optimizer.step()
        return loss.detach()
