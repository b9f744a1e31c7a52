"""``clgym leaderboard``: plan the board's studies, collect their results, add runs, build the site."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clgym_core.cli.common import console

app = typer.Typer(help="The leaderboard: tuned entries per benchmark and algorithm, and its static site.",
                  no_args_is_help=True)

BOARD_HELP = "Board folder (holding board.yaml) or the board.yaml file."


@app.command("plan")
def plan(board: Path = typer.Argument(Path("leaderboard"), help=BOARD_HELP)) -> None:
    """Write one tune file per entry (BOARD/tune/, BOARD/specs-only/); list the entries left out and why."""
    from clgym_core.leaderboard.board import plan as write_plan

    found, written = write_plan(board)
    for entry in found:
        if entry.skipped:
            console.print(f"skipped {entry.name}: {entry.skipped}", markup=False)
    ran = sum(1 for e in found if e.run and not e.skipped)
    console.print(f"{len(written)} tune file(s): {ran} entries run for the board, {len(written) - ran} specs only",
                  markup=False)


@app.command("collect")
def collect(
    board: Path = typer.Argument(Path("leaderboard"), help=BOARD_HELP),
    studies: Path = typer.Option(..., "--studies", help="Folder of the studies: STUDIES/BENCHMARK/ALGORITHM "
                                 "as `clgym tune ENTRY --out` left them."),
    wall_seconds: Optional[float] = typer.Option(None, "--wall-seconds", help="Wall time of the whole "
                                                 "regeneration, recorded on the board."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Studies run at once during the regeneration."),
) -> None:
    """Copy each study's summary, final runs (spec.yaml, metrics.json) and chosen spec (preset) onto the board."""
    from clgym_core.leaderboard.collect import collect as run_collect
    from clgym_core.leaderboard.summary import write_summary

    lines = run_collect(board, studies)
    for line in lines:
        console.print(line, markup=False)
    failed = [line for line in lines if "no trial of its study finished" in line]
    readme = write_summary(board, wall_seconds=wall_seconds, jobs=jobs, failed=failed)
    done = sum(1 for line in lines if "left out" not in line)
    console.print(f"collected {done} entries; wrote {readme}", markup=False)


@app.command("build")
def build(
    results: list[Path] = typer.Argument(..., metavar="RESULTS...", help="Board folders, entry folders or "
                                         "folders of run directories."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the site (index.html and entries/)."),
) -> None:
    """Build the static site: an index of sortable tables and a page per entry; opens from disk, no server."""
    from clgym_core.leaderboard.site import build_site

    index, count = build_site(list(results), out)
    console.print(f"wrote {index} ({count} entries); open it in a browser", markup=False)


@app.command("add")
def add(
    runs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Run directories to add."),
    board: Path = typer.Option(Path("leaderboard"), "--board", help=BOARD_HELP),
    entry: Optional[str] = typer.Option(None, "--entry", help="The entry (BENCHMARK/ALGORITHM) the runs belong "
                                        "to; found from each run when omitted."),
) -> None:
    """Add runs to the board after checking each run's spec is its entry's spec apart from the seed."""
    from clgym_core.leaderboard.add import add_runs

    for line in add_runs(list(runs), board, entry):
        console.print(line, markup=False)


def register(root: typer.Typer) -> None:
    """Add this module's commands to ``root``."""
    root.add_typer(app, name="leaderboard")
