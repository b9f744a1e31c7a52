"""The ``clgym`` console script: imports nothing heavy before it can handle Ctrl-C.

Pressing Ctrl-C while the CLI is still importing (torch takes seconds), or a second
time while it is already stopping, ends the process with exit code 130 and one line,
never a traceback.
"""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130


def main() -> None:
    try:
        from clgym_core.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        _leave_interrupted()


def _leave_interrupted() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while leaving changes nothing
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    finally:
        sys.exit(INTERRUPTED)
