"""Shared test settings of the clgym-si plugin (it has no other conftest when tested on its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny models: extra threads only add overhead, and on a busy machine they fight other processes.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
