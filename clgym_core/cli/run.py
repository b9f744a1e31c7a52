"""``clgym validate`` and ``clgym run``: check a spec, run it, show the accuracy matrix and summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.columns import Columns
from rich.table import Table

from clgym_core.cli.common import INTERRUPTED, console, err_console, fmt, matrix_table
from clgym_core.build import build, resolve
from clgym_core.errors import ClgymError, RunDirError
from clgym_core.profiling import PROFILE_TRACE, PhaseTimes
from clgym_core.rundir import RUN_MARKERS
from clgym_core.runner import RunInterrupted, RunResult, resume_run, run_spec
from clgym_core.spec import ComponentSpec, RunSpec, apply_overrides, dump_spec, load_spec, parse_spec, read_composed_spec

QUICKSTART_DIR = Path(__file__).resolve().parent.parent / "quickstart"

SET_HELP = "Override a spec field, e.g. --set algorithm.params.lambda=100 (repeatable)."


def validate(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Spec file (.yaml, .yml, .toml or .json)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    print_spec: bool = typer.Option(
        False, "--print", help="Print the resolved spec (extends merged, --set applied, every default filled in) "
        "as YAML on stdout; the ok line goes to stderr."
    ),
) -> None:
    """Check a spec: fields, component names and parameters, then build its components; loads no data."""
    resolved = resolve(load_spec(spec_path, overrides), source=str(spec_path))
    build(resolved)  # the checks a component, the device and the optimizer make when they are built
    spec = resolved.spec
    (err_console if print_spec else console).print(
        f"{spec_path}: ok: benchmark {spec.benchmark.name}, backbone {spec.backbone.name}, "
        f"algorithm {spec.algorithm.name}, {spec.trainer.epochs_per_task} epoch(s) per task, seed {spec.seed}",
        markup=False,
    )
    if print_spec:
        typer.echo(dump_spec(spec), nl=False)


def run(
    spec_path: Optional[Path] = typer.Argument(
        None, metavar="[SPEC]", help="Spec file; without one, runs the quickstart comparison."
    ),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Run directory (exactly this path; must not already hold a run)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live progress on stderr."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="Continue an interrupted run from its last finished task."
    ),
    loggers: Optional[list[str]] = typer.Option(
        None, "--logger", metavar="NAME",
        help="Also track the run with this logger: tensorboard, mlflow (a callback name; repeatable).",
    ),
    profile: bool = typer.Option(
        False, "--profile", help="Record a torch.profiler trace (RUN_DIR/profile_trace.json) and print where the "
        "time went, by phase (also RUN_DIR/profile.md, profile.json).",
    ),
    preset: Optional[str] = typer.Option(
        None, "--preset", metavar="NAME", help="Run a spec a plugin publishes, e.g. rotated_mnist/ewc "
        "(see clgym list presets); --set applies on top.",
    ),
) -> None:
    """Run a spec: progress while it runs, then the accuracy matrix and the summary metrics.

    The run directory gets spec.yaml (resolved, with plugin versions), the accuracy
    matrix as CSV, metrics.json, event logs, plots, and a checkpoint after every task:
    after a crash or Ctrl-C, `clgym run --resume RUN_DIR` continues from the last
    finished task and ends with the numbers an uninterrupted run gives.
    """
    try:
        if resume is not None:
            if spec_path is not None or overrides or out is not None or loggers or profile or preset is not None:
                raise ClgymError("--resume takes no SPEC, --preset, --set, --out, --logger or --profile: "
                                 "the spec comes from RUN_DIR/spec.yaml")
            _resume(resume, progress)
            return
        if preset is not None:
            _run_preset(preset, spec_path, overrides, out, progress, loggers or [], profile)
            return
        if spec_path is None:
            if profile:
                raise ClgymError("--profile needs a SPEC: profile one run, not the quickstart's four")
            _quickstart(overrides, out, progress)
            return
        spec = with_loggers(load_spec(spec_path, overrides), loggers or [])
        result = run_spec(spec, out_dir=out, progress=None if progress else False, source=str(spec_path),
                          profile=profile)
        show_result(result)
    except RunInterrupted as stop:
        if stop.resumable:
            err_console.print(f"interrupted; resume with: clgym run --resume {stop.run_dir}", markup=False)
        elif stop.run_dir is not None and not stop.checkpointing:
            err_console.print("interrupted; this run kept no checkpoint (trainer.checkpoint: false), so it cannot "
                              f"be resumed; start again: clgym run {stop.run_dir / 'spec.yaml'} --out {stop.run_dir}", markup=False)
        elif stop.run_dir is not None:
            err_console.print(
                f"interrupted before anything was checkpointed; start again: clgym run {stop.run_dir / 'spec.yaml'} --out {stop.run_dir}",
                markup=False,
            )
        else:
            err_console.print("interrupted", markup=False)
        raise typer.Exit(INTERRUPTED) from None
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        raise typer.Exit(INTERRUPTED) from None


def _run_preset(name: str, spec_path: Path | None, overrides: list[str] | None, out: Path | None, progress: bool,
                loggers: list[str], profile: bool = False) -> None:
    from clgym_core.presets import load_preset

    if spec_path is not None:
        raise ClgymError(f"--preset {name} and SPEC {spec_path}: give one of them")
    spec, source = load_preset(name, overrides)
    show_result(run_spec(with_loggers(spec, loggers), out_dir=out, progress=None if progress else False, source=source,
                         profile=profile))


def with_loggers(spec: RunSpec, names: list[str]) -> RunSpec:
    """``spec`` with the callbacks named by ``--logger`` added (once each), so its spec.yaml lists them."""
    present = {c.name for c in spec.callbacks}
    extra = [ComponentSpec(name=n) for n in dict.fromkeys(names) if n not in present]
    return spec.model_copy(update={"callbacks": [*spec.callbacks, *extra]}) if extra else spec


def _resume(run_dir: Path, progress: bool) -> None:
    def notify(message: str) -> None:
        err_console.print(f"warning: {message}", markup=False)

    result = resume_run(run_dir, progress=None if progress else False, notify=notify)
    if result is None:
        console.print(f"{run_dir}: already finished; nothing to resume (results in {run_dir / 'metrics.json'})",
                      markup=False)
        return
    show_result(result)


def _quickstart(overrides: list[str] | None, out: Path | None, progress: bool) -> None:
    """Every spec in the packaged quickstart folder, one after another, compared side by side."""
    if out is not None and any((out / marker).exists() for marker in RUN_MARKERS):
        raise RunDirError(f"--out {out}: holds a run; the quickstart writes one folder per method into --out, "
                          "so choose a new or empty directory")
    specs: list[tuple[str, RunSpec, Path]] = []
    for path in sorted(QUICKSTART_DIR.glob("*.yaml")):
        spec = parse_spec(apply_overrides(read_composed_spec(path), overrides), str(path))
        try:
            resolve(spec, source=str(path))
        except ClgymError as exc:
            err_console.print(f"skipping quickstart {path.stem}: {exc}", markup=False)
            continue
        specs.append((path.stem, spec, path))
    if not specs:
        raise ClgymError(
            "the quickstart needs the clgym-toy and clgym-algos plugins; "
            "install them (pip install clgym-toy clgym-algos) or pass a spec: clgym run SPEC"
        )
    results = []
    for label, spec, path in specs:
        console.print(f"[bold]quickstart: {label}[/bold]")
        run_dir = out / label if out is not None else None
        results.append((label, run_spec(spec, out_dir=run_dir, progress=None if progress else False, source=str(path))))
    show_comparison(results)


def show_result(result: RunResult) -> None:
    if not result.trainer.placement.is_main:
        return  # under ddp the other processes train and stay quiet
    kind = "accuracy" if result.problem == "classification" else "loss"
    matrix = result.accuracy_matrix if kind == "accuracy" else result.loss_matrix
    title = f"{kind} matrix ({'%' if kind == 'accuracy' else 'mean loss'}): {result.spec.algorithm.name} on " \
            f"{result.spec.benchmark.name}"
    console.print(matrix_table(matrix, title, digits=2 if kind == "accuracy" else 4))
    table = Table(title="summary", title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right")
    for key, value in result.summary.items():
        table.add_row(key, fmt(value, 2 if kind == "accuracy" else 4))
    table.add_row("wall_seconds", fmt(result.wall_seconds))
    console.print(table)
    if result.trainer.profile is not None:
        console.print(profile_table(result.trainer.profile))
    if result.run_dir is not None:
        console.print(f"run directory: {result.run_dir}", markup=False)


def profile_table(profile: PhaseTimes) -> Table:
    """Where the run's time went, one row per phase (what ``profile.md`` holds)."""
    table = Table(title=f"profile: {profile.wall_seconds:.2f} s in fit (trace: {PROFILE_TRACE})", title_justify="left")
    table.add_column("phase", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("%", justify="right")
    table.add_column("what it counts")
    for row in profile.rows():
        table.add_row(row.phase, f"{row.seconds:.3f}", f"{row.percent:.1f}", row.description)
    return table


def show_comparison(results: list[tuple[str, RunResult]]) -> None:
    """Matrices next to each other, then one summary table with a column per run."""
    tables = []
    for label, result in results:
        kind = "accuracy" if result.problem == "classification" else "loss"
        matrix = result.accuracy_matrix if kind == "accuracy" else result.loss_matrix
        tables.append(matrix_table(matrix, f"{label} ({kind})"))
    console.print(Columns(tables, padding=(0, 4)))
    summary = Table(title="summary", title_justify="left")
    summary.add_column("metric", no_wrap=True)
    for label, _ in results:
        summary.add_column(label, justify="right")
    keys = list(dict.fromkeys(k for _, r in results for k in r.summary))
    for key in keys:
        summary.add_row(key, *[fmt(r.summary.get(key)) for _, r in results])
    summary.add_row("wall_seconds", *[fmt(r.wall_seconds) for _, r in results])
    console.print(summary)
    for label, result in results:
        if result.run_dir is not None:
            console.print(f"{label}: {result.run_dir}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("validate")(validate)
    app.command("run")(run)
