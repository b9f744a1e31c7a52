"""``clgym sweep``: run every point of a sweep file as a run directory under DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from clgym_core.cli.common import console, err_console, fmt
from clgym_core.cli.results import SHORT

INTERRUPTED = 130
SHOWN_METRICS = ("average_accuracy", "average_forgetting", "wall_seconds")


def sweep(
    sweep_path: Path = typer.Argument(..., metavar="SWEEP", help="Sweep file: a run spec plus a sweep: section."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the sweep's run directories."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", min=1, help="Runs at once (default: the cores over each run's threads)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and what they differ in; run nothing."),
    executor: str = typer.Option("process", "--executor", help="process (default), inline or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed points again."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live display on stderr."),
) -> None:
    """Run a sweep: the product of the sweep: lists, each point an ordinary run directory in DIR.

    Run the same command again to go on: finished runs are skipped, interrupted
    ones resume from their checkpoints, failed ones keep their reason (failed.txt)
    unless --retry-failed. Ctrl-C stops cleanly (exit 130).
    """
    from clgym_core.sweeps.plan import check_points, read_sweep_file
    from clgym_core.sweeps.run import dry_run_rows, dump_values, run_sweep

    plan = read_sweep_file(sweep_path, check=False)
    if dry_run:
        check_points(plan)
        console.print(f"{len(plan.points)} run(s) under {out}, differing in: "
                      f"{', '.join(plan.fields) or '(nothing)'}", markup=False)
        for name, state, values in dry_run_rows(plan, out):
            console.print(f"  {name}  [{state}]  {dump_values(values)}", markup=False)
        return
    text = sweep_path.read_text(encoding="utf-8")
    try:
        frame = run_sweep(plan, out, workers, executor, address, retry_failed, progress, source_text=text)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; run the same command again to continue: "
                          f"clgym sweep {sweep_path} --out {out}", markup=False)
        raise typer.Exit(INTERRUPTED) from None
    show_sweep(frame, plan.fields)
    failed = int((frame["status"] == "failed").sum())
    if (frame["status"] == "done").any():
        from clgym_core.cli.results import results

        console.print()
        # Points that differ in more than the seed are different configs: keep them apart.
        group_by = "benchmark,algorithm,config" if set(plan.fields) - {"seed"} else None
        results([out], sort=None, reverse=False, group_by=group_by, metrics=None, output_format=_table_format(),
                output=None)
    if failed:
        err_console.print(f"{failed} run(s) failed; see failed.txt in their directories "
                          f"(rerun them with --retry-failed)", markup=False)
        raise typer.Exit(1)


def _table_format():
    from clgym_core.cli.results import Format

    return Format.table


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_sweep(frame, fields: list[str]) -> None:
    """One row per point: swept values, status, headline metrics or the failure reason."""
    from rich.console import Console

    from clgym_core.sweeps.plan import short_names

    labels = short_names(fields)
    table = Table(title=f"sweep: {len(frame)} run(s)", title_justify="left")
    table.add_column("run", no_wrap=True)
    for f in fields:
        table.add_column(labels[f], justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for m in SHOWN_METRICS:
        table.add_column(SHORT.get(m, m), justify="right", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    for record in frame.to_dict("records"):
        table.add_row(
            record["name"], *[_value(record[f]) for f in fields], record["status"],
            *[fmt(record.get(m)) for m in SHOWN_METRICS], record["reason"] or "",
        )
    # Piped output has no width to fit: whole rows rather than wrapped cells.
    out = console if console.is_terminal else Console(width=max(console.width, 240), highlight=False)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("sweep")(sweep)
