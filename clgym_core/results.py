"""Results across runs: read run directories into a DataFrame and aggregate them into a leaderboard.

Any folder with a ``metrics.json`` is a run (see :mod:`clgym_core.runner`). One row per
run holds what it ran (benchmark, algorithm, backbone, seed, a short hash of its
spec) and its numbers: the summary metrics of CL-Gym's Section 3.3 (average
accuracy Eq. 1, forgetting Eq. 2, BWT and FWT of Lopez-Paz & Ranzato 2017), wall
time and peak memory. For regression benchmarks forgetting, BWT and FWT are the
loss versions from :mod:`clgym_core.metrics` and ``average_loss`` is filled.

The leaderboard groups runs (by benchmark and algorithm unless told otherwise)
and gives the mean and the sample standard deviation (ddof=1) of every metric
over the runs in a group, usually seeds.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from clgym_core.errors import ClgymError

METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.yaml"
DEFAULT_GROUP_BY = ("benchmark", "algorithm")
DEFAULT_METRICS = ("average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer", "wall_seconds")
ALL_METRICS = (
    "average_accuracy", "average_forgetting", "backward_transfer", "forward_transfer", "learning_accuracy",
    "average_loss", "learning_loss", "wall_seconds", "peak_memory_mb", "peak_gpu_memory_mb",
    "validation_average_accuracy",
)
LOWER_IS_BETTER = {"average_forgetting", "average_loss", "learning_loss", "wall_seconds", "peak_memory_mb",
                   "peak_gpu_memory_mb"}
RUN_COLUMNS = ("run", "benchmark", "algorithm", "backbone", "seed", "num_tasks", "problem", "device", "config")
# Spec fields that do not change what is learned: left out of the config hash.
_NOT_CONFIG = {"seed", "name", "output_dir", "versions", "callbacks"}
_NOT_TRAINER_CONFIG = {"device", "eval_batch_size", "progress", "checkpoint"}


class ResultsError(ClgymError):
    """Run directories are missing, empty or hold files that cannot be read."""


def find_runs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Run directories in or below ``paths`` and, second, unfinished ones (spec.yaml, no metrics.json)."""
    runs: list[Path] = []
    unfinished: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name == METRICS_FILE:
            path = path.parent
        if not path.exists():
            raise ResultsError(f"{path}: no such directory")
        if not path.is_dir():
            raise ResultsError(f"{path}: not a directory (give run directories or folders holding them)")
        if (path / METRICS_FILE).is_file():
            found = [path]
        else:
            found = sorted(p.parent for p in path.rglob(METRICS_FILE) if p.is_file())
        if not found:
            raise ResultsError(f"{path}: no runs found (no {METRICS_FILE} in it or below it)")
        runs.extend(found)
        unfinished.extend(
            p.parent for p in sorted(path.rglob(SPEC_FILE)) if not (p.parent / METRICS_FILE).exists()
        )
    unique = list(dict.fromkeys(p.resolve() for p in runs))
    return [Path(p) for p in unique], list(dict.fromkeys(unfinished))


def config_hash(spec: dict[str, Any]) -> str:
    """8 hex digits naming what a spec trains, seed and bookkeeping left out: equal for seeds of one config."""
    kept = {k: v for k, v in spec.items() if k not in _NOT_CONFIG}
    if isinstance(kept.get("trainer"), dict):
        kept["trainer"] = {k: v for k, v in kept["trainer"].items() if k not in _NOT_TRAINER_CONFIG}
    benchmark = kept.get("benchmark")
    if isinstance(benchmark, dict) and isinstance(benchmark.get("params"), dict):
        kept["benchmark"] = {**benchmark, "params": {k: v for k, v in benchmark["params"].items() if k != "seed"}}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One run's row: what ran and its numbers (NaN where a number is missing)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: corrupt metrics.json (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: corrupt metrics.json (not UTF-8 text)") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a clgym metrics.json (a {type(data).__name__}, not a mapping)")
    for key in ("benchmark", "algorithm"):
        if not isinstance(data.get(key), str):
            raise ResultsError(f"{path}: not a clgym metrics.json (no {key!r} field)")
    config = ""
    spec_path = run_dir / SPEC_FILE
    if spec_path.is_file():
        try:
            spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            raise ResultsError(f"{spec_path}: corrupt spec.yaml (not valid YAML)") from None
        if isinstance(spec, dict):
            config = config_hash(spec)
    row: dict[str, Any] = {
        "run": str(run_dir),
        "benchmark": data["benchmark"],
        "algorithm": data["algorithm"],
        "backbone": str(data.get("backbone", "")),
        "seed": data.get("seed"),
        "num_tasks": data.get("num_tasks"),
        "problem": str(data.get("problem", "classification")),
        "device": str(data.get("device", "")),
        "config": config,
    }
    loss_metrics = data.get("loss_metrics") if isinstance(data.get("loss_metrics"), dict) else {}
    validation = data.get("validation") if isinstance(data.get("validation"), dict) else {}
    for key in ALL_METRICS:
        value = data.get(key)
        if value is None:
            value = loss_metrics.get(key)
        if key.startswith("validation_"):
            value = validation.get(key.removeprefix("validation_"))
        row[key] = _number(value)
    return row


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """A DataFrame with one row per run found in or below ``paths`` (columns: RUN_COLUMNS + ALL_METRICS)."""
    runs, _ = find_runs(paths)
    return runs_frame([read_run(r) for r in runs])


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=[*RUN_COLUMNS, *ALL_METRICS])
    for key in ALL_METRICS:
        frame[key] = frame[key].astype(float)
    return frame


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], option: str, allowed: Sequence[str]) -> None:
    for column in columns:
        if column not in allowed:
            raise ResultsError(f"{option}: unknown column {column!r}; use any of: {', '.join(allowed)}")


