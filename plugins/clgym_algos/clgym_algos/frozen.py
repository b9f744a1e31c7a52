"""A frozen copy of the network: the "previous model" that LwF and iCaRL distil from."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class FrozenCopy:
    """A snapshot of a network in eval mode whose parameters take no gradient and never change.

    :meth:`update` replaces it with a copy of the given network; the snapshot's
    weights (and buffers) are its whole state, so a checkpoint restores it exactly.
    """

    def __init__(self) -> None:
        self.module: nn.Module | None = None

    def __bool__(self) -> bool:
        return self.module is not None

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.module = copy.deepcopy(network)
        self.module.eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        assert self.module is not None, "no previous model yet"
        return self.module(inputs, task_ids)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.module is None else {"weights": dict(self.module.state_dict())}

    def load_state_dict(self, state: dict[str, Any], network: nn.Module) -> None:
        """Restore into a copy of ``network`` (the architecture; its weights are overwritten)."""
        if not state:
            self.module = None
            return
        self.update(network)
        self.module.load_state_dict(state["weights"])
