"""``clgym leaderboard build``: a static site of the board that opens from disk, no server, no CDN.

``index.html`` holds one sortable table per benchmark and scenario (rows: algorithms; columns:
the summary metrics as mean ± std over seeds, wall time, the published number where a paper
reports the same setup); ``entries/BENCH--ALGO.html`` holds an entry's spec to download, the
commands that reproduce it, the versions that ran it, the mean accuracy matrix as a heatmap,
per-task curves and the tuning history. CSS and JavaScript are inline, figures inline SVG.

Inputs are board folders (``board.yaml`` + ``entries/``), entry folders (``entry.json``) or any
folders of run directories (grouped by benchmark, algorithm and spec, seed aside).
"""

from __future__ import annotations

import html
import json
import math
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clgym_core.errors import ResultsError
from clgym_core.leaderboard.board import Board, board_file, read_board
from clgym_core.leaderboard.collect import ENTRY_FILE, LeaderboardError
from clgym_core.results import METRICS_FILE, SPEC_FILE, find_runs, read_run
from clgym_core.spec import parse_spec_text

#: Columns of the index tables: (key, label for classification, label for regression, lower is better).
COLUMNS = (
    ("average_accuracy", "avg accuracy %", "avg loss", False),
    ("average_forgetting", "forgetting", "forgetting (loss)", True),
    ("backward_transfer", "BWT", "BWT (loss)", False),
    ("forward_transfer", "FWT", "FWT (loss)", False),
    ("learning_accuracy", "learning accuracy %", "learning loss", False),
    ("wall_seconds", "wall s", "wall s", True),
)
REGRESSION_KEYS = {"average_accuracy": "average_loss", "learning_accuracy": "learning_loss"}


@dataclass
class SiteEntry:
    key: str  # "rotated_mnist/ewc"
    table: str  # heading of its index table
    algorithm: str
    problem: str = "classification"
    runs: list[dict[str, Any]] = field(default_factory=list)  # read_run rows + "metrics" + "spec_text"
    record: dict[str, Any] | None = None  # entry.json
    published: dict[str, Any] | None = None

    @property
    def slug(self) -> str:
        return self.key.replace("/", "--")


# ---- reading ------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LeaderboardError(f"{path}: corrupt JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LeaderboardError(f"{path}: cannot read ({exc})") from None


def _run_record(run_dir: Path) -> dict[str, Any]:
    row = read_run(run_dir)  # one-line errors naming a broken metrics.json or spec.yaml
    metrics = _read_json(run_dir / METRICS_FILE)
    for key in ("accuracy_matrix", "loss_matrix"):
        matrix = metrics.get(key)
        if matrix is not None and not (isinstance(matrix, list) and all(isinstance(r, list) for r in matrix)):
            raise LeaderboardError(f"{run_dir / METRICS_FILE}: {key} is not a list of rows")
    row["metrics"] = metrics
    spec_path = run_dir / SPEC_FILE
    row["spec_text"] = spec_path.read_text(encoding="utf-8") if spec_path.is_file() else ""
    return row


def _entry_dirs(path: Path) -> list[Path]:
    return sorted(p.parent for p in path.rglob(ENTRY_FILE))


