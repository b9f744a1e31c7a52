"""The backbones of the CL-Gym paper's image experiments."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from clgym_core.backbone import MLP, Backbone, MultiHead
from clgym_core.component import Params


class MLP2LayersParams(Params):
    input_size: int = Field(784, ge=1, description="Inputs (flattened); defaults from the benchmark.")
    hidden_size: int = Field(256, ge=1, description="Width of both hidden layers.")
    output_size: int = Field(10, ge=1, description="Outputs per head; defaults from the benchmark.")
    num_heads: int = Field(1, ge=1, description="Task heads (task-incremental); defaults from the benchmark.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after each hidden activation.")
    dropout_at_eval: bool = Field(
        False,
        description="Keep the dropout active when evaluating too (one stochastic pass): how the Stable SGD "
        "authors' copy of the A-GEM code ran its baselines (tf.nn.dropout, keep 0.75, has no training flag).",
    )
    activation: Literal["relu", "tanh", "gelu", "sigmoid", "leaky_relu", "elu"] = Field(
        "relu", description="Hidden activation."
    )
    init: Literal["pytorch", "xavier", "truncated_normal"] = Field(
        "pytorch",
        description="Weights: pytorch (nn.Linear's default); xavier (Glorot uniform, gain 1, zero biases, "
        "each task head its own layer: the MNIST MLP of the DER authors' code); truncated_normal (normal, "
        "std 0.1, redrawn beyond 2 std, biases 0.1: the A-GEM authors' TensorFlow MLP).",
    )

    @property
    def hidden_sizes(self) -> list[int]:
        """What the core MLP builds from: two hidden layers of ``hidden_size``."""
        return [self.hidden_size, self.hidden_size]


class _EvalDropout(nn.Dropout):
    """Dropout that stays on in ``eval()`` mode (inverted scaling, as in training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True)


class MLP2Layers(MLP):
    """The paper's two-hidden-layer MLP: 784-256-256-10 by default, ReLU, optional dropout.

    CL-Gym's ``MLP2Layers`` (Mirzadeh & Ghasemzadeh 2021), the network of the
    Rotated/Permuted MNIST experiments of Stable SGD and MC-SGD: inputs are
    flattened, each hidden layer is Linear -> activation -> dropout, and the
    output is one head per task when the benchmark is task-incremental. Input
    size and heads default from the benchmark. Where we differ: CL-Gym allowed
    two different hidden widths; here both take ``hidden_size`` (use the core
    ``mlp`` for other shapes).

    Two options exist to rerun other authors' baselines on the same network:
    ``init: truncated_normal`` is the A-GEM code's initialisation
    (``truncated_normal_initializer(stddev=0.1)``, biases 0.1), and
    ``dropout_at_eval`` keeps dropout on at test time, as the Stable SGD
    authors' fork of that code did for its EWC, A-GEM and ER rows.
    """

    name = "mlp2layers"
    Params: ClassVar[type[Params]] = MLP2LayersParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        if self.params.init == "xavier":
            self._xavier()
        elif self.params.init == "truncated_normal":
            self._truncated_normal()
        if self.params.dropout_at_eval:
            for index, module in enumerate(self.features):
                if isinstance(module, nn.Dropout):
                    self.features[index] = _EvalDropout(module.p)

    @torch.no_grad()
    def _truncated_normal(self) -> None:
        """N(0, 0.1^2) redrawn outside [-0.2, 0.2] (TensorFlow's truncated normal), biases 0.1 (A-GEM's ``fc_variables``)."""
        for layer in [m for m in self.features if isinstance(m, nn.Linear)] + [self.head.linear]:
            nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.1, a=-0.2, b=0.2)
            if layer.bias is not None:
                layer.bias.fill_(0.1)

    @torch.no_grad()
    def _xavier(self) -> None:
        """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), biases 0; a head's fan_out is its own size."""
        layers = [m for m in self.features if isinstance(m, nn.Linear)] + [self.head.linear]
        for layer in layers:
            fan_in = layer.in_features
            fan_out = self.head.head_size if layer is self.head.linear else layer.out_features
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            layer.weight.uniform_(-bound, bound)
            if layer.bias is not None:
                layer.bias.zero_()


