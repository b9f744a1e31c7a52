"""What a run used: peak host and GPU memory, measured in one place."""

from __future__ import annotations

import resource
import sys

import torch


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_gpu_memory_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated by tensors on ``device`` in MiB; None off CUDA."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
