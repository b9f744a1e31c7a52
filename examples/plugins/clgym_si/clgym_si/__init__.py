"""clgym-si: Synaptic Intelligence for clgym, registered through the ``clgym`` entry point."""

__version__ = "0.1.0"