# ---- reduced ResNet-18 ---------------------------------------------------------------------------
BatchNormMode = Literal["running", "batch", "none"]


def _norm(channels: int, mode: BatchNormMode) -> nn.Module:
    if mode == "none":
        return nn.Identity()
    return nn.BatchNorm2d(channels, track_running_stats=(mode == "running"))


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016); 1x1 projection when the shape changes.

    Dropout follows each convolution's normalisation and activation (the second one's after the
    residual sum), where the Stable SGD authors' blocks put it.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, mode: BatchNormMode, dropout: float = 0.0) -> None:
        super().__init__()
        bias = mode == "none"  # without batch norm there is no shift to absorb a bias
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = _norm(planes, mode)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=bias)
        self.bn2 = _norm(planes, mode)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=bias), _norm(planes, mode)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop1(F.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.drop2(F.relu(out + self.shortcut(x)))


class ResNet18ReducedParams(Params):
    input_channels: int = Field(3, ge=1, description="Image channels; defaults from the benchmark.")
    output_size: int = Field(10, ge=1, description="Outputs per head; defaults from the benchmark.")
    num_heads: int = Field(1, ge=1, description="Task heads (task-incremental); defaults from the benchmark.")
    base_filters: int = Field(20, ge=1, description="Filters of the first stage (20 in GEM; 64 is ResNet-18).")
    batch_norm: BatchNormMode = Field(
        "running",
        description="running: BatchNorm with running statistics for evaluation (GEM); batch: always the "
        "batch's statistics (no running averages that drift across tasks); none: no normalisation.",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Dropout after each convolution of every block (Stable SGD's Split CIFAR-100 network); "
        "training only.",
    )


class ResNet18Reduced(Backbone):
    """Reduced ResNet-18 (20 base filters) of GEM, A-GEM, ER and MC-SGD, with optional task heads.

    Lopez-Paz & Ranzato (GEM, 2017), used by Chaudhry et al. (A-GEM 2019, ER
    2019) and Mirzadeh et al. (Stable SGD 2020, MC-SGD 2021): a 3x3 stride-1 stem
    with ``nf`` filters, four stages of two basic blocks with ``nf, 2nf, 4nf, 8nf``
    filters and strides 1, 2, 2, 2, global average pooling, then a linear layer
    (one head per task when task-incremental). Where we differ: the pooling is
    adaptive (GEM's ``avg_pool2d(out, 4)`` is the same on 32x32 inputs, and this
    also accepts 28x28 ones), and batch norm is a parameter.

    ``dropout`` (0 by default, as in GEM) puts a dropout layer after each
    convolution of every block, as the Stable SGD authors' network for Split
    CIFAR-100 does (``stable_sgd/models.py``: batch norm then dropout after
    each convolution; their block also skips its second convolution, ours
    keeps it). The layers exist at rate 0 too, so ``stable_sgd`` can set them.
    """

    name = "resnet18_reduced"
    Params: ClassVar[type[Params]] = ResNet18ReducedParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        nf, mode = p.base_filters, p.batch_norm
        self.conv1 = nn.Conv2d(p.input_channels, nf, 3, stride=1, padding=1, bias=mode == "none")
        self.bn1 = _norm(nf, mode)
        stages, in_planes = [], nf
        for planes, stride in ((nf, 1), (2 * nf, 2), (4 * nf, 2), (8 * nf, 2)):
            stages.append(nn.Sequential(
                _BasicBlock(in_planes, planes, stride, mode, p.dropout), _BasicBlock(planes, planes, 1, mode, p.dropout)
            ))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = MultiHead(8 * nf, p.output_size, p.num_heads)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``8 * base_filters`` pooled features of ``x`` ``[N, C, H, W]``."""
        if x.dim() != 4:
            raise ValueError(f"resnet18_reduced expects images [N, C, H, W], got shape {tuple(x.shape)}")
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), task_ids)
