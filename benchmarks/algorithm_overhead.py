"""Per-task training time of each continual-learning algorithm, relative to finetune on the same data.

Setup: 5-task Rotated MNIST (10 degrees per task), ``--examples`` training images per
task, MLP 784-256-256-10, SGD (lr 0.01, momentum 0.8), batch ``--batch-size``, one epoch,
CPU with one thread. One benchmark object serves every run, and every task's data (and
episodic memory) is built before timing starts, so data preparation is not counted.
A task's time runs from ``on_task_start`` to ``on_validation_start``: the optimizer set-up,
every training step and the algorithm's end-of-task work (EWC's Fisher, OGD's basis,
MC-SGD's line search, MAS's importance, iCaRL's herding and class means, GDumb's training
from scratch on its memory...), not the evaluation. Memory-based methods get 100 examples
per task (500 slots for DER, DER++, ER-ACE, iCaRL, GDumb). Algorithms run in rotating order,
``--repeats`` times each; the table gives the median over repeats of the mean time per
task, and its ratio to finetune's.

    python benchmarks/algorithm_overhead.py                  # all installed algorithms
    python benchmarks/algorithm_overhead.py --repeats 5 --algorithms finetune ewc agem

Joint training's data grows with the task index (task t trains on t tasks), so its ratio
measures that growth, not per-step overhead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

import torch  # noqa: E402

from clgym_core.callback import Callback  # noqa: E402
from clgym_core.registry import get_registry  # noqa: E402
from clgym_core.trainer import ContinualTrainer  # noqa: E402

# Parameters each algorithm needs beyond its defaults (sizes kept to the scale of the papers' MNIST runs).
ALGORITHM_PARAMS = {
    "agem": {"reference_batch_size": 256},
    "stable_sgd": {"dropout": 0.5, "lr_decay": 0.8},
    "ewc": {"lambda": 10},
    "der": {"alpha": 0.3},
    "derpp": {"alpha": 0.1, "beta": 0.5},
    "lwf": {"alpha": 1.0, "temperature": 2.0},
    "mas": {"lambda": 1.0},
    "gem": {"margin": 0.5},
    "gdumb": {"epochs": 30, "batch_size": 16},
}


class TaskTimer(Callback):
    """Training time of each task: from ``on_task_start`` to the start of its evaluation."""

    name = "task_timer"

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_task_start(self, trainer: ContinualTrainer, task: int) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: ContinualTrainer, after_task: int) -> None:
        if self._start is not None:  # row 0 (the untrained model) has no task before it
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None


def run_once(name: str, benchmark, args: argparse.Namespace, seed: int) -> float:
    """Mean training seconds per task of one run of ``name``."""
    registry = get_registry()
    torch.manual_seed(seed)
    backbone_cls = registry.get("backbone", "mlp2layers")
    backbone = backbone_cls(backbone_cls.defaults_from(benchmark))
    algorithm = registry.get("algorithm", name)(
        backbone, benchmark, ALGORITHM_PARAMS.get(name, {}), optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.8}
    )
    timer = TaskTimer()
    trainer = ContinualTrainer(algorithm, callbacks=[timer], epochs_per_task=1, batch_size=args.batch_size,
                               eval_batch_size=10000, device="cpu", seed=seed, checkpoint=False)
    trainer.fit()
    return statistics.mean(timer.seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=2000, help="Training images per task.")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--algorithms", nargs="+", help="Default: every installed algorithm.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    registry = get_registry()
    names = list(args.algorithms or sorted(registry.names("algorithm")))
    if "finetune" not in names:
        names = ["finetune", *names]
    benchmark = registry.get("benchmark", "rotated_mnist")({
        "num_tasks": 5, "per_task_rotation_degrees": 10, "per_task_examples": args.examples,
        "per_task_memory_examples": 100, "per_task_subset_examples": 200, "seed": 0,
    })
    for task in range(1, 6):  # build every task (and memory) once, outside the timings
        benchmark.load_train(task), benchmark.load_test(task), benchmark.load_memory(task), benchmark.load_subset(task)

    run_once("finetune", benchmark, args, seed=0)  # warm-up: first-call costs of torch and the allocator
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            times[name].append(run_once(name, benchmark, args, seed=rep))
            print(f"repeat {rep + 1}/{args.repeats} {name}: {times[name][-1]:.3f} s/task", file=sys.stderr, flush=True)

    base = statistics.median(times["finetune"])
    print(f"\n5-task Rotated MNIST, {args.examples} images/task, batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread, median of {args.repeats}\n")
    print("| algorithm | s per task (median) | relative to finetune |")
    print("|---|---:|---:|")
    for name in names:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.3f} | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
