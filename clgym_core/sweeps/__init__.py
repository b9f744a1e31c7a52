"""Many runs: sweeps over spec fields and hyper-parameter tuning on Optuna.

``clgym sweep`` / :func:`sweep` run every point of a sweep file (a run spec plus a
``sweep:`` section) as an ordinary run directory; ``clgym tune`` / :func:`tune`
search a space of spec fields with Optuna, against validation data by default.
Executors (:mod:`clgym_core.sweeps.executors`) run the work in local processes,
in-process, or on a Ray cluster. Importing this package imports neither torch
nor optuna: worker processes set their thread counts first.
"""

from __future__ import annotations

from typing import Any


def sweep(*args: Any, **kwargs: Any) -> Any:
    """See :func:`clgym_core.sweeps.run.sweep`."""
    from clgym_core.sweeps.run import sweep as _sweep

    return _sweep(*args, **kwargs)


def tune(*args: Any, **kwargs: Any) -> Any:
    """See :func:`clgym_core.sweeps.tuning.tune`."""
    from clgym_core.sweeps.tuning import tune as _tune

    return _tune(*args, **kwargs)


__all__ = ["sweep", "tune"]
