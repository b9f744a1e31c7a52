"""Component construction from Python: keyword validation, Params models, built-in callbacks."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console

from clgym_core.algorithm import Algorithm, OptimizerConfig, build_optimizer
from clgym_core.backbone import MLP
from clgym_core.progress import ProgressBar
from clgym_core.component import Component, Params
from clgym_core.errors import SpecError
from clgym_core.testing import SyntheticBlobs
from clgym_core.trainer import ContinualTrainer


def test_keyword_construction_goes_through_validation() -> None:
    hint = r"did you mean hidden_sizes\? \(known: input_size, hidden_sizes, "
    with pytest.raises(SpecError, match=rf"^mlp.params.hidden: unknown parameter; {hint}"):
        MLP(hidden=3)
    with pytest.raises(SpecError, match=r"mlp.params.dropout: Input should be less than 1"):
        MLP(dropout=1.5)
    with pytest.raises(SpecError, match=r"synthetic_blobs.params.num_tasks: Input should be greater than or equal to 1"):
        SyntheticBlobs(num_tasks=0)
    with pytest.raises(SpecError, match=r"optimizer.lr: Input should be greater than 0"):
        Algorithm(MLP(), SyntheticBlobs(), optimizer={"lr": 0})
    model = MLP(input_size=3, hidden_sizes=[5], output_size=4, num_heads=2, dropout=0.2)
    assert model.params.hidden_sizes == [5] and model.set_dropout(0.5) == 1
    assert model(torch.zeros(7, 3), torch.full((7,), 2)).shape == (7, 4)


def test_check_component_rejects_bad_classes() -> None:
    class BadName(Component):
        name = "Bad-Name"

    class Loose(Component):
        name = "loose"

        class Params(Params.__base__):  # a pydantic model that allows extra keys
            pass

    with pytest.raises(TypeError, match="snake_case"):
        BadName.check_component()
    with pytest.raises(TypeError, match="must forbid extra keys"):
        Loose.check_component()


def test_build_optimizer_kinds() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, OptimizerConfig(name="sgd", lr=0.1, momentum=0.8, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    adam = build_optimizer(params, OptimizerConfig(name="adam", lr=0.1), lr=0.05)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 0.05


def test_progress_bar_shows_tasks_and_accuracy() -> None:
    buffer = io.StringIO()
    progress = ProgressBar()
    benchmark = SyntheticBlobs(num_tasks=2, train_examples=32)
    trainer = ContinualTrainer(Algorithm(MLP(input_size=8, output_size=2), benchmark, optimizer={"lr": 0.1}),
                               callbacks=[progress], batch_size=16, device="cpu")
    progress.console = Console(file=buffer, width=120, force_terminal=False)
    trainer.fit()
    text = buffer.getvalue()
    assert "task" in text and "2/2" in text and "mean acc on seen tasks" in text
    assert progress._progress is None  # stopped at teardown
