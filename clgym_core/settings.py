"""How the trainer runs (the engineering side): the ``trainer:`` section of a run spec."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clgym_core.component import combination_error

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
MIXED_PRECISION = ("none", "bf16")
# The Lightning Fabric path (clgym_core.distributed): one table for the settings and their checks.
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
STRATEGIES = ("single_device", "ddp")
# 16-mixed needs a gradient scaler, and algorithms that edit gradients would see scaled ones.
PRECISIONS = ("32-true", "bf16-mixed")
FABRIC_FIELDS = ("accelerator", "devices", "num_nodes", "strategy", "precision")
MAX_THREADS = 1024


class TrainerSettings(BaseModel):
    """How the trainer runs (the engineering side)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    epochs_per_task: int = Field(1, ge=1, le=1_000_000, description="Training epochs on each task.")
    batch_size: int = Field(64, ge=1, le=2**31 - 1, description="Training batch size.")
    eval_batch_size: int = Field(1024, ge=1, le=2**31 - 1, description="Evaluation batch size.")
    device: str = Field("auto", description="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
    shuffle: bool = Field(True, description="Shuffle training data every epoch (seeded).")
    stop_on_nonfinite: bool = Field(True, description="Stop when the training loss becomes NaN or infinite.")
    progress: bool = Field(
        True, description="Show a live progress display on stderr (adds the `progress` callback to the run)."
    )
    num_threads: int | None = Field(
        None, ge=1, le=MAX_THREADS, description="CPU threads for torch (torch.set_num_threads); torch's default when unset."
    )
    checkpoint: bool = Field(True, description="Write RUN_DIR/checkpoint.pt after every task (clgym run --resume).")
    early_stopping_patience: int | None = Field(
        None, ge=1, le=1_000_000,
        description="Stop a task's epochs once its validation accuracy (loss for regression) has not improved for "
        "this many epochs; needs benchmark.params.validation_fraction. Off when unset.",
    )
    mixed_precision: Literal["none", "bf16"] = Field(
        "none", description="none, or bf16: autocast training steps and evaluation to bfloat16 (CUDA)."
    )

    accelerator: Literal[ACCELERATORS] | None = Field(
        None, description="Lightning Fabric: the kind of device (auto, cpu, cuda or gpu, mps). Setting any of "
        "accelerator, devices, num_nodes, strategy or precision runs through Fabric (pip install "
        "clgym-core[fabric]); unset, the run uses `device` without Fabric.",
    )
    devices: int | None = Field(
        None, ge=1, le=MAX_THREADS, description="Lightning Fabric: processes (one device each) per node, 1 when unset; more than one "
        "needs strategy ddp (the default then).",
    )
    num_nodes: int = Field(1, ge=1, le=MAX_THREADS, description="Lightning Fabric: machines taking part (ddp).")
    strategy: Literal[STRATEGIES] | None = Field(
        None, description="Lightning Fabric: single_device, or ddp: each batch_size batch is split across the "
        "processes and gradients are averaged, so results match one process (docs/performance.md).",
    )
    precision: Literal[PRECISIONS] | None = Field(
        None, description="Lightning Fabric: 32-true, or bf16-mixed (autocast to bfloat16; the Fabric path's "
        "mixed_precision: bf16).",
    )

    @property
    def processes(self) -> int:
        """Training processes the run starts: devices per node times nodes (1 without Fabric)."""
        return (self.devices or 1) * self.num_nodes

    @property
    def uses_fabric(self) -> bool:
        """Whether any Fabric field is set: the run goes through Lightning Fabric."""
        return any(getattr(self, name) is not None for name in FABRIC_FIELDS if name != "num_nodes") \
            or self.num_nodes != 1

    @model_validator(mode="after")
    def _fabric_combinations(self) -> TrainerSettings:
        if not self.uses_fabric:
            return self
        if self.device != "auto":
            raise combination_error("device", "leave it auto when Fabric fields (accelerator, devices, num_nodes, "
                                    "strategy, precision) are set; name the device with accelerator")
        if self.mixed_precision != "none":
            raise combination_error("mixed_precision", "use precision: bf16-mixed with Fabric fields set")
        if self.strategy == "single_device" and ((self.devices or 1) > 1 or self.num_nodes > 1):
            raise combination_error("strategy", "single_device runs one process; use ddp for several devices or nodes")
        processes = self.processes
        if self.batch_size < processes:
            raise combination_error("batch_size", f"{self.batch_size} is the global batch and must give each of the "
                                    f"{processes} processes at least one example")
        return self

    @field_validator("accelerator", "strategy", "precision", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _mixed_precision(cls, value: Any) -> Any:
        # YAML reads `no`/`off` as false.
        if value is None or value is False:
            return "none"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
        return value
