"""The small 1D CNN CL-Gym uses for PAMAP2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from clgym_core.backbone import Backbone, MultiHead
from clgym_core.component import Params
from clgym_core.errors import SpecError

if TYPE_CHECKING:
    from clgym_core.benchmark import Benchmark


class CNN1DParams(Params):
    input_channels: int = Field(18, ge=1, description="Input channels (sensor axes); defaults from the benchmark.")
    window_length: int = Field(256, ge=1, description="Samples per input window; defaults from the benchmark.")
    output_size: int = Field(12, ge=1, description="Outputs per head; defaults from the benchmark.")
    num_heads: int = Field(1, ge=1, description="Task heads (task-incremental); defaults from the benchmark.")
    conv_channels: list[int] = Field([64, 64], min_length=1, description="Filters of each convolution layer.")
    kernel_size: int = Field(5, ge=1, description="Kernel size of every convolution (no padding).")
    pool_size: int = Field(4, ge=1, description="Max-pooling size after the convolutions.")
    hidden_size: int = Field(200, ge=1, description="Width of the fully connected hidden layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after the convolutions (before pooling).")


class CNN1D(Backbone):
    """1D CNN over time for sensor windows [channels, length]: conv-conv-pool, then two dense layers.

    CL-Gym's PAMAP2 network (Mirzadeh & Ghasemzadeh 2021): Conv1d(C, 64, 5),
    ReLU, Conv1d(64, 64, 5), ReLU, dropout, MaxPool1d(4), Linear(64 * L', 200),
    ReLU, Linear(200, classes), with L' = (L - 8) // 4 (62 for 256-sample
    windows). Differences: input channels, window length and classes come from
    the benchmark instead of being fixed at 18 / 256 / 12; inputs are channels
    first (no transpose); the last layer can hold one head per task; depth and
    widths are params.
    """

    name = "cnn1d"
    Params: ClassVar[type[Params]] = CNN1DParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        length = p.window_length - len(p.conv_channels) * (p.kernel_size - 1)
        pooled = length // p.pool_size
        if pooled < 1:
            raise SpecError(
                f"cnn1d.params.window_length: {p.window_length} samples are too short for "
                f"{len(p.conv_channels)} convolutions of kernel {p.kernel_size} and pooling {p.pool_size}"
            )
        layers: list[nn.Module] = []
        width = p.input_channels
        for filters in p.conv_channels:
            layers += [nn.Conv1d(width, filters, p.kernel_size), nn.ReLU()]
            width = filters
        layers += [nn.Dropout(p.dropout), nn.MaxPool1d(p.pool_size), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.hidden = nn.Sequential(nn.Linear(width * pooled, p.hidden_size), nn.ReLU())
        self.head = MultiHead(p.hidden_size, p.output_size, p.num_heads)

    @classmethod
    def defaults_from(cls, benchmark: Benchmark) -> dict[str, Any]:
        values = super().defaults_from(benchmark)
        shape = tuple(benchmark.input_shape)
        if len(shape) == 2:
            values["window_length"] = int(shape[1])
        return values

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.hidden(self.features(x)), task_ids)
