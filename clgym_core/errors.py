"""Every error meant for users: one line saying what is wrong, where, and what to do.

The CLI prints ``str(error)`` of any :class:`ClgymError` on one line and exits with
code 2 (in one place, ``clgym_core.cli.ClgymGroup``); anything else that escapes is a
bug and keeps its traceback.
"""

from __future__ import annotations


class ClgymError(Exception):
    """An error a user can fix (bad spec, missing file, unknown name)."""


class SpecError(ClgymError):
    """A run spec, override or parameter set is invalid."""


class RegistryError(ClgymError):
    """A component name is unknown, duplicated, or its plugin is broken."""


class DataError(ClgymError):
    """Dataset files are missing, corrupt, or a loader was asked for data it was not built with."""


class RunDirError(ClgymError):
    """A run directory cannot be created, claimed, written or resumed."""


class CheckpointError(ClgymError):
    """A checkpoint is missing, corrupt, foreign, or holds values it cannot store safely."""


class NonFiniteLossError(ClgymError):
    """The training loss became NaN or infinite."""


class ResultsError(ClgymError):
    """Run directories are missing, empty or hold files that cannot be read."""


class ScaffoldError(ClgymError):
    """A plugin package cannot be generated as asked."""
