"""``python -m clgym_core`` is the ``clgym`` command."""

from clgym_core.cli import main

main()
