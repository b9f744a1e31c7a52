"""``clgym tune``: search spec fields with Optuna; the best setting as best.yaml, optionally run with N seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clgym_core.cli.common import console, err_console, show_trials, trial_value

INTERRUPTED = 130


def tune(
    tune_path: Path = typer.Argument(..., metavar="TUNE", help="Tune file: a run spec plus a tune: section."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the study: trials, plots, best.yaml."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", min=1, help="Trials in the study in all "
                                         "(default: tune.trials; the grid's size for the grid sampler)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Trials at once on this machine."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Study database URL, e.g. postgresql://USER@HOST/DB "
                                          "(default: sqlite in DIR/study.db). Start the same command on every "
                                          "machine to share one study."),
    final_seeds: int = typer.Option(0, "--final-seeds", min=0, help="Run the best setting with this many seeds "
                                    "(test metrics, full training data) into DIR/final."),
    executor: str = typer.Option("process", "--executor", help="process (default), inline or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="A line per finished trial."),
) -> None:
    """Tune: search the tune: space with Optuna (validation metrics by default; test data are never read).

    Every trial is a run directory in DIR/trials. Running the same command again
    continues the study up to --trials in all. At the end: the trials table, PNG
    plots in DIR, and DIR/best.yaml (a spec clgym run takes as it is).
    """
    from clgym_core.sweeps.tuning import tune as run_tune

    try:
        result = run_tune(tune_path, out, trials, workers, storage, executor, address, final_seeds, progress)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; run the same command again to continue the study in {out}", markup=False)
        raise typer.Exit(INTERRUPTED) from None
    show_trials(result["trials"], maximize=result["direction"] == "maximize")
    if result["best"] is None:
        err_console.print("no trial completed; see the reason column", markup=False)
        raise typer.Exit(1)
    best = result["best"]
    console.print(f"best: trial {best['trial']}, value {best['value']:.4g}: "
                  + ", ".join(f"{k}={trial_value(v)}" for k, v in best["params"].items()), markup=False)
    console.print(f"wrote {result['best_path']} (clgym run {result['best_path']})", markup=False)
    if result["final"] is not None:
        from clgym_core.cli.sweep import show_sweep

        console.print(f"final: the best setting with {final_seeds} seed(s) (test data, full training data):",
                      markup=False)
        show_sweep(result["final"], ["seed"] if final_seeds > 1 else [])
        from clgym_core.cli.results import Format, results

        results([out / "final"], sort=None, reverse=False, group_by=None, metrics=None, output_format=Format.table,
                output=None)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("tune")(tune)
