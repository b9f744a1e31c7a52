"""Task-IL accuracy the way the DER paper measures it: train the Class-IL run, then mask at test time.

Buzzega et al. 2020 (and aimagelab/mammoth's ``utils/training.py``, ``mask_classes``) report
Seq-MNIST Task-IL from the *Class-IL* run: one 10-way head trained class-incrementally, and at
test time the logits of the classes outside the test example's task set to -inf. Our
``seq_mnist_task_il`` specs instead train one 2-way head per task. This script runs the
``seq_mnist_class_il`` specs in-process (no run directory) and prints, per spec, the Class-IL
final average accuracy and the masked (paper-style) Task-IL one, mean and std over seeds, so the
two protocols can be told apart.

    python scripts/der_masked_task_il.py --algorithms finetune si --seeds 0 1 2 --out runs/der_masked.jsonl
    python scripts/der_masked_task_il.py --algorithms lwf --set algorithm.params.warmup_epochs=1 --out runs/m.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "reproduce" / "der_table" / "seq_mnist_class_il"


@torch.inference_mode()
def masked_accuracy(trainer) -> list[float]:
    """Final accuracy on each task's test set with the logits of other tasks' classes at -inf."""
    from clgym_core.data import iterate_batches

    trainer.backbone.eval()
    out = []
    for task in range(1, trainer.num_tasks + 1):
        data = trainer.benchmark.load_test(task)
        correct = total = 0
        classes = None
        for batch in iterate_batches(data, trainer.eval_batch_size, device=trainer.device):
            if classes is None:  # a task's classes: those of its test labels (all present in MNIST's test set)
                classes = torch.unique(torch.as_tensor(data.targets, device=trainer.device))
            scores = trainer.algorithm.predict(batch).float()
            keep = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
            keep[classes] = True
            scores = scores.masked_fill(~keep, float("-inf"))
            correct += int((scores.argmax(dim=1) == batch.targets).sum())
            total += int(batch.targets.shape[0])
        out.append(100.0 * correct / total)
    return out


def main() -> int:
    from clgym_core.runner import run_spec
    from clgym_core.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", nargs="+", help="Spec stems of seq_mnist_class_il (default: all).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per (spec, seed); done ones are skipped.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="Override applied to every spec, as `clgym run --set` (repeatable); rows of different "
                        "overrides are kept apart in --out.")
    args = parser.parse_args()

    torch.set_num_threads(1)
    stems = args.algorithms or sorted(p.stem for p in SPECS.glob("*.yaml"))
    done = {}
    if args.out.is_file():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done[(row["spec"], row["seed"], tuple(row.get("overrides", [])))] = row
    sets = tuple(args.overrides)
    for seed in args.seeds:
        for stem in stems:
            if (stem, seed, sets) in done:
                continue
            start = time.perf_counter()
            spec = load_spec(SPECS / f"{stem}.yaml", [*sets, f"seed={seed}"])
            result = run_spec(spec, progress=False, write=False)
            masked = masked_accuracy(result.trainer)
            row = {"spec": stem, "seed": seed, "overrides": list(sets), "class_il": result.accuracy_matrix[-1],
                   "task_il_masked": masked, "seconds": time.perf_counter() - start}
            done[(stem, seed, sets)] = row
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{stem} seed {seed}: class-IL {statistics.mean(row['class_il']):.2f}, "
                  f"masked task-IL {statistics.mean(masked):.2f} ({row['seconds']:.0f} s)", flush=True)

    print("\n| spec | Class-IL A_T (%) | Task-IL A_T by masking the Class-IL model (%) | seeds |\n|---|---|---|---|")
    for stem in stems:
        rows = [done[(stem, s, sets)] for s in args.seeds if (stem, s, sets) in done]
        cil = [statistics.mean(r["class_il"]) for r in rows]
        til = [statistics.mean(r["task_il_masked"]) for r in rows]
        print(f"| {stem} | {_fmt(cil)} | {_fmt(til)} | {len(rows)} |")
    return 0


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


if __name__ == "__main__":
    sys.exit(main())
