"""The Algorithm interface: the research code of a continual-learning method.

An algorithm holds the backbone and the benchmark and decides, per task, the
optimizer, the training data and what one training step does; the trainer owns
the loop, devices, evaluation and events (CL-Gym paper, Section 3, Algorithm 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from clgym_core.backbone import Backbone
from clgym_core.benchmark import Benchmark
from clgym_core.component import Component, Params, validate_model, validate_params
from clgym_core.data import Batch, DataSource, TaskData
from clgym_core.optim import OptimizerConfig, build_optimizer

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


class Algorithm(Component):
    """Base class: plain sequential training with the benchmark's loss (what ``finetune`` is).

    Override :meth:`train_step` (or :meth:`training_loss`) and the task hooks to
    implement a method. Everything the method accumulates across tasks (memories,
    Fisher information, bases, anchors) belongs in :meth:`state_dict`, as tensors
    and plain Python values, so that runs can be checkpointed and resumed.
    """

    Params: ClassVar[type[Params]] = Params
    #: True when :meth:`train_step` keeps examples of the batches it is given (a replay buffer filled
    #: from the stream). Under ddp each process sees only its slice of every batch, so such a method
    #: is refused there; everything else runs unchanged (see :mod:`clgym_core.distributed`).
    stream_memory: ClassVar[bool] = False

    def __init__(
        self,
        backbone: Backbone,
        benchmark: Benchmark,
        params: Params | dict[str, Any] | None = None,
        optimizer: OptimizerConfig | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a params object or keyword arguments, not both")
        self.params = validate_params(type(self), params if params is not None else kwargs)
        self.backbone = backbone
        self.benchmark = benchmark
        self.optimizer_config = (
            optimizer if isinstance(optimizer, OptimizerConfig)
            else validate_model(OptimizerConfig, optimizer, "optimizer")
        )
        self.trainer: ContinualTrainer | None = None
        self.device = torch.device("cpu")
        self.current_task = 0

    # ---- wiring ------------------------------------------------------------------------------------
    def setup(self, trainer: ContinualTrainer) -> None:
        """Called once at the start of ``fit`` after the backbone moved to ``trainer.device``."""
        self.trainer = trainer
        self.device = trainer.device

    def to_device(self, data: DataSource) -> DataSource:
        """``data`` on the run's device (tensor data only; a Dataset stays where it is)."""
        return data.to(self.device) if isinstance(data, TaskData) else data

    @property
    def batch_size(self) -> int:
        return self.trainer.batch_size if self.trainer is not None else 64

    # ---- per task -----------------------------------------------------------------------------------
    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        """A fresh optimizer for ``task`` from the run's optimizer settings."""
        return build_optimizer(self.backbone.parameters(), self.optimizer_config)

    def prepare_train_data(self, task: int) -> DataSource:
        """What the trainer iterates over while learning ``task``."""
        return self.benchmark.load_train(task)

    # ---- per step -----------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        """The backbone's outputs for ``batch`` (what training differentiates)."""
        return self.backbone(batch.inputs, batch.task_ids)

    def predict(self, batch: Batch) -> torch.Tensor:
        """Scores (one per class) or predictions for evaluation; the trainer scores these.

        The default is :meth:`forward`. A method whose classifier is not the
        backbone's head (iCaRL's nearest mean of exemplars) overrides this; the
        returned scores then feed both the accuracy (arg max) and the loss.
        """
        return self.forward(batch)

    def criterion(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy for classification, mean squared error for regression."""
        if self.benchmark.problem == "regression":
            return F.mse_loss(outputs.reshape(targets.shape), targets.to(outputs.dtype))
        return F.cross_entropy(outputs, targets)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return self.criterion(self.forward(batch), batch.targets)

    def train_step(self, batch: Batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One optimisation step; returns the (detached) loss without synchronising the device."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    # ---- optional hooks -------------------------------------------------------------------------------
    def train_step_end(self, task: int, step: int) -> None:
        """After every training step of ``task``."""

    def train_epoch_end(self, task: int, epoch: int) -> None:
        """After every epoch of ``task``."""

    def train_task_end(self, task: int) -> None:
        """After the last epoch of ``task`` and before it is evaluated."""

    # ---- persistence ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the algorithm accumulated across tasks (not the backbone weights)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        The base class keeps nothing, so it ignores ``state``: a subclass may call
        ``super().load_state_dict(state)`` (the usual pattern) whatever keys it stores itself.
        """
