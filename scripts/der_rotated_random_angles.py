"""Rotated MNIST rows of the DER table on the authors' kind of stream: random task angles, nearest-neighbour.

aimagelab/mammoth's ``rot-mnist`` rotates each of the 20 tasks by its own angle drawn uniformly from
[0, 180) (PIL's default nearest-neighbour resampling); our ``der_table/rotated_mnist`` specs turn the
stream steadily by (t-1) x 9 degrees, bilinear. This runs those specs with, for seed s, the 20 angles
``numpy.random.default_rng(s).uniform(0, 180, 20)`` (two decimals) and ``interpolation: nearest``,
each as its own ``clgym run`` (one thread), two at a time; finished runs are skipped.

    CLGYM_DATA=/work/shared/data python scripts/der_rotated_random_angles.py finetune er_200 --seeds 0 1 2 \\
        --out runs/der_rot_random
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "reproduce" / "der_table" / "rotated_mnist"


def task_angles(seed: int, num_tasks: int = 20) -> list[float]:
    """The seed's task angles, in degrees, rounded to two decimals."""
    return [round(float(a), 2) for a in np.random.default_rng(seed).uniform(0, 180, num_tasks)]


def command(stem: str, seed: int, out: Path) -> list[str]:
    angles = "[" + ",".join(f"{a:.2f}" for a in task_angles(seed)) + "]"
    return [sys.executable, "-m", "clgym_core", "run", str(SPECS / f"{stem}.yaml"), "--out", str(out / stem / f"seed{seed}"), "--no-progress",
            "--set", f"seed={seed}", "--set", "benchmark.params.interpolation=nearest",
            "--set", f"benchmark.params.task_angles={angles}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", help="Spec stems of der_table/rotated_mnist (e.g. finetune er_200).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "der_rot_random")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    missing = [s for s in args.specs if not (SPECS / f"{s}.yaml").is_file()]
    if missing:
        parser.error(f"no spec {SPECS / missing[0]}.yaml")
    todo = [command(stem, seed, args.out) for seed in args.seeds for stem in args.specs
            if not (args.out / stem / f"seed{seed}" / "metrics.json").is_file()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def run(cmd: list[str]) -> int:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        print(f"{cmd[cmd.index('--out') + 1]}: rc={done.returncode} {done.stderr.strip()[-200:]}", flush=True)
        return done.returncode

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        failed = sum(rc != 0 for rc in pool.map(run, todo))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
