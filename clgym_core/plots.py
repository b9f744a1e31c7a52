"""Pictures of a run's results: accuracy (or loss) matrix heatmap, per-task curves, runs compared.

Pure functions of a matrix in the layout of :mod:`clgym_core.metrics` (shape
``(T+1, T)``, row 0 the untrained model, row ``i`` after training task ``i``).
matplotlib is imported inside the functions, so ``import clgym_core`` stays
light, and only its object-oriented API with the Agg canvas is used: no pyplot,
no display, no change to the process-wide backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clgym_core.metrics import _matrix

Kind = Literal["accuracy", "loss"]

__all__ = ["plot_accuracy_matrix", "plot_average_accuracy", "plot_task_curves"]


def _checked(matrix: Any, kind: str, what: str | None = None) -> np.ndarray:
    if kind not in ("accuracy", "loss"):
        raise ValueError(f"kind must be 'accuracy' or 'loss', got {kind!r}")
    return _matrix(matrix, what or f"{kind} matrix")


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _value_label(kind: str) -> str:
    return "accuracy (%)" if kind == "accuracy" else "test loss"


def plot_accuracy_matrix(
    matrix: Any, path: str | Path, title: str | None = None, kind: Kind = "accuracy", dpi: int = 120
) -> Path:
    """Heatmap of the (T+1) x T matrix with each value written in its cell; returns the PNG's path.

    Rows are 'untrained', 'after task 1', ...; columns 'task 1', ... . Accuracy
    uses a 0-100 scale; a loss matrix (``kind="loss"``) uses a reversed scale so
    that good is the same colour in both. Raises ``ValueError`` for a matrix of
    the wrong shape or with non-finite values.
    """
    m = _checked(matrix, kind)
    import matplotlib as mpl

    t = m.shape[1]
    figure = _new_figure(min(2.4 + 0.75 * t, 18.0), min(1.6 + 0.45 * (t + 1), 14.0))
    ax = figure.add_subplot()
    if kind == "accuracy":
        cmap, norm = mpl.colormaps["viridis"], mpl.colors.Normalize(0.0, 100.0)
    else:
        low = min(0.0, float(m.min()))
        high = max(float(m.max()), low + 1e-12)  # a constant matrix still needs a non-empty range
        cmap, norm = mpl.colormaps["viridis_r"], mpl.colors.Normalize(low, high)
    image = ax.imshow(m, cmap=cmap, norm=norm, aspect="auto")
    figure.colorbar(image, ax=ax, label=_value_label(kind))
    ax.set_xticks(range(t), [f"task {j}" for j in range(1, t + 1)], rotation=45 if t > 8 else 0)
    ax.set_yticks(range(t + 1), ["untrained"] + [f"after task {i}" for i in range(1, t + 1)])
    ax.set_xlabel("evaluated on")
    if t <= 30:  # past that the numbers no longer fit in the cells
        size = max(5.0, 10.0 - t / 4)
        for (row, col), value in np.ndenumerate(m):
            r, g, b, _ = cmap(norm(value))
            # Dark text on light cells, light text on dark ones.
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            text = f"{value:.1f}" if kind == "accuracy" else f"{value:.3g}"
            ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=size)
    ax.set_title(title or ("Accuracy matrix" if kind == "accuracy" else "Loss matrix"))
    return _save(figure, path, dpi)


def _task_colours(n: int) -> list[Any]:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


def plot_task_curves(
    matrix: Any, path: str | Path, title: str | None = None, kind: Kind = "accuracy", dpi: int = 120
) -> Path:
    """Accuracy (or loss) of each task against the number of tasks trained, one line per task.

    The x axis runs from 0 (untrained) to T; each line's filled marker sits at
    the point where its task was trained, so the drop to its right is forgetting.
    Raises ``ValueError`` for a bad matrix.
    """
    m = _checked(matrix, kind)
    t = m.shape[1]
    figure = _new_figure(7.0 if t <= 10 else 9.0, 4.2)
    ax = figure.add_subplot()
    x = np.arange(t + 1)
    for j, colour in enumerate(_task_colours(t)):
        ax.plot(x, m[:, j], color=colour, marker="o", markersize=3, linewidth=1.5, label=f"task {j + 1}")
        ax.plot([j + 1], [m[j + 1, j]], color=colour, marker="o", markersize=8)
    ax.set_xticks(x, ["untrained"] + [str(i) for i in range(1, t + 1)])
    ax.set_xlabel("tasks trained")
    ax.set_ylabel(_value_label(kind))
    if kind == "accuracy":
        ax.set_ylim(-2.0, 102.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncols=1 if t <= 10 else 2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or ("Accuracy of each task" if kind == "accuracy" else "Loss of each task"))
    return _save(figure, path, dpi)


def seen_task_average(matrix: Any, kind: Kind = "accuracy") -> np.ndarray:
    """Mean over tasks 1..i of row i, for i = 1..T: the average on the tasks seen so far."""
    m = _checked(matrix, kind)
    return np.array([m[i, :i].mean() for i in range(1, m.shape[0])])


#: Line styles and markers cycled over the lines of one figure, so that lines that coincide
#: (two methods with the same numbers) stay told apart: a dashed line over a solid one shows both.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def line_style(index: int) -> dict[str, Any]:
    """Dash pattern, marker and marker size of line ``index``: no two of the first 8 lines look alike."""
    return {
        "linestyle": LINE_STYLES[index % len(LINE_STYLES)],
        "marker": MARKERS[index % len(MARKERS)],
        "markersize": 7.0 - 1.5 * (index % 3),  # a larger marker behind a smaller one stays visible
    }


def plot_average_accuracy(
    runs: Mapping[str, Any], path: str | Path, title: str | None = None, kind: Kind = "accuracy", dpi: int = 120,
    bands: Mapping[str, Any] | None = None,
) -> Path:
    """Average accuracy (or loss) on the tasks seen so far after each task, one line per run.

    ``runs`` maps a label (e.g. the algorithm's name) to its matrix; runs may have
    different numbers of tasks. ``bands`` maps some labels to the standard deviation
    of their curve (one value per task trained, e.g. over seeds), drawn as a shaded
    band of ± that much. Each line has its own colour, dash pattern and marker, so
    identical curves remain distinguishable. Raises ``ValueError`` when ``runs`` is
    empty, a matrix is bad (the message names its label) or a band's length is not
    its curve's.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs: expected a non-empty mapping of label -> matrix")
    curves = {str(label): seen_task_average(_checked(m, kind, f"runs[{label!r}]"), kind) for label, m in runs.items()}
    spreads = {}
    for label, band in (bands or {}).items():
        spread = np.asarray(band, dtype=float)
        if str(label) not in curves or spread.shape != curves[str(label)].shape:
            raise ValueError(f"bands[{label!r}]: expected one value per task of runs[{label!r}]")
        spreads[str(label)] = spread
    longest = max(len(c) for c in curves.values())
    figure = _new_figure(7.0, 4.2)
    ax = figure.add_subplot()
    for index, ((label, curve), colour) in enumerate(zip(curves.items(), _task_colours(len(curves)))):
        x = np.arange(1, len(curve) + 1)
        ax.plot(x, curve, color=colour, label=label, linewidth=1.6, **line_style(index))
        if label in spreads:
            ax.fill_between(x, curve - spreads[label], curve + spreads[label], color=colour, alpha=0.18,
                            linewidth=0)
    ax.set_xticks(np.arange(1, longest + 1))
    ax.set_xlabel("tasks trained")
    ax.set_ylabel(f"average {_value_label(kind)} on seen tasks")
    if kind == "accuracy":
        ax.set_ylim(-2.0, 102.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    title = title or ("Average accuracy on seen tasks" if kind == "accuracy" else "Average loss on seen tasks")
    if spreads:
        title += "\n(shaded: ± 1 std over the runs of a line)"
    ax.set_title(title)
    return _save(figure, path, dpi)
