"""Checkpoints: what a run needs to continue after a crash, written atomically after every task.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python values
(dicts, lists, tuples, strings, numbers, booleans, ``None``), so it loads with
``torch.load(weights_only=True)``: reading a run directory never executes code
from it. It holds:

- the backbone's weights and the algorithm's ``state_dict()`` (memories, Fisher
  information, bases, anchors: whatever the method accumulated across tasks);
- every callback's ``state_dict()`` (the metric collector's matrices, log offsets);
- the trainer's counters (finished tasks, global step, wall time so far);
- the RNG states of Python, numpy and torch (CPU and CUDA);
- the resolved spec as YAML.

The trainer builds a fresh optimizer for every task (the paper's Algorithm 1), so
no optimizer state outlives a task boundary; an algorithm that keeps an optimizer
across tasks must put its ``state_dict()`` in its own state.

Writes go to a temporary file that is flushed to disk and then renamed over
``checkpoint.pt``; the checkpoint it replaces is kept as ``checkpoint.prev.pt``.
A crash at any moment leaves a complete checkpoint behind.
"""

from __future__ import annotations

import os
import random
import shutil
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clgym_core.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
FORMAT = "clgym-checkpoint"
FORMAT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def check_plain(value: Any, where: str) -> None:
    """Raise :class:`CheckpointError` unless ``value`` holds only tensors and plain Python values.

    ``torch.load(weights_only=True)`` refuses anything else, so a bad value is caught
    when it is saved (naming the key), not when a crashed run is resumed.
    """
    # Exact types: subclasses (a str subclass such as torch's version string, a namedtuple,
    # a defaultdict) pickle as their class, which weights-only loading refuses.
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where}: key {key!r} is a {type(key).__name__}; use str or int keys")
            check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"{where} is a {type(value).__name__}; a checkpoint holds only tensors and plain values "
        "(dict, list, tuple, str, int, float, bool, None): convert it in state_dict()"
    )


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device`` (containers rebuilt, plain values kept)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)((k, to_device(v, device)) for k, v in value.items())
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    return value


# ---- RNG states -----------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where the devices exist)."""
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# ---- files ----------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not every filesystem syncs directories
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], run_dir: str | Path) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` atomically; the one it replaces becomes ``checkpoint.prev.pt``."""
    check_plain(state, "checkpoint")
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    tmp = run_dir / f".{CHECKPOINT_NAME}.tmp"
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            # Keep the current checkpoint as the previous one (a hard link costs no copy); the
            # rename below then swaps in the new one, so checkpoint.pt is complete at every moment.
            prev_tmp = run_dir / f".{PREVIOUS_NAME}.tmp"
            prev_tmp.unlink(missing_ok=True)
            try:
                os.link(path, prev_tmp)
            except OSError:
                shutil.copy2(path, prev_tmp)
            os.replace(prev_tmp, run_dir / PREVIOUS_NAME)
        os.replace(tmp, path)
        _fsync_dir(run_dir)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot write the checkpoint ({exc.strerror or exc}); "
                              f"the previous one is intact") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({reason})") from None
    except Exception as exc:  # the weights-only unpickler refuses foreign objects with assorted errors
        # Our own words, never torch's notice (which suggests weights_only=False, i.e. running the file's code).
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a {found.group(1)} object" if found else "objects other than tensors and plain values"
        raise CheckpointError(
            f"{path}: not loaded: it holds {what}, and loading that could run code; "
            "a clgym checkpoint holds only tensors and plain values"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a clgym checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {state.get('format_version')!r}; "
            f"this clgym reads version {FORMAT_VERSION}"
        )
    for key in ("completed_tasks", "backbone", "algorithm", "callbacks", "trainer"):
        if key not in state:
            raise CheckpointError(f"{path}: incomplete checkpoint (no {key!r})")
    return state


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint in ``run_dir`` and its path.

    Falls back to ``checkpoint.prev.pt`` when ``checkpoint.pt`` is damaged; raises
    :class:`CheckpointError` (one line, naming the file) when neither loads.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    previous = run_dir / PREVIOUS_NAME
    try:
        return _read(path), path
    except FileNotFoundError:
        raise CheckpointError(
            f"{run_dir}: no {CHECKPOINT_NAME} (the run stopped before its first checkpoint or ran with "
            f"trainer.checkpoint: false); start it again there: clgym run {run_dir / 'spec.yaml'} --out {run_dir}"
        ) from None
    except CheckpointError as error:
        if not previous.exists():
            raise
        try:
            return _read(previous), previous
        except (CheckpointError, FileNotFoundError):
            raise error from None
