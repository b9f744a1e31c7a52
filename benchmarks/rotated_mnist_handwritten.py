"""The baseline of the speed benchmark: 5-task Rotated MNIST as a minimal hand-written PyTorch loop.

The work of ``examples/rotated_mnist_finetune.yaml``, written the way one would
by hand with nothing but PyTorch: read the IDX files, rotate each task's images
once (bilinear, about the centre), standardise, then for each task train one
epoch of an MLP 784-256-256-10 (SGD, lr 0.01, momentum 0.8, batch 64) and
evaluate on every task seen so far (``--eval all``: on every task, and the
untrained model first, which is the accuracy matrix clgym computes). No
framework, no torchvision, no logging.

    python benchmarks/rotated_mnist_handwritten.py --data ../shared/data --device cpu [--eval all]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_TASKS, DEGREES, BATCH, EVAL_BATCH, LR, MOMENTUM = 5, 10.0, 64, 1024, 0.01, 0.8
MEAN, STD = 0.1307, 0.3081


def read_idx(path: Path) -> torch.Tensor:
    data = bytearray(path.read_bytes())
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(data, dtype=torch.uint8, offset=4 + 4 * ndim).view(*dims)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Counter-clockwise rotation of uint8 images [N, 1, H, W] about their centres, bilinear, zero fill."""
    if degrees == 0:
        return images
    r = math.radians(-degrees)  # affine_grid maps output to input pixels: the inverse rotation
    theta = torch.tensor([[math.cos(r), math.sin(r), 0.0], [-math.sin(r), math.cos(r), 0.0]])
    grid = F.affine_grid(theta[None], [1, *images.shape[1:]], align_corners=False)
    out = F.grid_sample(images.float(), grid.expand(images.shape[0], -1, -1, -1), align_corners=False)
    return out.round_().to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder holding MNIST/raw/*-ubyte.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", choices=["seen", "all"], default="seen", help="Tasks evaluated after each task.")
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    raw = args.data / "MNIST" / "raw"
    train_x = read_idx(raw / "train-images-idx3-ubyte").unsqueeze(1)
    train_y = read_idx(raw / "train-labels-idx1-ubyte").long().to(device)
    test_x = read_idx(raw / "t10k-images-idx3-ubyte").unsqueeze(1)
    test_y = read_idx(raw / "t10k-labels-idx1-ubyte").long().to(device)

    def prepare(images: torch.Tensor, task: int) -> torch.Tensor:
        rotated = rotate(images, (task - 1) * DEGREES)
        return rotated.to(device).float().div_(255.0).sub_(MEAN).div_(STD).flatten(1)  # one float copy

    tasks = [(prepare(train_x, t), prepare(test_x, t)) for t in range(1, NUM_TASKS + 1)]

    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).to(device)

    def evaluate(upto: int) -> list[float]:
        model.eval()
        row = []
        with torch.inference_mode():
            for _, test in tasks[:upto]:
                correct = sum(
                    int((model(test[i:i + EVAL_BATCH]).argmax(1) == test_y[i:i + EVAL_BATCH]).sum())
                    for i in range(0, test.shape[0], EVAL_BATCH)
                )
                row.append(100.0 * correct / test.shape[0])
        return row

    accuracy = [evaluate(NUM_TASKS)] if args.eval == "all" else []
    for task, (x, _) in enumerate(tasks, start=1):
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        model.train()
        order = torch.randperm(x.shape[0]).to(device)
        for i in range(0, x.shape[0], BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(model(x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        row = evaluate(NUM_TASKS if args.eval == "all" else task)
        accuracy.append(row)
        print(f"after task {task}: " + " ".join(f"{a:.2f}" for a in row), flush=True)
    print(f"average accuracy {sum(accuracy[-1]) / NUM_TASKS:.2f}; {time.perf_counter() - start:.2f} s in main")


if __name__ == "__main__":
    main()
