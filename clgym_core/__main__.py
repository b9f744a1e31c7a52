"""``python -m clgym_core`` is the ``clgym`` command."""

from clgym_core.entry import main

main()
