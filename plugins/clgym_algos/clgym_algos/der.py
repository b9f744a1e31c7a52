"""Dark Experience Replay: replay the network's own past logits (DER), and the labels too (DER++)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.component import Params
from clgym_core.data import Batch

from clgym_algos.er import ReservoirBuffer, _Replay
from clgym_algos.memory import default_memory_size


class DERParams(Params):
    alpha: float = Field(
        0.3, ge=0, description="alpha: weight of the logit-matching term (Eq. 6; 0.3 is the authors' Seq-CIFAR-10 value)."
    )
    memory_size: int | None = Field(
        None, ge=1,
        description="Reservoir slots; unset: per_task_memory_examples x num_tasks, or one example per class "
        "per task when the benchmark sets no memory size.",
    )
    replay_batch_size: int | None = Field(
        None, ge=1, description="Memory examples drawn for each replay term; unset: the trainer's batch size."
    )


class DER(_Replay):
    """Dark Experience Replay: match the logits the network gave buffered examples when they arrived.

    Buzzega et al. 2020, "Dark Experience for General Continual Learning: a
    Strong, Simple Baseline" (NeurIPS), Eq. 6 and Algorithm 1: each step
    minimises ``CE(f(x), y) + alpha * ||z' - f(x')||^2`` where ``(x', z')`` is a
    random batch of ``replay_batch_size`` examples from a reservoir buffer
    (Vitter's Algorithm R over the whole stream, :class:`ReservoirBuffer`)
    together with the logits ``z'`` the network produced for them in the step
    that buffered them (before that step's update). Replay starts as soon as
    the buffer holds anything, task 1 included. The squared distance is the
    mean over logits and examples (``F.mse_loss``), as in the authors' code;
    the paper writes a squared norm, which is the same up to a constant folded
    into ``alpha``. With one head per task the logits are those of the
    example's own head. The paper augments the buffered inputs; this does not.
    """

    name = "der"
    Params = DERParams
    params: DERParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = ReservoirBuffer(default_memory_size(self.benchmark, self.params.memory_size))

    def replay_loss(self) -> torch.Tensor:
        """``alpha * mse(f(x'), z')`` on a random buffer batch."""
        rows = self.buffer.sample_rows(self.replay_batch_size)
        replay = self.buffer.batch_at(rows)
        stored = self.buffer.extras["logits"][rows]
        return self.params.alpha * F.mse_loss(self.forward(replay), stored.to(replay.inputs.dtype))

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        outputs = self.forward(batch)
        loss = self.criterion(outputs, batch.targets)
        if len(self.buffer):
            loss = loss + self.replay_loss()
        loss.backward()
        optimizer.step()
        # The logits of this step, computed before its update: what DER stores (Algorithm 1, line 9).
        self.buffer.add(batch.inputs, batch.targets, batch.task_ids, logits=outputs.detach())
        return loss.detach()


class DERPPParams(DERParams):
    alpha: float = Field(
        0.1, ge=0, description="alpha: weight of the logit-matching term (Eq. 7; the authors' Seq-CIFAR-10 value)."
    )
    beta: float = Field(
        0.5, ge=0, description="beta: weight of the label term on a second buffer batch (Eq. 7)."
    )


class DERPP(DER):
    """DER++: Dark Experience Replay plus a cross-entropy term on buffered labels.

    Buzzega et al. 2020, Eq. 7 and Algorithm 1 (the DER++ lines): DER's
    objective plus ``beta * CE(f(x''), y'')`` on a second random buffer batch
    ``(x'', y'')``, drawn independently of the one used for the logits.
    Everything else is as in :class:`DER`.
    """

    name = "derpp"
    Params = DERPPParams
    params: DERPPParams

    def replay_loss(self) -> torch.Tensor:
        replay = self.buffer.sample(self.replay_batch_size)
        label_term = self.criterion(self.forward(replay), replay.targets)
        return super().replay_loss() + self.params.beta * label_term
