"""How the trainer runs (the engineering side): the ``trainer:`` section of a run spec."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
MIXED_PRECISION = ("none", "bf16")
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
