"""Speed benchmark: `clgym run` against a minimal hand-written PyTorch loop doing the same work.

The experiment is 5-task Rotated MNIST (10 degrees per task), naive fine-tuning
of an MLP 784-256-256-10 with SGD (lr 0.01, momentum 0.8), batch 64, one epoch
per task, evaluation after each task (``examples/rotated_mnist_finetune.yaml``).
Every side runs as a fresh process and is timed whole, start-up and data
preparation included, in rotating order, ``--repeats`` times each; the medians and
their ratio are printed with each side's peak resident memory. Then the
20-task version runs once through clgym to report its peak memory (target:
under 2 GB).

    python benchmarks/rotated_mnist_speed.py            # `make bench`
    python benchmarks/rotated_mnist_speed.py --repeats 5 --threads 0 --device cpu

clgym always computes the full accuracy matrix: the untrained model and every
task after each task (30 evaluations of 10,000 images), where the issue's
experiment evaluates the tasks seen so far (15). So the hand-written loop runs
twice per repeat: ``hand-seen`` (the issue's experiment) and ``hand-all`` (the
same evaluations as clgym), and both ratios are printed. The clgym run also
writes its run directory (spec, matrices, metrics, event logs, plots, a
checkpoint after every task).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "rotated_mnist_finetune.yaml"
HANDWRITTEN = REPO / "benchmarks" / "rotated_mnist_handwritten.py"
TARGET_RATIO = 1.15
TARGET_MEMORY_MB = 2048


def timed(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, str]:
    """Run ``command``; return (wall seconds, peak RSS in MiB, its stdout). Raises when it fails."""
    with open(log, "w") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO, text=True)
        out = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}; see {log}\n{log.read_text()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024.0, out  # ru_maxrss is in KiB on Linux


def clgym_command(run_dir: Path, device: str, *overrides: str) -> list[str]:
    exe = Path(sys.executable).parent / "clgym"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "clgym_core"]
    sets = [arg for o in (f"trainer.device={device}", *overrides) for arg in ("--set", o)]
    return [*base, "run", str(SPEC), "--out", str(run_dir), "--no-progress", *sets]


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each side (in rotating order).")
    parser.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cpu or cuda.")
    parser.add_argument("--data", type=Path, default=None,
                        help="Data root (default: $CLGYM_DATA, else ../shared/data).")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="OMP_NUM_THREADS for every side (default 1: stable timings on shared machines; 0 leaves it unset).",
    )
    parser.add_argument("--memory-tasks", type=int, default=20, help="Tasks of the peak-memory run (0: skip it).")
    args = parser.parse_args()

    data = args.data or Path(os.environ.get("CLGYM_DATA") or REPO.parent / "shared" / "data")
    if not (data / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        sys.exit(f"MNIST not found under {data}/MNIST/raw; pass --data or set CLGYM_DATA")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    env = dict(os.environ, CLGYM_DATA=str(data), PYTHONUNBUFFERED="1")
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"device {device}, {os.cpu_count()} CPU cores, threads {args.threads or 'default'}, data {data}")

    sides = {
        "hand-seen": [sys.executable, str(HANDWRITTEN), "--data", str(data), "--device", device, "--eval", "seen"],
        "hand-all": [sys.executable, str(HANDWRITTEN), "--data", str(data), "--device", device, "--eval", "all"],
        "clgym": [],
    }
    times: dict[str, list[float]] = {side: [] for side in sides}
    peaks: dict[str, list[float]] = {side: [] for side in sides}
    accuracy: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="clgym-bench-") as tmp:
        tmp_path = Path(tmp)
        names = list(sides)
        for i in range(args.repeats):
            run_dir = tmp_path / f"run-{i}"
            for side in names[i % 3:] + names[:i % 3]:  # rotate the order: drift in machine load hits all sides
                command = sides[side] or clgym_command(run_dir, device)
                seconds, rss, out = timed(command, env, tmp_path / f"{side}-{i}.log")
                times[side].append(seconds)
                peaks[side].append(rss)
                if side == "clgym":
                    accuracy[side] = json.loads((run_dir / "metrics.json").read_text())["average_accuracy"]
                else:
                    found = re.search(r"average accuracy ([0-9.]+)", out)
                    accuracy[side] = float(found.group(1)) if found else None
                print(f"  run {i + 1} {side:9s} {seconds:6.2f} s  peak RSS {rss:6.0f} MiB", flush=True)

        labels = {
            "hand-seen": "hand-written, seen tasks evaluated",
            "hand-all": "hand-written, full accuracy matrix",
            "clgym": "clgym run (full accuracy matrix)",
        }
        for side in sides:
            print(f"{labels[side]:37s} {summary(times[side])}, peak RSS {max(peaks[side]):5.0f} MiB, "
                  f"final average accuracy {accuracy[side]:.2f}")
        clgym_median = statistics.median(times["clgym"])
        for side, what in (("hand-seen", "the issue's experiment"), ("hand-all", "the same work")):
            ratio = clgym_median / statistics.median(times[side])
            verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
            print(f"ratio clgym / {side} (medians, {what}): {ratio:.3f}  ({verdict} the {TARGET_RATIO}x target)")

        if args.memory_tasks:
            run_dir = tmp_path / "memory"
            command = clgym_command(run_dir, device, f"benchmark.params.num_tasks={args.memory_tasks}")
            seconds, rss, _ = timed(command, env, tmp_path / "memory.log")
            verdict = "meets" if rss < TARGET_MEMORY_MB else "MISSES"
            print(f"{args.memory_tasks}-task Rotated MNIST through clgym: {seconds:.1f} s, peak RSS {rss:.0f} MiB "
                  f"({verdict} the {TARGET_MEMORY_MB} MiB target)")


if __name__ == "__main__":
    main()
