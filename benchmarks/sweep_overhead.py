"""Sweep executor cost: overhead per run beyond the run's own time, and the 1-vs-2 worker ratio.

Setup: a sweep of ``--runs`` toy runs (2D Gaussian clusters, 4 tasks, MLP 2-64-64-2,
Adam, 20 epochs per task, one torch thread per run), seeds 0..runs-1, run with the
process executor and 1 worker, then 2 workers, then the inline executor (every run
in this process), each into a fresh folder, ``--repeats`` times in rotating order.

- A run's own time is what ``run_point`` measures around it in the worker
  (``run_spec``: building, training, evaluating, writing the run directory).
- Overhead per run = (sweep wall time - sum of the runs' own times) / runs, with 1 worker:
  starting the worker process (a fresh interpreter importing torch and the
  plugins), sending jobs and results, checking the folder. The inline executor's
  overhead shows what is left without processes.
- Ratio = wall time with 1 worker / wall time with 2 workers (2 is ideal on 2 free cores).

    python benchmarks/sweep_overhead.py                 # 8 runs, 3 repeats
    python benchmarks/sweep_overhead.py --runs 8 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

SWEEP = """\
benchmark: {name: toy_2d_classification, params: {num_tasks: 4}}
backbone: {name: mlp, params: {hidden_sizes: [64, 64]}}
algorithm: finetune
optimizer: {name: adam, lr: 0.01}
trainer: {epochs_per_task: 20, batch_size: 32, device: cpu, num_threads: 1}
sweep:
  seed: %s
"""


def one_sweep(path: Path, out: Path, executor: str, workers: int) -> tuple[float, float]:
    """(wall seconds of the whole sweep, sum of the runs' own seconds)."""
    from clgym_core.sweeps.plan import read_sweep_file
    from clgym_core.sweeps.run import run_sweep

    own: list[float] = []
    plan = read_sweep_file(path)
    started = time.perf_counter()
    frame = run_sweep(plan, out, workers=workers, executor=executor,
                      on_result=lambda point, result: own.append(float(result["seconds"])))
    wall = time.perf_counter() - started
    assert (frame["status"] == "done").all(), frame[["name", "status", "reason"]]
    return wall, sum(own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = [("process", 1), ("process", 2), ("inline", 1)]
    walls: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    overheads: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "sweep.yaml"
        path.write_text(SWEEP % list(range(args.runs)))
        one_sweep(path, root / "warm", "inline", 1)  # first-use costs (imports, font cache) out of the timings
        for repeat in range(args.repeats):
            for shift in range(len(configs)):
                executor, workers = configs[(repeat + shift) % len(configs)]
                wall, own = one_sweep(path, root / f"{executor}-{workers}-{repeat}", executor, workers)
                walls[(executor, workers)].append(wall)
                overheads[(executor, workers)].append((wall - own) / args.runs)
    print(f"sweep of {args.runs} toy runs, median of {args.repeats}, {os.cpu_count()} CPU cores")
    print(f"{'executor':<10} {'workers':>7} {'wall s':>8} {'overhead/run s':>15}")
    for config in configs:
        wall = statistics.median(walls[config])
        over = statistics.median(overheads[config])
        shown = f"{over:15.3f}" if config[1] == 1 else f"{'-':>15}"
        print(f"{config[0]:<10} {config[1]:>7} {wall:8.2f} {shown}")
    ratio = statistics.median(walls[("process", 1)]) / statistics.median(walls[("process", 2)])
    print(f"1-worker / 2-worker wall time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
