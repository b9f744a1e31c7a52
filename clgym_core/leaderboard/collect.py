"""``clgym leaderboard collect``: keep what the board needs from each entry's tuning study.

A study folder is what ``clgym tune ENTRY.yaml --out DIR --final-seeds N`` leaves. From it the
board keeps, in ``entries/BENCHMARK/ALGORITHM/``: ``entry.json`` (the search: space, sampler,
pruner, the validation protocol, every trial, the best values, the tune command's wall time)
and ``runs/seed-N/`` with each final run's ``spec.yaml`` and ``metrics.json`` (no checkpoints,
no event logs). The chosen spec (``best.yaml``) becomes the preset ``BENCHMARK/ALGORITHM`` in the
board's ``presets_package``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path
from typing import Any

import yaml

from clgym_core.errors import ClgymError
from clgym_core.leaderboard.board import Board, Entry, board_file, entries, read_board, tune_file
from clgym_core.plain import nan_to_null

ENTRIES_DIR = "entries"
ENTRY_FILE = "entry.json"
RUNS_DIR = "runs"
KEPT_FILES = ("spec.yaml", "metrics.json")
SECONDS_FILE = "seconds.txt"  # the tune command's wall time, written by `make leaderboard`


class LeaderboardError(ClgymError):
    """A board, a study or a run cannot be used as asked."""


def presets_folder(board: Board) -> Path | None:
    """The ``presets`` folder of the board's presets package (None when the board names none)."""
    if not board.presets_package:
        return None
    spec = importlib.util.find_spec(board.presets_package)
    if spec is None or not spec.submodule_search_locations:
        raise LeaderboardError(f"presets_package: {board.presets_package!r} is not an installed package")
    return Path(list(spec.submodule_search_locations)[0]) / "presets"


def protocol_text(tune: dict[str, Any]) -> str:
    """How the search was scored, in words (from the tune: section of the entry's tune file)."""
    objective = tune.get("objective") or {}
    metric = objective.get("metric", "validation.average_accuracy")
    direction = objective.get("direction", "maximize")
    parts = []
    if metric.startswith("validation."):
        parts.append(f"{direction} {metric.removeprefix('validation.')} on a validation split: "
                     f"{tune.get('validation_fraction', 0.1):g} of each task's training data held out "
                     "(seeded, class-balanced); the search never reads test data")
    else:
        parts.append(f"{direction} {metric} (test data: not a validation protocol)")
    if tune.get("search_tasks"):
        parts.append(f"trials see only the first {tune['search_tasks']} tasks; the final runs the rest "
                     "(held-out tasks, A-GEM's protocol)")
    parts.append("the final runs train the chosen setting on the full training data and report test numbers")
    return "; ".join(parts)


def study_summary(entry: Entry, study_dir: Path, seeds: int) -> dict[str, Any]:
    """The study in ``study_dir`` as plain data: the search, every trial, the best values."""
    import pandas as pd

    tune = entry.data.get("tune", {})
    trials_csv = study_dir / "trials.csv"
    if not trials_csv.is_file():
        raise LeaderboardError(f"{trials_csv}: missing; run `clgym tune` for {entry.name} first")
    frame = pd.read_csv(trials_csv, keep_default_na=False, na_values=[""])
    space = list(tune.get("space", {}))
    trials = []
    for record in frame.to_dict("records"):
        trials.append({"trial": int(record["trial"]), "state": record["state"],
                       "value": _number(record.get("value")),
                       "params": {p: _plain(record.get(p)) for p in space if p in record},
                       "reason": str(record.get("reason") or "")})
    best_path = study_dir / "best.yaml"
    best = None
    if best_path.is_file():
        header = best_path.read_text(encoding="utf-8").splitlines()[0]
        done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
        maximize = (tune.get("objective") or {}).get("direction", "maximize") == "maximize"
        if done:
            top = (max if maximize else min)(done, key=lambda t: t["value"])
            best = {"trial": top["trial"], "value": top["value"], "params": top["params"], "note": header.lstrip("# ")}
    seconds = study_dir / SECONDS_FILE
    return {
        "space": tune.get("space", {}),
        "sampler": tune.get("sampler", "tpe"),
        "pruner": tune.get("pruner", "none"),
        "objective": tune.get("objective") or {"metric": "validation.average_accuracy", "direction": "maximize"},
        "trials_asked": tune.get("trials"),
        "final_seeds": seeds,
        "protocol": protocol_text(tune),
        "best": best,
        "trials": trials,
        "tune_seconds": float(seconds.read_text().strip()) if seconds.is_file() else None,
    }


