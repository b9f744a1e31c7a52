"""``clgym leaderboard add``: put further runs of an entry on the board, after checking their spec.

A run belongs to an entry when its resolved ``spec.yaml`` equals the spec of the entry's runs
apart from the seed and bookkeeping (run name, output folder, versions, callbacks, device and
display settings: what :func:`clgym_core.results.config_part` leaves out). A mismatch is one line
naming the first field that differs. Every run is checked before anything is copied, and nothing
on the board is replaced: a second run of a seed goes beside the first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from clgym_core.leaderboard.board import board_file
from clgym_core.leaderboard.collect import ENTRIES_DIR, ENTRY_FILE, KEPT_FILES, RUNS_DIR, LeaderboardError
from clgym_core.plain import first_difference
from clgym_core.results import METRICS_FILE, SPEC_FILE, config_part, read_run
from clgym_core.spec import parse_spec_text


def _spec(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise LeaderboardError(f"{path}: missing; a run on the board needs the spec it ran")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LeaderboardError(f"{path}: not UTF-8 text") from None
    return parse_spec_text(text, "yaml", str(path))


def board_entries(root: Path) -> dict[str, Path]:
    """Entry name -> its folder, for every entry on the board in ``root``."""
    found = {}
    for record_path in sorted((root / ENTRIES_DIR).glob(f"*/*/{ENTRY_FILE}")):
        try:
            name = json.loads(record_path.read_text(encoding="utf-8"))["name"]
        except (ValueError, KeyError, TypeError):
            raise LeaderboardError(f"{record_path}: not a leaderboard entry (no 'name' field)") from None
        found[name] = record_path.parent
    return found


def entry_reference(entry_dir: Path) -> dict[str, Any] | None:
    """The spec the entry's runs share (that of its first run), or None when it has none yet."""
    runs = sorted((entry_dir / RUNS_DIR).glob(f"*/{SPEC_FILE}"))
    return _spec(runs[0]) if runs else None


def spec_difference(run_spec: dict[str, Any], reference: dict[str, Any]) -> str | None:
    """The first field (dotted path) where a run's spec differs from the entry's, seed and bookkeeping aside.

    Both are first resolved by the installed plugins: a board made before a component gained a
    parameter still takes runs made after, where the new parameter is at its default.
    """
    if first_difference(config_part(reference), config_part(run_spec)) is None:
        return None
    from clgym_core.build import resolved_now

    return first_difference(config_part(resolved_now(reference)), config_part(resolved_now(run_spec)))


def match_entry(run_dir: Path, row: dict[str, Any], spec: dict[str, Any], entries: dict[str, Path],
                wanted: str | None) -> str:
    """The entry ``run_dir`` belongs to; one line naming the first differing field when none fits."""
    if wanted is not None:
        if wanted not in entries:
            raise LeaderboardError(f"--entry {wanted}: no such entry on the board (entries: "
                                   f"{', '.join(sorted(entries)) or 'none'})")
        candidates = [wanted]
    else:
        candidates = [n for n in entries if n.rpartition("/")[2] == row["algorithm"]]
    checked = []
    for name in candidates:
        reference = entry_reference(entries[name])
        if reference is None:
            continue
        differs = spec_difference(spec, reference)
        if differs is None:
            return name
        if (reference.get("benchmark") or {}).get("name") == row["benchmark"] or wanted is not None:
            checked.append((name, differs))
    if checked:
        name, differs = checked[0]
        return _mismatch(run_dir, name, differs)
    raise LeaderboardError(f"{run_dir}: no entry on the board for {row['algorithm']} on {row['benchmark']} "
                           "(see leaderboard/README.md)")


def _mismatch(run_dir: Path, entry: str, differs: str) -> str:
    raise LeaderboardError(f"{run_dir / SPEC_FILE}: {differs} differs from entry {entry}'s spec; only the seed may "
                           "differ (run it with: clgym run --preset " + entry + " --set seed=N)")


def add_runs(runs: list[str | Path], board: str | Path, entry: str | None = None) -> list[str]:
    """Check every run, then copy each one's spec.yaml and metrics.json into its entry; one line per run."""
    root = board_file(board).parent
    entries = board_entries(root)
    if not entries:
        raise LeaderboardError(f"{root}: holds no entries (run `make leaderboard` or give --board)")
    plan = []
    for raw in runs:
        run_dir = Path(raw)
        if not (run_dir / METRICS_FILE).is_file():
            raise LeaderboardError(f"{run_dir}: not a finished run (no {METRICS_FILE})")
        row = read_run(run_dir)  # one line for a broken metrics.json or spec.yaml
        spec = _spec(run_dir / SPEC_FILE)
        plan.append((run_dir, row, match_entry(run_dir, row, spec, entries, entry)))
    lines = []
    for run_dir, row, name in plan:
        runs_dir = entries[name] / RUNS_DIR
        metrics_text = (run_dir / METRICS_FILE).read_bytes()
        same = [p.parent for p in runs_dir.glob(f"*/{METRICS_FILE}") if p.read_bytes() == metrics_text]
        if same:
            lines.append(f"{run_dir}: already on the board as {same[0]}")
            continue
        target, n = runs_dir / f"seed-{row['seed']}", 1
        while target.exists():
            n += 1
            target = runs_dir / f"seed-{row['seed']}.{n}"
        target.mkdir(parents=True)
        for file in KEPT_FILES:
            shutil.copyfile(run_dir / file, target / file)
        lines.append(f"{run_dir}: added to {name} as {target}")
    return lines
