"""Experience replay with asymmetric cross-entropy (ER-ACE)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.component import Params
from clgym_core.data import Batch
from clgym_core.errors import SpecError

from clgym_algos.er import ReservoirBuffer, _Replay
from clgym_algos.memory import default_memory_size


class ERACEParams(Params):
    memory_size: int | None = Field(
        None, ge=1,
        description="Reservoir slots; unset: per_task_memory_examples x num_tasks, or one example per class "
        "per task when the benchmark sets no memory size.",
    )
    replay_batch_size: int | None = Field(
        None, ge=1, description="Memory examples replayed with each batch; unset: the trainer's batch size."
    )


def masked_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the classes ``allowed`` (a bool mask over the outputs) only: the others' logits
    are set to the lowest float, so they take no probability mass and get no gradient."""
    masked = outputs.masked_fill(~allowed, torch.finfo(outputs.dtype).min)
    return F.cross_entropy(masked, targets)


class ERACE(_Replay):
    """ER-ACE: the incoming batch's loss only sees the classes in that batch; replay sees every class so far.

    Caccia et al. 2022, "New Insights on Reducing Abrupt Representation Change
    in Online Continual Learning" (ICLR), the ER-ACE objective: ``L = CE(f(x_in)
    restricted to C_in, y_in) + CE(f(x_bf) restricted to C_seen, y_bf)``, where
    ``C_in`` are the classes present in the incoming batch and ``C_seen`` every
    class met so far; the two terms are averaged separately and summed. So
    the new classes' samples do not push down the logits of old classes, which
    is what drifts the old classes' representations when new ones arrive.
    The buffer is a reservoir over the whole stream (as in the paper), replayed
    from the first step on whenever it holds anything. Masking applies from
    task 1 on (the authors' code starts it at task 2). With one head per task
    the classes are those of each head, as the head sees them.
    """

    name = "er_ace"
    Params = ERACEParams
    params: ERACEParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification":
            raise SpecError("er_ace masks classes and needs a classification benchmark; use er_reservoir")
        self.buffer = ReservoirBuffer(default_memory_size(self.benchmark, self.params.memory_size))
        self.seen_classes = torch.zeros(self.benchmark.head_size, dtype=torch.bool)

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        self.seen_classes = self.seen_classes.to(self.device)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        present = F.one_hot(batch.targets.long(), self.benchmark.head_size).any(0)
        self.seen_classes |= present
        loss = masked_cross_entropy(self.forward(batch), batch.targets, present)
        if len(self.buffer):
            replay = self.buffer.sample(self.replay_batch_size)
            loss = loss + masked_cross_entropy(self.forward(replay), replay.targets, self.seen_classes)
        loss.backward()
        optimizer.step()
        self.buffer.add(batch.inputs, batch.targets, batch.task_ids)
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seen_classes": self.seen_classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen_classes = state["seen_classes"].to(self.device)
