"""Summary metrics of a continual-learning run, computed from its accuracy (or loss) matrix.

Notation, as in CL-Gym (Mirzadeh & Ghasemzadeh, CVPR-W 2021): ``a`` has shape ``(T+1, T)``;
``a[0, j-1]`` is the untrained model on task ``j`` (``b_j``), and ``a[i, j-1]`` is ``a_{i,j}``, the
accuracy on task ``j`` after training task ``i`` (tasks and rows numbered from 1). Accuracies are in
percent. Every function accepts any array-like (nested lists, numpy arrays, torch tensors) and
returns a plain Python float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "average_accuracy",
    "average_forgetting",
    "chaudhry_forgetting",
    "backward_transfer",
    "forward_transfer",
    "learning_accuracy",
    "average_loss",
    "average_loss_forgetting",
    "loss_chaudhry_forgetting",
    "loss_backward_transfer",
    "loss_forward_transfer",
    "learning_loss",
    "summarize",
]


def _matrix(a: Any, what: str = "accuracy matrix") -> np.ndarray:
    """Return ``a`` as a finite float array of shape ``(T+1, T)``, ``T >= 1``, or raise ValueError."""
    if hasattr(a, "detach"):  # torch tensors: drop autograd and leave the GPU before numpy sees them
        a = a.detach().cpu()
    try:
        m = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what}: expected a numeric matrix of shape (T+1, T), got {type(a).__name__} ({exc})"
        ) from None
    if m.ndim != 2 or m.shape[1] < 1 or m.shape[0] != m.shape[1] + 1:
        square = m.ndim == 2 and m.shape[0] == m.shape[1]
        hint = " (one row per task? row 0 must be the untrained model)" if square else ""
        raise ValueError(
            f"{what}: expected shape (T+1, T) with T >= 1, row 0 the untrained model and row i after task i; "
            f"got {m.shape}{hint}"
        )
    if not np.isfinite(m).all():
        row, col = np.argwhere(~np.isfinite(m))[0]
        raise ValueError(f"{what}: values must be finite, got {m[row, col]} at row {row}, column {col}")
    return m


# --- accuracy matrix (higher is better) -----------------------------------------------------------


def average_accuracy(a: Any) -> float:
    """CL-Gym Eq. 1: ``A_T = 1/T * sum_{i=1}^{T} a_{T,i}``, the mean of the last row."""
    m = _matrix(a)
    return float(m[-1].mean())


def average_forgetting(a: Any) -> float:
    """CL-Gym Eq. 2: ``F_T = 1/(T-1) * sum_{i=1}^{T-1} max_{t in {1..T-1}} (a_{t,i} - a_{T,i})``.

    The max runs over every trained row ``t = 1..T-1``, including rows before task ``i`` was learned
    (``t < i``); the untrained row 0 is not included. That is where it differs from Chaudhry et al.
    2018, whose max starts at ``t = i`` (see :func:`chaudhry_forgetting`). A task whose final accuracy
    beats every earlier one adds a negative term, as printed; CL-Gym's own code instead takes the max
    over rows ``1..T``, which clips each task's forgetting at 0. ``0.0`` when ``T == 1``.
    """
    m = _matrix(a)
    t = m.shape[1]
    if t == 1:
        return 0.0
    best = m[1:t, : t - 1].max(axis=0)  # rows 1..T-1, tasks 1..T-1
    return float((best - m[t, : t - 1]).mean())


def chaudhry_forgetting(a: Any) -> float:
    """Forgetting as in Chaudhry et al. 2018 (RWalk), with the max over rows after task ``i`` was learned.

    ``1/(T-1) * sum_{i=1}^{T-1} max_{l in {i..T-1}} (a_{l,i} - a_{T,i})``: unlike CL-Gym's Eq. 2
    (:func:`average_forgetting`), accuracy on task ``i`` before it was trained does not count.
    ``0.0`` when ``T == 1``.
    """
    m = _matrix(a)
    t = m.shape[1]
    if t == 1:
        return 0.0
    per_task = [m[i : t, i - 1].max() - m[t, i - 1] for i in range(1, t)]
    return float(np.mean(per_task))


def backward_transfer(a: Any) -> float:
    """BWT (Lopez-Paz & Ranzato 2017, GEM, Sec. 2): ``1/(T-1) * sum_{i=1}^{T-1} (a_{T,i} - a_{i,i})``.

    Negative means forgetting. ``0.0`` when ``T == 1``.
    """
    m = _matrix(a)
    t = m.shape[1]
    if t == 1:
        return 0.0
    learned = np.diagonal(m[1:t, : t - 1])  # a_{i,i}, i = 1..T-1
    return float((m[t, : t - 1] - learned).mean())


def forward_transfer(a: Any) -> float:
    """FWT (Lopez-Paz & Ranzato 2017, GEM, Sec. 2): ``1/(T-1) * sum_{i=2}^{T} (a_{i-1,i} - b_i)``.

    ``b_i`` is the untrained model (row 0). ``0.0`` when ``T == 1``.
    """
    m = _matrix(a)
    t = m.shape[1]
    if t == 1:
        return 0.0
    before = np.diagonal(m[1:t, 1:])  # a_{i-1,i}, i = 2..T
    return float((before - m[0, 1:]).mean())


def learning_accuracy(a: Any) -> float:
    """Mean of ``a_{i,i}`` over ``i = 1..T``: accuracy on each task right after training it."""
    m = _matrix(a)
    return float(np.diagonal(m[1:]).mean())


# --- loss matrix (lower is better) ------------------------------------------------------------------
# Each is its accuracy counterpart applied to the negated loss, so every sign reads "positive = good"
# except forgetting, which like Eq. 2 is positive when the loss went up.


def average_loss(loss: Any) -> float:
    """Eq. 1 on a loss matrix: ``1/T * sum_{i=1}^{T} l_{T,i}``, the mean of the last row."""
    m = _matrix(loss, "loss matrix")
    return float(m[-1].mean())


def average_loss_forgetting(loss: Any) -> float:
    """Eq. 2 mirrored for a loss: ``1/(T-1) * sum_{i=1}^{T-1} (l_{T,i} - min_{t in {1..T-1}} l_{t,i})``.

    Positive when the final loss is above the best earlier one; same row range as
    :func:`average_forgetting`. ``0.0`` when ``T == 1``.
    """
    return average_forgetting(-_matrix(loss, "loss matrix"))


def loss_chaudhry_forgetting(loss: Any) -> float:
    """Chaudhry et al. 2018 mirrored for a loss: ``1/(T-1) * sum_{i<T} (l_{T,i} - min_{l in {i..T-1}} l_{l,i})``.

    Same row range as :func:`chaudhry_forgetting`. ``0.0`` when ``T == 1``.
    """
    return chaudhry_forgetting(-_matrix(loss, "loss matrix"))


def loss_backward_transfer(loss: Any) -> float:
    """BWT on a loss: ``1/(T-1) * sum_{i=1}^{T-1} (l_{i,i} - l_{T,i})``; positive means old tasks' loss went down."""
    return backward_transfer(-_matrix(loss, "loss matrix"))


