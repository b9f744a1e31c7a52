"""Speed check: the single-device default path of this checkout against the trainer of another revision.

The Fabric work (clgym_core.distributed, clgym_core.profiling) must leave a run that sets
no Fabric field as fast as before (target: wall-time ratio at most 1.05). This runs the
5-task Rotated MNIST experiment of ``benchmarks/rotated_mnist_speed.py``
(``examples/rotated_mnist_finetune.yaml``: MLP 784-256-256-10, SGD, batch 64, one epoch per
task, the full accuracy matrix) as whole ``clgym run`` processes, alternately with this
checkout's ``clgym_core`` and with the baseline revision's (a temporary ``git worktree``
whose ``clgym_core`` a small bootstrap imports; each side imports its own revision's plugin
code), ``--repeats`` times each in rotating order, and prints the medians and their ratio (exit 1 above the
target). ``--fabric`` adds a third side: this checkout with ``trainer.strategy:
single_device`` (the Fabric path on one device, which imports Lightning; not the default).

    python benchmarks/default_path_speed.py                      # baseline: main, 5 repeats
    python benchmarks/default_path_speed.py --baseline fe4c2c2 --repeats 7 --threads 1

Run it on a quiet machine: other processes on the cores make the ratio meaningless.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "rotated_mnist_finetune.yaml"
TARGET_RATIO = 1.05


# Imports clgym_core from the folder given first on the command line, whatever is installed (the
# editable install of this checkout would win over PYTHONPATH), with that folder's plugin packages
# first on sys.path (their entry points stay the installed ones), then runs the clgym CLI.
BOOT = (
    "import importlib.util, sys, glob; root = sys.argv.pop(1); "
    "sys.path[:0] = sorted(glob.glob(root + '/plugins/clgym_*')); "
    "spec = importlib.util.spec_from_file_location('clgym_core', root + '/clgym_core/__init__.py', "
    "submodule_search_locations=[root + '/clgym_core']); module = importlib.util.module_from_spec(spec); "
    "sys.modules['clgym_core'] = module; spec.loader.exec_module(module); "
    "from clgym_core.entry import main; sys.argv[0] = 'clgym'; sys.exit(main())"
)


def timed_run(core_root: Path, run_dir: Path, threads: int, extra: list[str]) -> float:
    """Wall seconds of one ``clgym run`` process importing the clgym_core of ``core_root``."""
    command = [sys.executable, "-c", BOOT, str(core_root), "run", str(SPEC), "--out", str(run_dir), "--no-progress",
               "--set", "trainer.device=cpu", *extra]
    if threads:
        command += ["--set", f"trainer.num_threads={threads}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds


def check_imports(core_root: Path) -> None:
    """The bootstrap imports ``core_root``'s clgym_core (and its trainer), not the installed one."""
    probe = BOOT.split("from clgym_core.entry")[0] + "import clgym_core.trainer as t; print(t.__file__)"
    where = subprocess.run([sys.executable, "-c", probe, str(core_root)], capture_output=True, text=True,
                           check=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(core_root.resolve()):
        sys.exit(f"{core_root}: its clgym_core was not the one imported (got {where})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision whose trainer is the reference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="trainer.num_threads (0: torch's default)")
    parser.add_argument("--fabric", action="store_true",
                        help="also time trainer.strategy=single_device (the Fabric path on one device)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clgym-default-path-") as tmp:
        root = Path(tmp)
        baseline = root / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), args.baseline],
                       check=True, stdout=subprocess.DEVNULL)
        try:
            check_imports(baseline)
            check_imports(REPO)
            sides: dict[str, tuple[Path, list[str]]] = {"baseline": (baseline, []), "this": (REPO, [])}
            if args.fabric:
                sides["fabric_single_device"] = (REPO, ["--set", "trainer.device=auto",
                                                        "--set", "trainer.strategy=single_device",
                                                        "--set", "trainer.accelerator=cpu"])
            times: dict[str, list[float]] = {name: [] for name in sides}
            for repeat in range(args.repeats):
                names = list(sides)
                names = names[repeat % len(names):] + names[:repeat % len(names)]  # rotate the order
                for name in names:
                    core, extra = sides[name]
                    seconds = timed_run(core, root / f"{name}-{repeat}", args.threads, extra)
                    times[name].append(seconds)
                    print(f"repeat {repeat + 1}: {name} {seconds:.2f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)], check=False)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:.2f} s over {len(times[name])} runs")
    ratio = medians["this"] / medians["baseline"]
    print(f"ratio this/baseline: {ratio:.3f} (target <= {TARGET_RATIO})")
    if "fabric_single_device" in medians:
        print(f"ratio fabric single_device/baseline: {medians['fabric_single_device'] / medians['baseline']:.3f}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
