"""Ctrl-C bookkeeping shared by the console script and the registry.

Every SIGINT that :func:`note_press` handles is counted before it raises
``KeyboardInterrupt``. Code that runs foreign code (a plugin's import, a library's
lazy import) compares :func:`presses` before and after: a press the foreign code
swallowed, or turned into another error, is still the user's.
"""

from __future__ import annotations

import signal
from typing import Any

_count = 0


def presses() -> int:
    """How many SIGINTs :func:`note_press` has handled in this process."""
    return _count


def note_press(signum: int, frame: Any) -> None:
    """SIGINT handler: count the press, then interrupt as Python's default handler does."""
    global _count
    _count += 1
    raise KeyboardInterrupt


def set_sigint(handler: Any) -> None:
    """Install ``handler`` for SIGINT, even when a press is pending at this very moment.

    ``signal.signal`` first runs the handler of a pending signal, so installing can
    itself raise ``KeyboardInterrupt`` (counted, when that handler is :func:`note_press`);
    the next try succeeds.
    """
    while True:
        try:
            signal.signal(signal.SIGINT, handler)
            return
        except KeyboardInterrupt:
            continue


def ignore_sigint() -> None:
    """Ignore SIGINT from now on (see :func:`set_sigint`)."""
    set_sigint(signal.SIG_IGN)
