"""A callback that draws the model's decision regions over 2D inputs after each task."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from clgym_core.callback import Callback
from clgym_core.component import Params
from clgym_core.data import Batch, iterate_batches
from clgym_core.errors import SpecError

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


class DecisionBoundaryParams(Params):
    directory: str | None = Field(
        None, description="Folder for the pictures when the run has no run directory (clgym run sets one)."
    )
    resolution: int = Field(200, ge=10, le=2000, description="Grid points per axis at which the model is evaluated.")
    margin: float = Field(0.5, ge=0, description="Space around the training points, in input units.")
    max_points_per_task: int = Field(1000, ge=1, description="Training points drawn per task (a fixed subset when more).")
    dpi: int = Field(110, ge=30, le=600, description="Resolution of the saved PNG.")


class DecisionBoundary(Callback):
    """Saves a picture of the decision regions and training points after each task (2D inputs).

    ``decision_boundary_task{t}.png`` shows the model right after task ``t`` over a grid covering the
    training points of all tasks (tasks not trained yet included, drawn faded),
    so forgetting is visible as earlier tasks' points ending up in the wrong
    region. For two classes the background is the predicted probability of
    class 1 with the 0.5 contour; for more, the predicted class. Multi-head
    backbones are drawn with the head of the task just trained. The file goes to
    ``trainer.run_dir`` when the trainer has one, else to ``directory``; with
    neither, nothing is drawn (and a warning says so).
    """

    name = "decision_boundary"
    Params: ClassVar[type[Params]] = DecisionBoundaryParams

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.directory: Path | None = None
        self.paths: list[Path] = []
        self._points: list[tuple[torch.Tensor, torch.Tensor]] = []

    def setup(self, trainer: ContinualTrainer) -> None:
        benchmark = trainer.benchmark
        shape = tuple(benchmark.input_shape)
        if shape != (2,):
            raise SpecError(
                f"callback {self.name}: needs a benchmark with 2-D inputs; {benchmark.name} has input shape {shape}"
            )
        if benchmark.problem != "classification":
            raise SpecError(f"callback {self.name}: needs a classification benchmark; {benchmark.name} is not one")
        run_dir = getattr(trainer, "run_dir", None)
        folder = run_dir if run_dir is not None else self.params.directory
        if folder is None:
            # Python API without a run directory: draw nothing rather than fail the run.
            warnings.warn(
                f"callback {self.name}: no folder for the pictures, none will be saved; set its params.directory",
                stacklevel=2,
            )
            self.directory = None
            return
        self.directory = Path(folder)
        self._points = [self._training_points(trainer, task) for task in range(1, trainer.num_tasks + 1)]

    def _training_points(self, trainer: ContinualTrainer, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = trainer.benchmark.load_train(task)
        inputs, targets = [], []
        for batch in iterate_batches(data, 4096):
            inputs.append(batch.inputs.detach().float().cpu().reshape(-1, 2))
            targets.append(batch.targets.detach().cpu())
        x, y = torch.cat(inputs), torch.cat(targets)
        k = self.params.max_points_per_task
        if len(x) > k:  # a fixed subset, the same in every picture of the run
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(task))[:k]
            x, y = x[keep], y[keep]
        return x, y

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        if self.directory is not None:
            self.paths.append(self.draw(trainer, task))

    @torch.inference_mode()
    def _predict(self, trainer: ContinualTrainer, grid: torch.Tensor, task: int) -> torch.Tensor:
        backbone = trainer.backbone
        was_training = backbone.training
        backbone.eval()
        try:
            chunks = []
            for start in range(0, len(grid), 65536):
                inputs = grid[start : start + 65536].to(trainer.device)
                n = inputs.shape[0]
                batch = Batch(
                    inputs,
                    torch.zeros(n, dtype=torch.long, device=trainer.device),
                    torch.full((n,), task, dtype=torch.long, device=trainer.device),
                )
                chunks.append(torch.softmax(trainer.algorithm.forward(batch).float(), dim=1).cpu())
            return torch.cat(chunks)
        finally:
            backbone.train(was_training)

    def draw(self, trainer: ContinualTrainer, task: int) -> Path:
        """Save the picture of the model as it is now, labelled as after ``task``; returns its path."""
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        if self.directory is None or not self._points:
            raise RuntimeError("decision_boundary: draw() needs setup() with a folder to write to")
        p = self.params
        every = torch.cat([x for x, _ in self._points])
        low = every.min(dim=0).values - p.margin
        high = every.max(dim=0).values + p.margin
        xs = torch.linspace(float(low[0]), float(high[0]), p.resolution)
        ys = torch.linspace(float(low[1]), float(high[1]), p.resolution)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        probs = self._predict(trainer, torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), task)
        classes = probs.shape[1]

        figure = Figure(figsize=(6.4, 5.2), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        if classes == 2:
            cmap = mpl.colormaps["RdBu_r"]
            surface = probs[:, 1].reshape(gx.shape).numpy()
            filled = ax.contourf(gx.numpy(), gy.numpy(), surface, levels=[i / 10 for i in range(11)],
                                 cmap=cmap, alpha=0.55)
            ax.contour(gx.numpy(), gy.numpy(), surface, levels=[0.5], colors="black", linewidths=1.2)
            figure.colorbar(filled, ax=ax, label="predicted P(class 1)")
            colour_of = [cmap(0.05), cmap(0.95)]
        else:
            cmap = mpl.colormaps["tab10" if classes <= 10 else "tab20"]
            predicted = probs.argmax(dim=1).reshape(gx.shape).numpy()
            ax.contourf(gx.numpy(), gy.numpy(), predicted, levels=[c - 0.5 for c in range(classes + 1)],
                        cmap=mpl.colors.ListedColormap([cmap(c % cmap.N) for c in range(classes)]), alpha=0.35)
            colour_of = [cmap(c % cmap.N) for c in range(classes)]

        palette = np.asarray(colour_of)
        for index, (x, y) in enumerate(self._points):
            seen = index + 1 <= task
            colours = palette[y.numpy() % len(palette)]
            ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=colours, marker=MARKERS[index % len(MARKERS)], s=14,
                       edgecolors="black" if seen else "none", linewidths=0.3, alpha=0.9 if seen else 0.25)
        handles = [
            Line2D([], [], linestyle="", marker=MARKERS[i % len(MARKERS)], color="grey",
                   label=f"task {i + 1}" + ("" if i + 1 <= task else " (not trained yet)"))
            for i in range(len(self._points))
        ]
        # Below the axes, so that it never hides points or the boundary; labels with "(not trained yet)"
        # are twice as long, so fewer of them fit across the figure.
        per_row = 4 if task >= len(handles) else 2
        figure.legend(handles=handles, fontsize="small", loc="outside lower center",
                      ncols=min(len(handles), per_row))
        ax.set_xlim(float(low[0]), float(high[0]))
        ax.set_ylim(float(low[1]), float(high[1]))
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        title = f"{trainer.benchmark.name}, {trainer.algorithm.name}: after task {task}"
        rows = trainer.accuracy_matrix
        if len(rows) > task:
            accs = ", ".join(f"{a:.0f}" for a in rows[task])
            title += f"\ntest accuracy per task (%): {accs}"
        ax.set_title(title, fontsize="medium")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"decision_boundary_task{task}.png"
        # "tight": the saved picture grows to hold every artist, so the legend is never cut at the edge.
        figure.savefig(path, dpi=p.dpi, format="png", bbox_inches="tight", pad_inches=0.1)
        return path
