"""Reproduce the comparison tables of the Stable SGD, A-GEM and DER papers with the specs in examples/reproduce/.

Tables (one spec per algorithm per benchmark, published hyperparameters in each spec's comments):

* ``stable_sgd``: Mirzadeh et al. 2020, "Understanding the Role of Training Regimes in
  Continual Learning", Table 2: Permuted and Rotated MNIST, 20 tasks, 1 epoch, MLP 256-256;
  naive SGD, EWC, A-GEM, ER-Reservoir, Stable SGD, multitask.
* ``agem``: Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM", Table 1:
  Permuted MNIST, the 17 tasks after the 3 cross-validation tasks, batch 10, 250 memory
  examples per task; VAN, EWC, A-GEM, MULTI-TASK.
* ``der``: Buzzega et al. 2020, "Dark Experience for General Continual Learning", Table 2
  (Permuted and Rotated MNIST, Domain-IL, 20 tasks, batch 128) and the appendix (Seq-MNIST,
  Class-IL and Task-IL, 5 tasks, batch 10): MLP 100-100, 1 epoch, buffers 200 and 500; SGD,
  oEWC, SI, LwF, ER, GEM, A-GEM, iCaRL, DER, DER++ with the authors' hyperparameters (one
  spec per method, benchmark and buffer). Published means from the authors' results table in
  aimagelab/mammoth's first README (the paper's numbers; that table prints no std).

Every (spec, seed) runs as its own ``clgym run SPEC --out DIR --no-progress --set seed=N``
subprocess with one thread (OMP_NUM_THREADS=1), at most ``--jobs`` at a time; a run whose
folder already holds metrics.json is skipped, so an interrupted grid picks up where it
stopped. Then ``clgym results DIR --format markdown`` gives the leaderboard, and a second
table puts our A_T and F_T (forgetting as Chaudhry et al. 2018 define it, the papers'
metric, in [0, 1]) next to the published numbers.

    python scripts/reproduce.py --table all --seeds 0 1 2 --out runs/reproduce
    python scripts/reproduce.py --table der --algorithms der_200 derpp_200 --seeds 0 --out runs/der
    python scripts/reproduce.py --table der --benchmarks seq_mnist_class_il seq_mnist_task_il --out runs/der
    python scripts/reproduce.py --quick --out /tmp/repro_quick     # 3 tasks x 500 images: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "reproduce"
TABLES = {"stable_sgd": "stable_sgd_table2", "agem": "agem_table1", "der": "der_table"}

# Published (accuracy %, std, forgetting in [0, 1], std); None where the paper prints none.
# Stable SGD paper, Table 2 (mean and std over 5 runs).
PUBLISHED = {
    ("stable_sgd_table2", "permuted_mnist"): {
        "finetune": (44.4, 2.46, 0.53, 0.03),
        "ewc": (70.7, 1.74, 0.23, 0.01),
        "agem": (65.7, 0.51, 0.29, 0.01),
        "er_reservoir": (72.4, 0.42, 0.16, 0.01),
        "stable_sgd": (80.1, 0.51, 0.09, 0.01),
        "joint": (86.5, 0.21, 0.0, None),
    },
    ("stable_sgd_table2", "rotated_mnist"): {
        "finetune": (46.3, 1.37, 0.52, 0.01),
        "ewc": (48.5, 1.24, 0.48, 0.01),
        "agem": (55.3, 1.47, 0.42, 0.01),
        "er_reservoir": (69.2, 1.10, 0.21, 0.01),
        "stable_sgd": (70.8, 0.78, 0.10, 0.02),
        "joint": (89.8, 0.37, 0.0, None),
    },
    # A-GEM paper, Table 1 (Permuted MNIST, 5 runs).
    ("agem_table1", "permuted_mnist"): {
        "finetune": (47.9, 1.32, 0.52, 0.01),
        "ewc": (68.3, 0.69, 0.29, 0.01),
        "agem": (89.1, 0.14, 0.06, 0.00),
        "joint": (91.3, None, None, None),
    },
}
# DER paper: the authors' results table in aimagelab/mammoth's README.md as first committed
# (7ab9db9, 2020-10-05; removed in 907e2a9, 2021-02-15), columns P-MNIST, R-MNIST (Domain-IL)
# and S-MNIST (Class-IL, Task-IL), rows by buffer. It prints means only, and no forgetting.
_DER_ROWS = {  # spec stem: (P-MNIST, R-MNIST, S-MNIST Class-IL, S-MNIST Task-IL); None where it prints "-"
    "finetune": (40.70, 67.66, 19.60, 94.94),
    "ewc_online": (75.79, 77.35, 20.46, 98.39),
    "si": (65.86, 71.91, 19.27, 96.00),
    "lwf": (None, None, 19.62, 94.11),
    "er_200": (72.37, 85.01, 80.43, 97.86),
    "gem_200": (66.93, 80.80, 80.11, 97.78),
    "agem_200": (66.42, 81.91, 45.72, 98.61),
    "icarl_200": (None, None, 70.51, 98.28),
    "der_200": (81.74, 90.04, 84.55, 98.80),
    "derpp_200": (83.58, 90.43, 85.61, 98.76),
    "er_500": (80.60, 88.91, 86.12, 99.04),
    "gem_500": (76.88, 81.15, 85.99, 98.71),
    "agem_500": (67.56, 80.31, 46.66, 98.93),
    "icarl_500": (None, None, 70.10, 98.32),
    "der_500": (87.29, 92.24, 90.54, 98.84),
    "derpp_500": (88.21, 92.77, 91.00, 98.94),
}
for _col, _bench in enumerate(["permuted_mnist", "rotated_mnist", "seq_mnist_class_il", "seq_mnist_task_il"]):
    PUBLISHED[("der_table", _bench)] = {
        stem: (row[_col], None, None, None) for stem, row in _DER_ROWS.items() if row[_col] is not None
    }
LABELS = {"finetune": "naive SGD / VAN (finetune)", "ewc": "EWC (variant agem)", "agem": "A-GEM",
          "er_reservoir": "ER-Reservoir", "stable_sgd": "Stable SGD", "joint": "multitask (joint)",
          "ewc_online": "oEWC", "si": "SI", "lwf": "LwF"}
QUICK = ["benchmark.params.num_tasks=3", "benchmark.params.per_task_examples=500",
         "benchmark.params.per_task_joint_examples=200"]


def clgym() -> list[str]:
    exe = Path(sys.executable).with_name("clgym")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clgym_core"]


def grid(tables: list[str], only: list[str] | None, benchmarks: list[str] | None = None) -> list[Path]:
    specs = []
    for table in tables:
        for spec in sorted((SPECS / TABLES[table]).glob("*/*.yaml")):
            if (not only or spec.stem in only) and (not benchmarks or spec.parent.name in benchmarks):
                specs.append(spec)
    return specs


def run_one(spec: Path, seed: int, out: Path, overrides: list[str], log: Path) -> tuple[str, float, int]:
    run_dir = out / spec.parent.parent.name / spec.parent.name / spec.stem / f"seed{seed}"
    if (run_dir / "metrics.json").is_file():
        return str(run_dir), 0.0, 0
    if run_dir.exists():  # an unfinished run: start it again
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*clgym(), "run", str(spec), "--out", str(run_dir), "--no-progress", "--set", f"seed={seed}"]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    return str(run_dir), time.perf_counter() - start, rc


def chaudhry_forgetting(matrix: list[list[float]]) -> float:
    """Chaudhry et al. 2018 forgetting, in [0, 1] like the papers: mean over tasks j < T of max_{l in j..T-1} a_{l,j} - a_{T,j}."""
    from clgym_core.metrics import chaudhry_forgetting as f

    return f(matrix) / 100.0


def summary(out: Path, tables: list[str]) -> str:
    lines = []
    for table in tables:
        folder = out / TABLES[table]
        if not folder.is_dir():
            continue
        for bench_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            published = PUBLISHED.get((TABLES[table], bench_dir.name), {})
            lines += [f"\n### {TABLES[table]} / {bench_dir.name}\n",
                      "| method | published A_T (%) | ours A_T (%) | published F_T | ours F_T | seeds |",
                      "|---|---|---|---|---|---|"]
            for algo in published or sorted(p.name for p in bench_dir.iterdir()):
                runs = sorted((bench_dir / algo).glob("seed*/metrics.json"))
                accs, fgts = [], []
                for path in runs:
                    m = json.loads(path.read_text())
                    accs.append(m["average_accuracy"])
                    fgts.append(chaudhry_forgetting(m["accuracy_matrix"]))
                pa, pas, pf, pfs = published.get(algo, (None, None, None, None))
                lines.append(f"| {LABELS.get(algo, algo)} | {_pm(pa, pas, 1)} | {_mean_std(accs, 1)} | "
                             f"{_pm(pf, pfs, 2)} | {_mean_std(fgts, 2)} | {len(runs)} |")
    return "\n".join(lines) + "\n"


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "not run"
    std = statistics.stdev(values) if len(values) > 1 else None
    return _pm(statistics.mean(values), std, digits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=[*TABLES, "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algorithms", nargs="+", help="Only these specs (file stems, e.g. finetune agem).")
    parser.add_argument("--benchmarks", nargs="+",
                        help="Only these benchmark folders (e.g. seq_mnist_class_il seq_mnist_task_il).")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    parser.add_argument("--jobs", type=int, default=2, help="Runs at a time (one thread each).")
    parser.add_argument("--quick", action="store_true", help="3 tasks x 500 images per task: checks the pipeline, not the numbers.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Extra override for every run.")
    parser.add_argument("--summary-only", action="store_true", help="Aggregate what is in --out; run nothing.")
    args = parser.parse_args()

    tables = list(TABLES) if args.table == "all" else [args.table]
    overrides = (QUICK if args.quick else []) + args.overrides
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "reproduce.log"
    if not args.summary_only:
        # Seed-major order: every spec gets its first seed before any gets a second.
        jobs = [(spec, seed) for seed in args.seeds for spec in grid(tables, args.algorithms, args.benchmarks)]
        print(f"{len(jobs)} runs, {args.jobs} at a time; log: {log}", flush=True)
        failed = 0
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_one, spec, seed, args.out, overrides, log) for spec, seed in jobs]
            for fut in futures:
                run_dir, seconds, rc = fut.result()
                failed += rc != 0
                status = "skipped (done)" if seconds == 0 and rc == 0 else f"rc={rc} {seconds:.0f}s"
                print(f"{run_dir}: {status}", flush=True)
        if failed:
            print(f"{failed} run(s) failed; see {log}", file=sys.stderr)

    for table in tables:
        folder = args.out / TABLES[table]
        if folder.is_dir():
            print(f"\n## clgym results {folder}\n", flush=True)
            # The DER table has one spec per buffer size: keep them apart.
            group_by = "benchmark,algorithm,config" if table == "der" else "benchmark,algorithm"
            subprocess.run([*clgym(), "results", str(folder), "--format", "markdown", "--group-by",
                            group_by, "--metrics", "average_accuracy,average_forgetting,wall_seconds"],
                           cwd=ROOT, check=False)
    print(summary(args.out, tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
