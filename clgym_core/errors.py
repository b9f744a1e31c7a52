"""Errors meant for users: one line saying what is wrong, where, and what to do."""

from __future__ import annotations


class ClgymError(Exception):
    """An error a user can fix (bad spec, missing file, unknown name).

    The CLI prints ``str(error)`` on one line and exits with code 2; anything
    else that escapes is a bug and keeps its traceback.
    """


class SpecError(ClgymError):
    """A run spec, override or parameter set is invalid."""


class RegistryError(ClgymError):
    """A component name is unknown, duplicated, or its plugin is broken."""


class DataError(ClgymError):
    """Dataset files are missing, corrupt, or a loader was asked for data it was not built with."""