def loss_forward_transfer(loss: Any) -> float:
    """FWT on a loss: ``1/(T-1) * sum_{i=2}^{T} (b_i - l_{i-1,i})``; positive means below the untrained loss."""
    return forward_transfer(-_matrix(loss, "loss matrix"))


def learning_loss(loss: Any) -> float:
    """Mean of ``l_{i,i}`` over ``i = 1..T``: loss on each task right after training it."""
    m = _matrix(loss, "loss matrix")
    return float(np.diagonal(m[1:]).mean())


_SUMMARIES = {
    "accuracy": {
        "average_accuracy": average_accuracy,
        "average_forgetting": average_forgetting,
        "chaudhry_forgetting": chaudhry_forgetting,
        "backward_transfer": backward_transfer,
        "forward_transfer": forward_transfer,
        "learning_accuracy": learning_accuracy,
    },
    "loss": {
        "average_loss": average_loss,
        "average_forgetting": average_loss_forgetting,
        "chaudhry_forgetting": loss_chaudhry_forgetting,
        "backward_transfer": loss_backward_transfer,
        "forward_transfer": loss_forward_transfer,
        "learning_loss": learning_loss,
    },
}


def summarize(a: Any, kind: str = "accuracy") -> dict[str, float]:
    """Every summary metric of an accuracy (``kind="accuracy"``) or loss (``kind="loss"``) matrix, by stable key."""
    if kind not in _SUMMARIES:
        raise ValueError(f"summarize: kind must be 'accuracy' or 'loss', got {kind!r}")
    m = _matrix(a, "accuracy matrix" if kind == "accuracy" else "loss matrix")
    return {key: float(fn(m)) for key, fn in _SUMMARIES[kind].items()}