def collect(board_path: str | Path, studies: str | Path, presets: bool = True) -> list[str]:
    """Copy the small results of every study in ``studies`` onto the board; one line per entry collected."""
    path = board_file(board_path)
    board = read_board(path)
    root, studies = path.parent, Path(studies)
    preset_root = presets_folder(board) if presets else None
    lines = []
    for entry in entries(board, check=False):
        study_dir = studies / entry.benchmark / entry.algorithm
        if entry.skipped or not entry.run or not (study_dir / "trials.csv").is_file():
            continue
        source = tune_file(root, entry.benchmark, entry.algorithm)
        kept = study_dir / "tune.yaml"  # the copy `clgym tune` keeps of the file it ran
        if source is None or not kept.is_file() or kept.read_text(encoding="utf-8") != source.read_text(encoding="utf-8"):
            lines.append(f"{entry.name}: left out, its study ran another tune file than {source}; run it again")
            continue
        target = root / ENTRIES_DIR / entry.benchmark / entry.algorithm
        summary = study_summary(entry, study_dir, board.seeds)
        if not (study_dir / "best.yaml").is_file():
            reasons = [t["reason"] for t in summary["trials"] if t["reason"]]
            lines.append(f"{entry.name}: left out, no trial of its study finished" + (f" ({reasons[0]})" if reasons else ""))
            continue
        runs = sorted(p for p in (study_dir / "final").glob("*") if (p / "metrics.json").is_file())
        if len(runs) < board.seeds:  # what the board held for it before stays
            lines.append(f"{entry.name}: left out, {len(runs)} of its {board.seeds} final runs have finished")
            continue
        if target.exists():
            shutil.rmtree(target)  # the board's copy of a study is regenerated whole
        for run in runs:
            seed = json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("seed")
            run_target = target / RUNS_DIR / f"seed-{seed}"
            run_target.mkdir(parents=True, exist_ok=True)
            for name in KEPT_FILES:
                shutil.copyfile(run / name, run_target / name)
        record = {"name": entry.name, "benchmark": entry.benchmark, "algorithm": entry.algorithm,
                  "title": board.benchmarks[entry.benchmark].title,
                  "scenario": board.benchmarks[entry.benchmark].scenario, "preset": entry.name,
                  "tune_file": str(source.relative_to(root)) if source else None, "study": summary}
        target.mkdir(parents=True, exist_ok=True)
        (target / ENTRY_FILE).write_text(json.dumps(nan_to_null(record), indent=1) + "\n", encoding="utf-8")
        if preset_root is not None and (study_dir / "best.yaml").is_file():
            preset = preset_root / entry.benchmark / f"{entry.algorithm}.yaml"
            preset.parent.mkdir(parents=True, exist_ok=True)
            preset.write_text(preset_text(entry, study_dir / "best.yaml", summary), encoding="utf-8")
        lines.append(f"{entry.name}: {len(runs)} run(s)")
    _drop_stale(root, board, preset_root)
    return lines


def _drop_stale(root: Path, board: Board, preset_root: Path | None) -> None:
    """Entries no longer on the board, and presets without an entry, go: the board holds exactly its entries."""
    from clgym_core.presets import presets_in

    planned = {e.name for e in entries(board, check=False) if e.run}
    for record in sorted((root / ENTRIES_DIR).glob(f"*/*/{ENTRY_FILE}")):
        if f"{record.parent.parent.name}/{record.parent.name}" not in planned:
            shutil.rmtree(record.parent)
    if preset_root is not None:
        for name, path in presets_in(preset_root).items():
            if not (root / ENTRIES_DIR / name / ENTRY_FILE).is_file():
                path.unlink()


def preset_text(entry: Entry, best_yaml: Path, summary: dict[str, Any]) -> str:
    data = yaml.safe_load(best_yaml.read_text(encoding="utf-8"))
    best = summary.get("best") or {}
    chosen = ", ".join(f"{k}={_short(v)}" for k, v in (best.get("params") or {}).items())
    header = [f"# clgym leaderboard entry {entry.name}: the setting its tuning study chose ({chosen}).",
              f"# Search: {summary['protocol']}.",
              f"# Run it: clgym run --preset {entry.name} --set seed=N (the board reports seeds 0..{summary['final_seeds'] - 1})."]
    return "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
