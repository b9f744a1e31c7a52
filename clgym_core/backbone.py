"""The Backbone interface, multi-head output, and the generic MLP."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from clgym_core.component import Component, Params, validate_params

if TYPE_CHECKING:
    from clgym_core.benchmark import Benchmark


class Backbone(nn.Module, Component):
    """A network mapping a batch of inputs (and their task ids) to outputs.

    ``forward(x, task_ids=None)``: ``task_ids`` are the 1-based task numbers of
    the examples; multi-head backbones use them to pick each example's head.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        nn.Module.__init__(self)
        if params is not None and kwargs:
            raise TypeError("pass either a params object or keyword arguments, not both")
        self.params = validate_params(type(self), params if params is not None else kwargs)

    @classmethod
    def defaults_from(cls, benchmark: Benchmark) -> dict[str, Any]:
        """Parameter values implied by ``benchmark`` (input/output sizes, heads).

        A spec's explicit backbone params override these. The default reads the
        fields ``input_size``, ``input_channels``, ``output_size`` and ``num_heads``
        when the Params model has them.
        """
        fields = cls.Params.model_fields
        values: dict[str, Any] = {}
        shape = tuple(benchmark.input_shape)
        if "input_size" in fields:
            values["input_size"] = int(math.prod(shape))
        if "input_channels" in fields and len(shape) >= 2:
            values["input_channels"] = int(shape[0])
        if "output_size" in fields:
            values["output_size"] = int(benchmark.head_size)
        if "num_heads" in fields:
            values["num_heads"] = int(benchmark.num_heads)
        return values

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def set_dropout(self, p: float) -> int:
        """Set the rate of every dropout layer; returns how many layers were changed."""
        changed = 0
        for module in self.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = float(p)
                changed += 1
        return changed


class MultiHead(nn.Module):
    """``num_heads`` linear heads of ``head_size`` outputs, selected per example by task id.

    All heads are one ``Linear`` layer; selection is a single gather, so there is
    no Python loop over examples or tasks.
    """

    def __init__(self, in_features: int, head_size: int, num_heads: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.head_size = head_size
        self.num_heads = num_heads
        self.linear = nn.Linear(in_features, head_size * num_heads, bias=bias)

    def forward(self, features: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(features)
        if self.num_heads == 1:
            return out
        if task_ids is None:
            raise ValueError("this backbone has several heads: forward() needs task_ids")
        out = out.view(out.shape[0], self.num_heads, self.head_size)
        rows = torch.arange(out.shape[0], device=out.device)
        return out[rows, task_ids.to(out.device).long() - 1]


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


class MLPParams(Params):
    input_size: int = Field(784, ge=1, le=2**31 - 1, description="Inputs (flattened); defaults from the benchmark.")
    hidden_sizes: list[int] = Field([256, 256], max_length=64, description="Width of each hidden layer.")
    output_size: int = Field(10, ge=1, description="Outputs per head; defaults from the benchmark.")
    num_heads: int = Field(1, ge=1, description="Task heads (task-incremental); defaults from the benchmark.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after every hidden activation.")
    activation: Literal["relu", "tanh", "gelu", "sigmoid", "leaky_relu", "elu"] = Field(
        "relu", description="Hidden activation."
    )


    @field_validator("hidden_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(width < 1 or width > 2**31 - 1 for width in value):
            raise ValueError(f"every width must be a positive integer, got {value}")
        return value


class MLP(Backbone):
    """Fully connected network with configurable hidden layers, dropout and task heads."""

    name = "mlp"
    Params = MLPParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        layers: list[nn.Module] = [nn.Flatten()]
        width = p.input_size
        for hidden in p.hidden_sizes:
            layers += [nn.Linear(width, hidden), _ACTIVATIONS[p.activation](), nn.Dropout(p.dropout)]
            width = hidden
        self.features = nn.Sequential(*layers)
        self.head = MultiHead(width, p.output_size, p.num_heads)

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), task_ids)
