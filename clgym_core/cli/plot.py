"""``clgym plot``: accuracy-matrix heatmaps, per-task curves and runs compared, as PNG files (headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from clgym_core.cli.common import console
from clgym_core.errors import ClgymError


def _labels(runs: list[dict[str, Any]]) -> list[str]:
    """The shortest label that tells runs apart: algorithm, then algorithm and seed, then the folder."""
    for make in (
        lambda r: r["algorithm"],
        lambda r: f"{r['algorithm']} s{r['seed']}",
        lambda r: f"{r['algorithm']} on {r['benchmark']} s{r['seed']}",
    ):
        labels = [make(r) for r in runs]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{r['algorithm']} ({Path(r['dir']).name})" for r in runs]


def _read(run_dir: Path) -> dict[str, Any]:
    import json

    from clgym_core.results import read_run

    row = read_run(run_dir)  # one-line errors for corrupt or foreign metrics.json
    data = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    kind = "loss" if row["problem"] == "regression" else "accuracy"
    matrix = data.get(f"{kind}_matrix")
    if not isinstance(matrix, list) or len(matrix) < 2:
        raise ClgymError(f"{run_dir / 'metrics.json'}: no {kind}_matrix with at least one trained task to plot")
    return {**row, "dir": str(run_dir), "kind": kind, "matrix": matrix}


def _checked_plot(fn: Any, source: Path, *args: Any, **kwargs: Any) -> Path:
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise ClgymError(f"{source}: cannot plot ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise ClgymError(f"{source}: cannot write the figure ({exc.strerror or exc})") from None


def plot(
    paths: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Run directories, or folders holding them."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o",
        help="Folder for the figures (default: each run's own folder for its figures, ./plots for the comparison).",
    ),
    per_run: bool = typer.Option(True, "--per-run/--no-per-run", help="Heatmap and task curves of every run."),
    mean_over_seeds: bool = typer.Option(
        False, "--mean-over-seeds", help="In the comparison, average the matrices of runs that differ only in seed."
    ),
) -> None:
    """Plot runs as PNG files: accuracy-matrix heatmaps, per-task curves, several runs compared.

    Each run gets a heatmap of its accuracy matrix and the accuracy of every task
    after each task; with several runs, one figure compares them by the average
    accuracy on the tasks seen so far after each task. Regression runs plot losses.
    """
    import numpy as np

    from clgym_core import plots
    from clgym_core.results import find_runs

    run_dirs, _ = find_runs(paths)
    runs = [_read(d) for d in run_dirs]
    written: list[Path] = []
    if per_run:
        names: dict[str, int] = {}
        for run in runs:
            source = Path(run["dir"])
            if out is None:
                dest = source
            else:
                name = source.name
                names[name] = names.get(name, 0) + 1
                dest = out / (name if names[name] == 1 else f"{name}-{names[name]}")
            title = f"{run['algorithm']} on {run['benchmark']} (seed {run['seed']})"
            kind = run["kind"]
            written.append(_checked_plot(plots.plot_accuracy_matrix, source / "metrics.json", run["matrix"],
                                         dest / f"{kind}_matrix.png", title=title, kind=kind))
            written.append(_checked_plot(plots.plot_task_curves, source / "metrics.json", run["matrix"],
                                         dest / "task_curves.png", title=title, kind=kind))
    if len(runs) > 1 or not per_run:
        folder = out if out is not None else Path("plots")
        for kind in ("accuracy", "loss"):
            chosen = [r for r in runs if r["kind"] == kind]
            if not chosen:
                continue
            if mean_over_seeds:
                groups: dict[tuple, list[dict[str, Any]]] = {}
                for r in chosen:
                    key = (r["benchmark"], r["algorithm"], r["config"], len(r["matrix"]))
                    groups.setdefault(key, []).append(r)
                curves = {}
                for members in groups.values():
                    label = members[0]["algorithm"]
                    if len({m["benchmark"] for m in chosen}) > 1:
                        label += f" on {members[0]['benchmark']}"
                    label += f" ({len(members)} run{'s' if len(members) > 1 else ''})"
                    while label in curves:
                        label += "'"
                    curves[label] = np.mean([np.asarray(m["matrix"], dtype=float) for m in members], axis=0)
            else:
                curves = dict(zip(_labels(chosen), (r["matrix"] for r in chosen)))
            name = "average_accuracy.png" if kind == "accuracy" else "average_loss.png"
            written.append(_checked_plot(plots.plot_average_accuracy, folder, curves, folder / name, kind=kind))
    for path in written:
        console.print(f"wrote {path}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("plot")(plot)
