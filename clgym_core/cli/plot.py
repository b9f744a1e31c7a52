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
        False, "--mean-over-seeds",
        help="In the comparison, average the matrices of runs that differ only in seed; a shaded band shows ± 1 std.",
    ),
) -> None:
    """Plot runs as PNG files: accuracy-matrix heatmaps, per-task curves, several runs compared.

    Each run gets a heatmap of its accuracy matrix and the accuracy of every task
    after each task; with several runs, one figure compares them by the average
    accuracy on the tasks seen so far after each task (one figure per benchmark,
    average_accuracy_BENCHMARK.png, when the runs are of several benchmarks). With
    --mean-over-seeds a line is the mean over seeds with a band of ± 1 std.
    Regression runs plot losses.
    """
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
            of_kind = [r for r in runs if r["kind"] == kind]
            benchmarks = sorted({r["benchmark"] for r in of_kind})
            # Runs of different benchmarks are not comparable on one axis: one figure per benchmark.
            for benchmark in benchmarks:
                chosen = [r for r in of_kind if r["benchmark"] == benchmark]
                curves, bands = _comparison(chosen, mean_over_seeds)
                stem = "average_accuracy" if kind == "accuracy" else "average_loss"
                name = f"{stem}.png" if len(benchmarks) == 1 else f"{stem}_{_file_part(benchmark)}.png"
                title = f"{'Average accuracy' if kind == 'accuracy' else 'Average loss'} on seen tasks: {benchmark}"
                written.append(_checked_plot(plots.plot_average_accuracy, folder, curves, folder / name, kind=kind,
                                             title=title, bands=bands or None))
    for path in written:
        console.print(f"wrote {path}", markup=False)


def _comparison(chosen: list[dict[str, Any]], mean_over_seeds: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The matrices to compare (by label) and, averaging over seeds, the std of each averaged curve."""
    import numpy as np

    from clgym_core.plots import seen_task_average

    if not mean_over_seeds:
        return dict(zip(_labels(chosen), (r["matrix"] for r in chosen))), {}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in chosen:
        groups.setdefault((r["algorithm"], r["config"], len(r["matrix"])), []).append(r)
    curves, bands = {}, {}
    for members in groups.values():
        label = f"{members[0]['algorithm']} ({len(members)} run{'s' if len(members) > 1 else ''})"
        while label in curves:
            label += "'"
        matrices = [np.asarray(m["matrix"], dtype=float) for m in members]
        curves[label] = np.mean(matrices, axis=0)
        if len(matrices) > 1:
            bands[label] = np.std([seen_task_average(m, members[0]["kind"]) for m in matrices], axis=0, ddof=1)
    return curves, bands


def _file_part(text: str) -> str:
    """``text`` as a safe piece of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80] or "benchmark"


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("plot")(plot)
