"""Results across runs: read run directories into a DataFrame and aggregate them into a leaderboard.

Any folder with a ``metrics.json`` is a run (see :mod:`clgym_core.runner`). One row per
run holds what it ran (benchmark, algorithm, backbone, seed, a short hash of its
spec) and its numbers: the summary metrics of CL-Gym's Section 3.3 (average
accuracy Eq. 1, forgetting Eq. 2, BWT and FWT of Lopez-Paz & Ranzato 2017), wall
time and peak memory. Forgetting comes twice: ``average_forgetting`` is CL-Gym's Eq. 2
(the max over every trained row but the last) and ``chaudhry_forgetting`` is Chaudhry et
al. 2018 (the max over the rows from the task's own row on), see :mod:`clgym_core.metrics`.
For regression benchmarks forgetting, BWT and FWT are the
loss versions from :mod:`clgym_core.metrics` and ``average_loss`` is filled.

The leaderboard groups runs (by benchmark and algorithm unless told otherwise)
and gives the mean and the sample standard deviation (ddof=1) of every metric
over the runs in a group, usually seeds.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clgym_core.errors import ResultsError, SpecError
from clgym_core.spec import parse_spec_text

METRICS_FILE = "metrics.json"
SPEC_FILE = "spec.yaml"
DEFAULT_GROUP_BY = ("benchmark", "algorithm")
DEFAULT_METRICS = (
    "average_accuracy", "average_forgetting", "chaudhry_forgetting", "backward_transfer", "forward_transfer",
    "wall_seconds",
)
ALL_METRICS = (
    "average_accuracy", "average_forgetting", "chaudhry_forgetting", "backward_transfer", "forward_transfer",
    "learning_accuracy", "average_loss", "learning_loss", "wall_seconds", "peak_memory_mb", "peak_gpu_memory_mb",
    "validation_average_accuracy",
)
LOWER_IS_BETTER = {"average_forgetting", "chaudhry_forgetting", "average_loss", "learning_loss", "wall_seconds",
                   "peak_memory_mb", "peak_gpu_memory_mb"}
RUN_COLUMNS = ("run", "benchmark", "algorithm", "backbone", "seed", "num_tasks", "problem", "device", "config")
SPEC_COLUMN = "spec"  # each run's spec.yaml flattened to {"algorithm.params.lambda": 100, ...}
#: Spec paths that name what a run column already shows, or that differ between seeds of one config.
_SHOWN_ELSEWHERE = {"benchmark.name", "algorithm.name", "backbone.name", "seed", "benchmark.params.seed"}
# Spec fields that do not change what is learned: left out of the config hash.
_NOT_CONFIG = {"seed", "name", "output_dir", "versions", "callbacks"}
_NOT_TRAINER_CONFIG = {"device", "eval_batch_size", "progress", "checkpoint"}


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
    text = json.dumps(config_part(spec), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def config_part(spec: dict[str, Any]) -> dict[str, Any]:
    """What a resolved spec trains: the spec without its seeds and bookkeeping (names, versions, callbacks, device)."""
    kept = {k: v for k, v in spec.items() if k not in _NOT_CONFIG}
    if isinstance(kept.get("trainer"), dict):
        kept["trainer"] = {k: v for k, v in kept["trainer"].items() if k not in _NOT_TRAINER_CONFIG}
    benchmark = kept.get("benchmark")
    if isinstance(benchmark, dict) and isinstance(benchmark.get("params"), dict):
        kept["benchmark"] = {**benchmark, "params": {k: v for k, v in benchmark["params"].items() if k != "seed"}}
    return kept


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
    spec: Any = None
    spec_path = run_dir / SPEC_FILE
    if spec_path.is_file():
        try:
            spec = parse_spec_text(spec_path.read_text(encoding="utf-8"), "yaml", str(spec_path))
        except UnicodeDecodeError:
            raise ResultsError(f"{spec_path}: corrupt spec.yaml (not UTF-8 text)") from None
        except SpecError as exc:
            raise ResultsError(f"corrupt spec.yaml: {exc}") from None
        if isinstance(spec, dict):
            config = config_hash(spec)
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ResultsError(f"{path}: seed must be an integer, got {seed!r}")
    row: dict[str, Any] = {
        "run": str(run_dir),
        "benchmark": data["benchmark"],
        "algorithm": data["algorithm"],
        "backbone": str(data.get("backbone", "")),
        "seed": seed,
        "num_tasks": data.get("num_tasks"),
        "problem": str(data.get("problem", "classification")),
        "device": str(data.get("device", "")),
        "config": config,
        SPEC_COLUMN: flatten_spec(spec) if isinstance(spec, dict) else {},
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


def flatten_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"algorithm.params.lambda": 100, ...}``: every leaf of a spec by its dotted path (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):  # an empty mapping holds no setting
            flat.update(flatten_spec(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    rows = [{SPEC_COLUMN: {}, **row} for row in rows]
    frame = pd.DataFrame(list(rows), columns=[*RUN_COLUMNS, SPEC_COLUMN, *ALL_METRICS])
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
    frame = _with_spec_columns(frame, [c for c in group_by if c not in RUN_COLUMNS])
    _check_columns(frame, metrics, "--metrics", ALL_METRICS)
    if sort is not None and sort not in metrics and sort not in ("runs", *group_by):
        raise ResultsError(f"--sort: {sort!r} is not a column of the table; use one of: "
                           f"{', '.join([*metrics, 'runs', *group_by])}")
    differing = differing_paths(frame, group_by)
    keyed = frame.assign(**{c: frame[c].map(_key_text) for c in group_by})  # None/NaN keys become groups too
    rows = []
    for key, group in keyed.groupby(group_by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(group_by, key))
        row.update({path: _values_text(group[SPEC_COLUMN], path) for path in differing})
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
    table = table.reset_index(drop=True)
    table.attrs["spec_columns"] = differing
    return table


def _with_spec_columns(frame: pd.DataFrame, paths: Sequence[str]) -> pd.DataFrame:
    """``frame`` with a column per spec path in ``paths`` (its value in each run's spec.yaml; None when absent)."""
    if not paths:
        return frame
    known = sorted({p for flat in frame[SPEC_COLUMN] for p in flat} | set(RUN_COLUMNS))
    columns = {}
    for path in paths:
        if path not in known:
            below = [p for p in known if p.startswith(f"{path}.")][:4]
            close = below or difflib.get_close_matches(path, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ResultsError(f"--group-by: unknown column {path!r}: neither a run column ({', '.join(RUN_COLUMNS)}) "
                               f"nor a value's path in any run's spec.yaml (e.g. algorithm.params.lambda){hint}")
        columns[path] = frame[SPEC_COLUMN].map(lambda flat, p=path: _plain(flat.get(p)))
    return frame.assign(**columns)


def _plain(value: Any) -> Any:
    """A spec value as a group key (lists and mappings as their JSON text)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def differing_paths(frame: pd.DataFrame, group_by: Sequence[str] = ()) -> list[str]:
    """Spec paths whose value is not the same in every run (what a sweep varied), for the table to show.

    A component's params count only between runs of the same component (EWC's ``lambda``
    is not a difference from finetune); seeds, bookkeeping fields and paths already
    grouped by are left out.
    """
    if SPEC_COLUMN not in frame or frame.empty:
        return []
    specs = list(frame[SPEC_COLUMN])
    paths = sorted({p for flat in specs for p in flat})
    found = []
    for path in paths:
        top, _, rest = path.partition(".")
        if path in group_by or path in _SHOWN_ELSEWHERE or top in _NOT_CONFIG or (
            top == "trainer" and rest in _NOT_TRAINER_CONFIG
        ):
            continue
        if rest.startswith("params.") and top != "optimizer":
            partitions: dict[Any, set[str]] = {}
            for flat in specs:
                partitions.setdefault(_plain(flat.get(f"{top}.name")), set()).add(_key_text(_plain(flat.get(path))))
            varies = any(len(values) > 1 for values in partitions.values())
        else:
            varies = len({_key_text(_plain(flat.get(path))) for flat in specs}) > 1
        if varies:
            found.append(path)
    return found


def _values_text(specs: pd.Series, path: str) -> str:
    values = sorted({_key_text(_plain(flat.get(path))) for flat in specs})
    return ", ".join(values)


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
    spec_columns = list(table.attrs.get("spec_columns", []))
    header = [*group_by, *spec_columns, "runs", "seeds", *metrics]
    rows = []
    for record in table.to_dict("records"):
        rows.append([
            *[str(record[c]) for c in [*group_by, *spec_columns]], str(record["runs"]), record["seeds"] or "-",
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
