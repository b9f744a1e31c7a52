"""``clgym results``: the local leaderboard of run directories (mean and std over seeds)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from clgym_core.cli.common import console, err_console
from clgym_core.errors import ClgymError


class Format(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


def _columns(text: str | None, default: tuple[str, ...]) -> list[str]:
    if text is None:
        return list(default)
    return [c.strip() for c in text.split(",") if c.strip()]


def results(
    paths: list[Path] = typer.Argument(..., metavar="DIR...", help="Run directories, or folders holding them."),
    sort: Optional[str] = typer.Option(None, "--sort", help="Order by this metric's mean, best first."),
    reverse: bool = typer.Option(False, "--reverse", help="Flip the order of --sort."),
    group_by: Optional[str] = typer.Option(
        None, "--group-by", help="Comma-separated columns to group by (default: benchmark,algorithm): "
        "benchmark, algorithm, backbone, seed, num_tasks, problem, device, config, run, or any path in the "
        "runs' spec.yaml, e.g. algorithm.params.lambda or optimizer.lr; config keeps different specs apart, "
        "run shows every run."
    ),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", help="Comma-separated metrics (default: average_accuracy,average_forgetting,"
        "chaudhry_forgetting,backward_transfer,forward_transfer,wall_seconds); also learning_accuracy, "
        "average_loss, learning_loss, peak_memory_mb, peak_gpu_memory_mb."
    ),
    output_format: Format = typer.Option(Format.table, "--format", "-f", help="table, csv, markdown or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Leaderboard of runs grouped by benchmark and algorithm: mean ± std over seeds.

    Every folder with a metrics.json in or below DIR is a run. Accuracies are in
    percent; std is the sample standard deviation over the runs of a group. Spec
    fields whose values differ between runs (what a sweep varied, e.g.
    algorithm.params.lambda) get a column of their own.

    Two forgettings: "forgetting Eq.2" (average_forgetting) is CL-Gym's Eq. 2, the
    drop from the best accuracy after any trained task but the last, rows before
    the task was learned included; "forgetting Chaudhry" (chaudhry_forgetting) is
    Chaudhry et al. 2018, the best from the task's own row on, the definition
    most papers report. BWT and FWT are Lopez-Paz & Ranzato 2017.
    """
    from clgym_core import results as res

    # ---- a tuning study's folder: its trials, best first ----
    from clgym_core.sweeps.tuning import is_study_dir

    if len(paths) == 1 and is_study_dir(paths[0]) and output_format is Format.table:
        from clgym_core.cli.common import show_trials
        from clgym_core.sweeps.tuning import study_direction, study_trials

        show_trials(study_trials(paths[0]), maximize=study_direction(paths[0]) == "maximize")
        return
    groups = _columns(group_by, res.DEFAULT_GROUP_BY)
    chosen = _columns(metrics, res.DEFAULT_METRICS)
    runs, unfinished = res.find_runs(paths)
    frame = res.runs_frame([res.read_run(r) for r in runs])
    if metrics is None and (frame["problem"] == "regression").any() and "average_loss" not in chosen:
        chosen.insert(1, "average_loss")
    table = res.leaderboard(frame, groups, chosen, sort=sort, reverse=reverse)
    if unfinished:
        err_console.print(f"note: {len(unfinished)} unfinished run(s) left out (no metrics.json), e.g. "
                          f"{unfinished[0]}; continue one with: clgym run --resume RUN_DIR", markup=False)
    mixed = res.mixed_groups(table)
    if mixed:
        err_console.print(f"warning: {mixed} group(s) pool runs of different specs (configs column > 1); "
                          "add config to --group-by to keep them apart", markup=False)

    if output_format is Format.csv:
        text = table.to_csv(index=False)
    elif output_format is Format.json:
        text = json.dumps(res.to_records(table), indent=2) + "\n"
    else:
        header, rows = res.display_rows(table, groups, chosen)
        numeric_from = len(groups) + len(table.attrs.get("spec_columns", []))
        if output_format is Format.markdown:
            text = res.to_markdown(header, rows, numeric_from=numeric_from)
        else:
            if output is not None:
                raise typer.BadParameter("--output works with --format csv, markdown or json", param_hint="--output")
            _print_table(header, rows, numeric_from, len(runs))
            return
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ClgymError(f"--output {output}: cannot write ({exc.strerror or exc})") from None
        err_console.print(f"wrote {output}", markup=False)
    else:
        typer.echo(text, nl=False)


SHORT = {
    "average_accuracy": "avg acc %", "average_forgetting": "forgetting Eq.2",
    "chaudhry_forgetting": "forgetting Chaudhry", "backward_transfer": "BWT",
    "forward_transfer": "FWT", "learning_accuracy": "learning acc %", "average_loss": "avg loss",
    "learning_loss": "learning loss", "wall_seconds": "wall s", "peak_memory_mb": "peak MiB",
    "peak_gpu_memory_mb": "peak GPU MiB",
}


def _print_table(header: list[str], rows: list[list[str]], numeric_from: int, num_runs: int) -> None:
    table = Table(title=f"leaderboard: {num_runs} run(s), mean ± std over each group", title_justify="left")
    for i, name in enumerate(header):
        table.add_column(SHORT.get(name, name), justify="right" if i >= numeric_from else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Piped or redirected output has no width to fit: keep whole rows rather than wrapping cells.
    out = console if console.is_terminal else Console(width=max(console.width, 240), highlight=False)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("results")(results)
