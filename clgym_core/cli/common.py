"""Shared pieces of the CLI: consoles, one-line user errors with exit code 2, tables."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

USER_ERROR = 2
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def one_line(message: Any) -> str:
    """``message`` with all whitespace runs (newlines too) collapsed to single spaces."""
    return " ".join(str(message).split())


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def matrix_table(matrix: list[list[float]], title: str, digits: int = 2) -> Table:
    """Rows ``untrained``, ``after 1``..; a column per task."""
    table = Table(title=title, title_justify="left")
    table.add_column("after", justify="left")
    num_tasks = len(matrix[0]) if matrix else 0
    for j in range(1, num_tasks + 1):
        table.add_column(f"T{j}", justify="right")
    for i, row in enumerate(matrix):
        table.add_row("untrained" if i == 0 else f"task {i}", *[fmt(v, digits) for v in row])
    return table


def trial_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show_trials(frame: Any, limit: int | None = None, maximize: bool = True) -> None:
    """Trials best first (finished ones), then pruned, failed and the rest."""
    if frame is None or not len(frame):
        console.print("no trials yet", markup=False)
        return
    order = {"complete": 0, "pruned": 1, "fail": 2, "interrupted": 3}
    frame = frame.assign(_o=frame["state"].map(lambda s: order.get(s, 4)))
    frame = frame.sort_values(["_o", "value"], ascending=[True, not maximize], kind="stable").drop(columns="_o")
    fixed = {"trial", "state", "value", "steps", "reason", "worker", "run_dir"}
    params = [c for c in frame.columns if c not in fixed]
    table = Table(title=f"trials: {len(frame)}", title_justify="left")
    for name in ["trial", "state", "value", *params, "steps", "reason"]:
        table.add_column(name, justify="right" if name not in ("state", "reason") else "left", no_wrap=True)
    for record in frame.head(limit).to_dict("records") if limit else frame.to_dict("records"):
        table.add_row(str(record["trial"]), record["state"], fmt(record["value"]),
                      *[trial_value(record[p]) for p in params], fmt(record["steps"]), str(record["reason"] or ""))
    out = console if console.is_terminal else Console(width=max(console.width, 240), highlight=False)
    out.print(table)