def load_entries(paths: list[str | Path]) -> tuple[list[SiteEntry], list[Board]]:
    """The entries in ``paths`` (boards, entry folders, run folders) and the boards among them."""
    entries: dict[str, SiteEntry] = {}
    boards: list[Board] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LeaderboardError(f"{path}: no such file or directory")
        if not path.is_dir():
            raise LeaderboardError(f"{path}: not a directory (give a board, an entry or run directories)")
        board = read_board(path) if board_file(path).is_file() else None
        if board is not None:
            boards.append(board)
        covered: set[Path] = set()
        for entry_dir in _entry_dirs(path):
            record = _read_json(entry_dir / ENTRY_FILE)
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                raise LeaderboardError(f"{entry_dir / ENTRY_FILE}: not a leaderboard entry (no 'name' field)")
            try:
                runs, _ = find_runs([entry_dir])
            except ResultsError:
                runs = []
            covered.update(r.resolve() for r in runs)
            entry = entries.setdefault(record["name"], SiteEntry(
                record["name"], f"{record.get('title', record.get('benchmark'))} ({record.get('scenario', '')})",
                record.get("algorithm", record["name"].rpartition("/")[2])))
            entry.record = record
            entry.runs.extend(_run_record(r) for r in runs)
            if board is not None:
                bench = board.benchmarks.get(record.get("benchmark", ""))
                if bench is not None and entry.algorithm in bench.published:
                    entry.published = bench.published[entry.algorithm].model_dump()
        if covered and not (path / METRICS_FILE).is_file():
            loose = [r for r in _loose_runs(path) if r.resolve() not in covered]
        else:
            loose, _ = find_runs([path])  # one line when the folder holds no run
            loose = [r for r in loose if r.resolve() not in covered]
        for run_dir in loose:
            row = _run_record(run_dir)
            spec = parse_spec_text(row["spec_text"], "yaml", str(run_dir / SPEC_FILE)) if row["spec_text"] else {}
            scenario = ((spec.get("benchmark") or {}).get("params") or {}).get("scenario") if spec else None
            key = f"{row['benchmark']}/{row['algorithm']}" + (f"/{row['config']}" if row["config"] else "")
            table = row["benchmark"] + (f" ({scenario})" if scenario else f" ({row['problem']})")
            entries.setdefault(key, SiteEntry(key, table, row["algorithm"])).runs.append(row)
    for entry in entries.values():
        entry.runs.sort(key=lambda r: (r["seed"] if r["seed"] is not None else -1, r["run"]))
        if entry.runs:
            entry.problem = entry.runs[0]["problem"]
    return sorted(entries.values(), key=lambda e: (e.table, e.algorithm, e.key)), boards


def _loose_runs(path: Path) -> list[Path]:
    try:
        runs, _ = find_runs([path])
    except ResultsError:
        return []
    return runs