def leaderboard(
    frame: pd.DataFrame,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    metrics: Sequence[str] = DEFAULT_METRICS,
    sort: str | None = None,
    reverse: bool = False,
) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for a single run) of each metric per group.

    Columns: the group columns, ``runs``, ``seeds`` (comma-separated), ``configs``
    (distinct spec hashes in the group: more than 1 means unlike runs were pooled),
    then ``METRIC_mean`` and ``METRIC_std`` per metric. ``sort`` orders by a metric's
    mean, best first (highest, or lowest for forgetting, loss, time and memory);
    ``reverse`` flips it. Without ``sort`` groups are in the order of their keys.
    """
    group_by, metrics = list(group_by), list(metrics)
    if not group_by:
        raise ResultsError("--group-by: give at least one column")
    _check_columns(frame, group_by, "--group-by", [c for c in RUN_COLUMNS if c != "run"] + ["run"])
    _check_columns(frame, metrics, "--metrics", ALL_METRICS)
    if sort is not None and sort not in metrics and sort not in ("runs", *group_by):
        raise ResultsError(f"--sort: {sort!r} is not a column of the table; use one of: "
                           f"{', '.join([*metrics, 'runs', *group_by])}")
    keyed = frame.assign(**{c: frame[c].map(_key_text) for c in group_by})  # None/NaN keys become groups too
    rows = []
    for key, group in keyed.groupby(group_by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(group_by, key))
        row["runs"] = len(group)
        seeds = sorted({int(s) for s in group["seed"] if s is not None and not _nan(s)})
        row["seeds"] = ",".join(str(s) for s in seeds)
        row["configs"] = group["config"].nunique()
        for m in metrics:
            values = group[m].dropna()
            row[f"{m}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if sort is not None and len(table):
        column = sort if sort in ("runs", *group_by) else f"{sort}_mean"
        ascending = sort in LOWER_IS_BETTER or sort in group_by
        if reverse:
            ascending = not ascending
        table = table.sort_values(column, ascending=ascending, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _key_text(value: Any) -> str:
    if value is None or _nan(value) or value == "":
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def mixed_groups(table: pd.DataFrame) -> int:
    """How many groups pool runs of different specs (seed aside)."""
    return int((table["configs"] > 1).sum()) if "configs" in table else 0


def cell(mean: float, std: float, digits: int = 2) -> str:
    """``mean ± std``; ``-`` for a missing value, the mean alone for a single run."""
    if _nan(mean):
        return "-"
    return f"{mean:.{digits}f}" if _nan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_rows(
    table: pd.DataFrame, group_by: Sequence[str], metrics: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the leaderboard, metrics as ``mean ± std``."""
    header = [*group_by, "runs", "seeds", *metrics]
    rows = []
    for record in table.to_dict("records"):
        rows.append([
            *[str(record[c]) for c in group_by], str(record["runs"]), record["seeds"] or "-",
            *[cell(record[f"{m}_mean"], record[f"{m}_std"]) for m in metrics],
        ])
    return header, rows


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> str:
    """A GitHub-flavoured Markdown table (columns from ``numeric_from`` on right-aligned)."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if i >= numeric_from else ":---" for i in range(len(header))) + "|")
    lines.extend("| " + " | ".join(escape(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, NaN as None (for JSON)."""
    records = table.to_dict("records")
    return [{k: (None if _nan(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()} for r in records]
