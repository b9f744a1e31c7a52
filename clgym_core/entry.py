"""The ``clgym`` console script: imports nothing heavy before it can handle Ctrl-C.

Pressing Ctrl-C while the CLI is still importing (torch takes seconds), or a second
time while it is already stopping, ends the process with exit code 130 and one line,
never a traceback. Three traps on the way, each met in CI or on a 2-core machine:

- an extension's import may swallow the ``KeyboardInterrupt`` (torch 2.4's ``torch._C``
  catches errors of the imports it makes itself) or turn it into another error, and the
  command would then run as if nothing had been pressed, or fail: every press is counted
  (:mod:`clgym_core.interrupts`), and a press counted during the import stops the command;
- CPython marks a ``KeyboardInterrupt`` that leaves code run by ``exec`` of a string
  (dataclasses build their methods that way) as unhandled, even when we handle it later;
  under ``python -m clgym_core`` it then ends the process by SIGINT after
  ``sys.exit(130)``: exit status -2 instead of 130 (4 presses in 40 during the import,
  on torch 2.4). Each ``exec`` of a string starts by clearing that mark, so we run one;
- once the command is over Ctrl-C is ignored, so that a press during the interpreter's
  teardown (long after importing torch) cannot turn a finished command into a killed one.

:func:`main` is the console script's entry point, not a library call: it leaves SIGINT
ignored when it returns.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from clgym_core import interrupts

INTERRUPTED = 130


def main() -> None:
    before = interrupts.presses()
    try:
        signal.signal(signal.SIGINT, interrupts.note_press)
        try:
            cli_main = _import_cli()
        except Exception:
            if interrupts.presses() == before:
                raise
        if interrupts.presses() != before:  # swallowed by an import on the way, or turned into another error
            raise KeyboardInterrupt
        cli_main()
    except KeyboardInterrupt:
        _leave_interrupted()
    finally:
        interrupts.ignore_sigint()
        exec("pass")  # clears CPython's stale "unhandled KeyboardInterrupt" mark (see above)


def _import_cli() -> Callable[[], Any]:
    from clgym_core.cli import main as cli_main

    return cli_main


def _leave_interrupted() -> None:
    interrupts.ignore_sigint()  # a second Ctrl-C while leaving changes nothing
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    finally:
        sys.exit(INTERRUPTED)