# ---- numbers ------------------------------------------------------------------------------------------
def metric_key(key: str, problem: str) -> str:
    return REGRESSION_KEYS.get(key, key) if problem == "regression" else key


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1, None for one value) of the finite values."""
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def entry_stats(entry: SiteEntry) -> dict[str, tuple[float | None, float | None]]:
    stats = {}
    for key, *_ in COLUMNS:
        real = metric_key(key, entry.problem)
        stats[key] = mean_std([_value(r, real) for r in entry.runs])
    return stats


def _value(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        value = (row["metrics"].get("loss_metrics") or {}).get(key) if "metrics" in row else None
    return value if isinstance(value, (int, float)) else math.nan


def cell_text(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def mean_matrix(entry: SiteEntry) -> list[list[float]] | None:
    key = "accuracy_matrix" if entry.problem == "classification" else "loss_matrix"
    matrices = [r["metrics"].get(key) for r in entry.runs if r["metrics"].get(key)]
    if not matrices:
        return None
    shape = (len(matrices[0]), len(matrices[0][0]) if matrices[0] else 0)
    matrices = [m for m in matrices if (len(m), len(m[0]) if m else 0) == shape]
    return [[statistics.fmean(_num(m[i][j]) for m in matrices) for j in range(shape[1])] for i in range(shape[0])]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


# ---- figures (inline SVG) -----------------------------------------------------------------------------
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def heatmap_svg(matrix: list[list[float]], problem: str) -> str:
    """Rows: untrained, after task 1..T; columns: task 1..T; darker is better."""
    rows, cols = len(matrix), len(matrix[0]) if matrix else 0
    cell, left, top = 46, 80, 24
    finite = [v for r in matrix for v in r if math.isfinite(v)]
    lo, hi = (0.0, 100.0) if problem == "classification" else (min(finite, default=0), max(finite, default=1))
    parts = [f'<svg class="fig" xmlns="http://www.w3.org/2000/svg" width="{left + cols * cell + 10}" '
             f'height="{top + rows * cell + 10}" role="img" aria-label="accuracy matrix">']
    for j in range(cols):
        parts.append(f'<text x="{left + j * cell + cell / 2}" y="{top - 8}" text-anchor="middle">T{j + 1}</text>')
    for i, row in enumerate(matrix):
        label = "untrained" if i == 0 else f"after {i}"
        parts.append(f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end">{label}</text>')
        for j, value in enumerate(row):
            share = 0.0 if not math.isfinite(value) or hi == lo else (value - lo) / (hi - lo)
            share = share if problem == "classification" else 1 - share  # low loss is good
            share = min(1.0, max(0.0, share))
            shade = int(245 - 190 * share)
            ink = "#fff" if share > 0.55 else "#111"
            text = f"{value:.1f}" if problem == "classification" else f"{value:.3g}"
            parts.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="rgb({shade},{shade + 5 if shade < 250 else 250},255)"/>'
                         f'<text x="{left + j * cell + cell / 2 - 1}" y="{top + i * cell + cell / 2 + 4}" '
                         f'text-anchor="middle" fill="{ink}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def curves_svg(matrix: list[list[float]], problem: str) -> str:
    """One line per task: its score after each training task (x: untrained, 1..T)."""
    rows, cols = len(matrix), len(matrix[0]) if matrix else 0
    width, height, left, bottom, top = 460, 240, 48, 30, 12
    finite = [v for r in matrix for v in r if math.isfinite(v)]
    lo, hi = (0.0, 100.0) if problem == "classification" else (0.0, max(finite, default=1.0) or 1.0)
    plot_w, plot_h = width - left - 110, height - top - bottom

    def x(i: int) -> float:
        return left + plot_w * i / max(1, rows - 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / ((hi - lo) or 1))

    parts = [f'<svg class="fig" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="per-task curves"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
             'fill="none" stroke="#bbb"/>']
    for tick in range(5):
        v = lo + (hi - lo) * tick / 4
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4}" text-anchor="end">{v:.3g}</text>')
    for i in range(rows):
        parts.append(f'<text x="{x(i)}" y="{height - 10}" text-anchor="middle">{"0" if i == 0 else i}</text>')
    for j in range(cols):
        color = PALETTE[j % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(matrix[i][j]):.1f}" for i in range(rows) if math.isfinite(matrix[i][j]))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{left + plot_w + 10}" y="{top + 14 + 16 * j}" fill="{color}">task {j + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_svg(trials: list[dict[str, Any]], maximize: bool) -> str:
    """Each finished trial's objective value, and the best so far."""
    done = [(t["trial"], t["value"]) for t in trials if t.get("state") == "complete" and t.get("value") is not None]
    if not done:
        return "<p>No finished trial.</p>"
    width, height, left, bottom, top = 460, 200, 52, 30, 12
    plot_w, plot_h = width - left - 20, height - top - bottom
    lo, hi = min(v for _, v in done), max(v for _, v in done)
    lo, hi = (lo - 1, hi + 1) if hi == lo else (lo, hi)
    last = max(t["trial"] for t in trials) or 1

    def x(n: int) -> float:
        return left + plot_w * n / last

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg class="fig" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="tuning history"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
             'fill="none" stroke="#bbb"/>'
             f'<text x="{left - 4}" y="{y(hi) + 4}" text-anchor="end">{hi:.3g}</text>'
             f'<text x="{left - 4}" y="{y(lo) + 4}" text-anchor="end">{lo:.3g}</text>'
             f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">trial</text>']
    best, steps = None, []
    for n, v in sorted(done):
        best = v if best is None else (max(best, v) if maximize else min(best, v))
        steps.append(f"{x(n):.1f},{y(best):.1f}")
        parts.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="4" fill="#1f77b4"/>')
    parts.append(f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{" ".join(steps)}"/></svg>')
    return "".join(parts)


# ---- pages --------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#111;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;white-space:nowrap}
th{background:#eef2f7;cursor:pointer;user-select:none}td:first-child,th:first-child{text-align:left}
th.asc:after{content:" \\25B2"}th.desc:after{content:" \\25BC"}tr:nth-child(even) td{background:#fafafa}
code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem;overflow-x:auto}
.note{color:#555;font-size:.9rem;max-width:60rem}.fig text{font-size:11px;font-family:inherit}
.figs{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}
"""

SORT_JS = r"""
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (!isNaN(nx) || !isNaN(ny)) {
          if (isNaN(nx)) return 1; if (isNaN(ny)) return -1;
          return asc ? nx - ny : ny - nx;
        }
        return asc ? String(x).localeCompare(y) : String(y).localeCompare(x);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
// index.html#sort=N sorts every table by its column N (0-based) when the page opens: links can share an order.
var wanted = /^#sort=(\d+)$/.exec(location.hash);
if (wanted) {
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var th = table.querySelectorAll('th')[parseInt(wanted[1], 10)];
    if (th) th.click();
  });
}
document.body.setAttribute('data-ready', 'yes');
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body>{body}<script>{SORT_JS}</script></body></html>\n')


def _td(text: str, value: Any = None) -> str:
    data = "" if value is None else f' data-v="{html.escape(str(value))}"'
    return f"<td{data}>{html.escape(text)}</td>"


def index_page(entries: list[SiteEntry], boards: list[Board]) -> str:
    title = boards[0].title if boards else "clgym leaderboard"
    out = [f"<h1>{html.escape(title)}</h1>",
           '<p class="note">Mean ± sample standard deviation over seeds; click a column to sort. Each row links '
           "to its entry: the spec, the command that reproduces it, versions, figures and the tuning history.</p>"]
    for board in boards:
        if board.sizes_note:
            out.append(f'<p class="note">{html.escape(board.sizes_note)}</p>')
    order = {key: i for board in boards for i, key in enumerate(board.benchmarks)}  # the board's order first
    tables: dict[str, list[SiteEntry]] = {}
    for entry in sorted(entries, key=lambda e: (order.get((e.record or {}).get("benchmark"), len(order)), e.table)):
        tables.setdefault(entry.table, []).append(entry)
    for table_name, members in tables.items():
        problem = members[0].problem
        out.append(f"<h2>{html.escape(table_name)}</h2>")
        bench_key = (members[0].record or {}).get("benchmark")
        for board in boards:
            bench = board.benchmarks.get(bench_key or "")
            if bench is not None and bench.published_note:
                out.append(f'<p class="note">{html.escape(bench.published_note)}</p>')
        header = ["algorithm", *[c[1] if problem == "classification" else c[2] for c in COLUMNS], "seeds",
                  "published"]
        out.append('<table class="sortable"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                   + "</tr></thead><tbody>")
        for entry in members:
            stats = entry_stats(entry)
            seeds = ",".join(str(r["seed"]) for r in entry.runs)
            cells = [f'<td data-v="{html.escape(entry.algorithm)}"><a href="entries/{entry.slug}.html">'
                     f"{html.escape(entry.algorithm)}</a></td>"]
            for key, *_ in COLUMNS:
                mean, std = stats[key]
                digits = 2 if entry.problem == "classification" or key == "wall_seconds" else 4
                cells.append(_td(cell_text(mean, std, digits), "" if mean is None else f"{mean:.6g}"))
            cells.append(_td(seeds, len(entry.runs)))
            pub = entry.published
            cells.append(_td(f"{pub['value']:.2f} ({pub['citation']})", pub["value"]) if pub else _td("–", ""))
            out.append(f'<tr class="entry" data-entry="{html.escape(entry.key)}">' + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    return _page(title, "\n".join(out))


def entry_page(entry: SiteEntry) -> str:
    record = entry.record or {}
    study = record.get("study") or {}
    out = ['<p><a href="../index.html">&larr; leaderboard</a></p>',
           f"<h1>{html.escape(entry.key)}</h1><p>{html.escape(entry.table)}; {len(entry.runs)} run(s)</p>"]
    stats = entry_stats(entry)
    labels = [c[1] if entry.problem == "classification" else c[2] for c in COLUMNS]
    out.append('<h2>Results</h2><table class="sortable"><thead><tr><th>seed</th>'
               + "".join(f"<th>{html.escape(h)}</th>" for h in labels) + "</tr></thead><tbody>")
    for run in entry.runs:
        cells = [_td(str(run["seed"]), run["seed"])]
        for key, *_ in COLUMNS:
            value = _value(run, metric_key(key, entry.problem))
            digits = 2 if entry.problem == "classification" or key == "wall_seconds" else 4
            cells.append(_td("–" if math.isnan(value) else f"{value:.{digits}f}", "" if math.isnan(value) else value))
        out.append('<tr class="run">' + "".join(cells) + "</tr>")
    out.append('<tr class="mean">' + _td("mean ± std", "") + "".join(
        _td(cell_text(*stats[k])) for k, *_ in COLUMNS) + "</tr></tbody></table>")
    if entry.published:
        pub = entry.published
        out.append(f"<p>Published: {pub['value']:.2f} {html.escape(pub['metric'])} ({html.escape(pub['citation'])}).</p>")
    out.append("<h2>Reproduce</h2>")
    spec_name = f"{entry.slug}.spec.yaml"
    if entry.runs and entry.runs[0]["spec_text"]:
        out.append(f'<p>Spec: <a href="{spec_name}" download>{spec_name}</a> (the resolved spec of seed '
                   f'{entry.runs[0]["seed"]}; <code>clgym run {spec_name} --set seed=N</code>).</p>')
    commands = []
    preset = record.get("preset")
    for run in entry.runs:
        if preset:
            commands.append(f"clgym run --preset {preset} --set seed={run['seed']}")
        else:
            commands.append(f"clgym run {spec_name} --set seed={run['seed']}")
    out.append("<pre>" + html.escape("\n".join(dict.fromkeys(commands))) + "</pre>")
    if record.get("tune_file"):
        out.append(f"<p>The study: <code>clgym tune leaderboard/{html.escape(record['tune_file'])} --out DIR "
                   f"--final-seeds {study.get('final_seeds', len(entry.runs))}</code></p>")
    out.append("<h2>Versions</h2>" + versions_table(entry))
    matrix = mean_matrix(entry)
    if matrix:
        kind = "accuracy %" if entry.problem == "classification" else "test loss"
        out.append(f"<h2>Mean {kind} matrix and per-task curves</h2><div class=\"figs\">"
                   f"{heatmap_svg(matrix, entry.problem)}{curves_svg(matrix, entry.problem)}</div>")
    out.append("<h2>Tuning</h2>" + tuning_section(study))
    return _page(entry.key, "\n".join(out))


def versions_table(entry: SiteEntry) -> str:
    versions: dict[str, set[str]] = {}
    for run in entry.runs:
        metrics = run["metrics"]
        found = dict(metrics.get("versions") or {})
        for key in ("python", "torch"):
            if metrics.get(key):
                found[key] = str(metrics[key])
        for name, version in found.items():
            versions.setdefault(name, set()).add(str(version))
    if not versions:
        return "<p>No versions recorded.</p>"
    rows = "".join(f"<tr>{_td(name)}{_td(', '.join(sorted(v)))}</tr>" for name, v in sorted(versions.items()))
    device = sorted({str(r["metrics"].get("device", "")) for r in entry.runs})
    return (f"<table><thead><tr><th>distribution</th><th>version</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p>device: {html.escape(', '.join(device))}</p>")


def tuning_section(study: dict[str, Any]) -> str:
    if not study:
        return "<p>No tuning study recorded for these runs.</p>"
    out = [f"<p>{html.escape(str(study.get('protocol', '')))}.</p>",
           f"<p>Space: <code>{html.escape(json.dumps(study.get('space', {})))}</code>; sampler "
           f"<code>{html.escape(json.dumps(study.get('sampler')))}</code>, pruner "
           f"<code>{html.escape(json.dumps(study.get('pruner')))}</code>, {study.get('trials_asked')} trials"
           + (f", {study['tune_seconds']:.0f} s for the study and its final runs" if study.get("tune_seconds") else "")
           + ".</p>"]
    best = study.get("best")
    if best:
        chosen = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best["params"].items())
        out.append(f"<p>Chosen: trial {best['trial']} ({chosen}), validation value {best['value']:.4g}.</p>")
    trials = study.get("trials") or []
    maximize = (study.get("objective") or {}).get("direction", "maximize") == "maximize"
    out.append(history_svg(trials, maximize))
    params = list(study.get("space", {}))
    out.append('<table class="sortable"><thead><tr><th>trial</th><th>state</th><th>value</th>'
               + "".join(f"<th>{html.escape(p)}</th>" for p in params) + "<th>note</th></tr></thead><tbody>")
    for t in trials:
        cells = [_td(str(t["trial"]), t["trial"]), _td(t["state"]),
                 _td("–" if t.get("value") is None else f"{t['value']:.4g}", t.get("value") if t.get("value") is not None else "")]
        for p in params:
            v = t.get("params", {}).get(p)
            cells.append(_td(f"{v:.4g}" if isinstance(v, float) else str(v), v if v is not None else ""))
        cells.append(_td(t.get("reason", "")))
        out.append('<tr class="trial">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def build_site(paths: list[str | Path], out: str | Path) -> tuple[Path, int]:
    """Write the site into ``out`` (replacing a site built there before); its index page and entry count."""
    entries, boards = load_entries(paths)
    if not entries:
        raise LeaderboardError(f"{', '.join(str(p) for p in paths)}: no runs to show")
    out = Path(out)
    if out.exists() and not (out / "index.html").is_file() and any(out.iterdir()):
        raise LeaderboardError(f"--out {out}: holds files that are not a leaderboard site; choose a new or empty folder")
    if (out / "entries").is_dir():
        shutil.rmtree(out / "entries")
    (out / "entries").mkdir(parents=True, exist_ok=True)
    for entry in entries:
        (out / "entries" / f"{entry.slug}.html").write_text(entry_page(entry), encoding="utf-8")
        if entry.runs and entry.runs[0]["spec_text"]:
            (out / "entries" / f"{entry.slug}.spec.yaml").write_text(entry.runs[0]["spec_text"], encoding="utf-8")
    index = out / "index.html"
    index.write_text(index_page(entries, boards), encoding="utf-8")
    return index, len(entries)


__all__ = ["build_site", "load_entries"]
