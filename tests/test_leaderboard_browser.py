"""The leaderboard site in a real browser: headless Chromium opens it from disk (file://, no server).

The DOM after the page's script ran must hold every row of every table, sort on request, and the entry
pages must render their figures; a screenshot must not be blank. Skips where Chromium is absent
(`apt-get install chromium`; .ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from clgym_core.leaderboard.site import build_site
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium found (apt-get install chromium)")

SPEC = {
    "benchmark": {"name": "toy_2d_classification", "params": {"num_tasks": 2, "cluster_size": 20,
                                                              "test_cluster_size": 20, "per_task_memory_examples": 10}},
    "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "trainer": {"epochs_per_task": 2, "batch_size": 16, "device": "cpu", "checkpoint": False, "progress": False},
}
ALGORITHMS = ("finetune", "er_ring", "agem")


def _browser(*args: str, timeout: int = 90) -> str:
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--allow-file-access-from-files", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict[str, list[float]]]:
    """A board of three entries with two seeds each (fixture runs made here), built into a site."""
    root = tmp_path_factory.mktemp("board")
    accuracies: dict[str, list[float]] = {}
    for algorithm in ALGORITHMS:
        entry = root / "entries" / "toy" / algorithm
        for seed in (0, 1):
            spec = {**SPEC, "algorithm": {"name": algorithm}, "seed": seed}
            run_spec(parse_spec(spec), out_dir=entry / "runs" / f"seed-{seed}", progress=False)
            accuracies.setdefault(algorithm, []).append(
                json.loads((entry / "runs" / f"seed-{seed}" / "metrics.json").read_text())["average_accuracy"])
        record = {"name": f"toy/{algorithm}", "benchmark": "toy", "algorithm": algorithm, "title": "Toy",
                  "scenario": "browser test", "preset": f"toy/{algorithm}",
                  "study": {"protocol": "fixture", "space": {"optimizer.lr": [0.1]}, "objective": {},
                            "trials": [{"trial": 0, "state": "complete", "value": 50.0,
                                        "params": {"optimizer.lr": 0.1}, "reason": ""}]}}
        (entry / "entry.json").write_text(json.dumps(record))
    out = tmp_path_factory.mktemp("site")
    build_site([root], out)
    return out, accuracies


def test_index_holds_every_row_after_its_script_ran(site) -> None:
    out, _ = site
    dom = _browser("--dump-dom", (out / "index.html").as_uri())
    assert 'data-ready="yes"' in dom  # the inline script ran to its end without an error
    rows = re.findall(r'<tr class="entry" data-entry="([^"]+)"', dom)
    assert sorted(rows) == sorted(f"toy/{a}" for a in ALGORITHMS)


def test_sorting_in_the_browser_orders_rows_by_the_column(site) -> None:
    out, accuracies = site
    dom = _browser("--dump-dom", (out / "index.html").as_uri() + "#sort=1")  # average accuracy, ascending
    rows = re.findall(r'<tr class="entry" data-entry="toy/([^"]+)"', dom)
    means = {a: sum(v) / len(v) for a, v in accuracies.items()}
    assert rows == sorted(means, key=lambda a: means[a])
    assert 'class="asc"' in dom


def test_entry_pages_render_figures_and_commands(site) -> None:
    out, _ = site
    for algorithm in ALGORITHMS:
        dom = _browser("--dump-dom", (out / "entries" / f"toy--{algorithm}.html").as_uri())
        assert f"clgym run --preset toy/{algorithm} --set seed=1" in dom
        assert 'aria-label="accuracy matrix"' in dom and 'aria-label="per-task curves"' in dom
        assert dom.count('<tr class="run">') == 2
        spec = yaml.safe_load((out / "entries" / f"toy--{algorithm}.spec.yaml").read_text())
        assert spec["algorithm"]["name"] == algorithm


def test_screenshot_of_the_index_is_not_blank(site, tmp_path) -> None:
    import matplotlib.image

    out, _ = site
    shot = tmp_path / "index.png"
    _browser(f"--screenshot={shot}", "--window-size=1200,800", "--hide-scrollbars", (out / "index.html").as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 700 and pixels.shape[1] >= 1100
    gray = pixels[..., :3].mean(axis=2)
    assert gray.std() > 0.02  # text and table lines on a white page, not one flat colour
    assert (gray < 0.5).mean() > 0.001  # some dark ink


def test_the_committed_board_renders_every_entry(tmp_path) -> None:
    """The board in leaderboard/ (what README links) builds, and the browser shows each of its entries."""
    board = Path(__file__).resolve().parent.parent / "leaderboard"
    entries = sorted(f"{p.parent.name}/{p.name}" for p in (board / "entries").glob("*/*") if (p / "entry.json").is_file())
    assert entries, "leaderboard/entries is empty: run make leaderboard"
    build_site([board], tmp_path / "site")
    dom = _browser("--dump-dom", (tmp_path / "site" / "index.html").as_uri())
    assert 'data-ready="yes"' in dom
    assert sorted(re.findall(r'<tr class="entry" data-entry="([^"]+)"', dom)) == entries
    first = entries[0].replace("/", "--")
    page = _browser("--dump-dom", (tmp_path / "site" / "entries" / f"{first}.html").as_uri())
    assert f"clgym run --preset {entries[0]}" in page and 'aria-label="accuracy matrix"' in page
