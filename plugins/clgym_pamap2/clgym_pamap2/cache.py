"""A disk cache of preprocessed windows, one file per subject, keyed by what produced them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from clgym_pamap2.preprocess import SubjectWindows

#: Bump when the preprocessing changes what it produces for the same inputs.
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/clgym``, else ``~/.cache/clgym``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "clgym"


def cache_key(preprocessing: dict[str, Any], files: list[tuple[str, int, int]]) -> str:
    """A hash of the preprocessing parameters and the source files' names, sizes and mtimes."""
    text = json.dumps({"format": FORMAT_VERSION, "preprocessing": preprocessing, "files": files}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load(path: Path) -> SubjectWindows | None:
    """The cached windows at ``path``, or None when absent or unreadable (then they are rebuilt)."""
    if not path.is_file():
        return None
    try:
        return SubjectWindows.from_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # a truncated or foreign file: rebuild rather than fail
        warnings.warn(f"pamap2: ignoring unreadable cache file {path} ({type(error).__name__}); rebuilding it")
        return None


def save(path: Path, data: SubjectWindows) -> None:
    """Write atomically (temporary file, then rename), so a crash never leaves a half-written cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(handle)
        torch.save(data.to_dict(), tmp)
        os.replace(tmp, path)
    except OSError as error:
        warnings.warn(f"pamap2: cannot write the window cache {path} ({error.strerror or error}); continuing without")
