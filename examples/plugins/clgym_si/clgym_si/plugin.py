"""Entry point of clgym-si: the algorithm it registers."""

from __future__ import annotations

from clgym_core import hookimpl


@hookimpl
def clgym_register_algorithms() -> list[type]:
    from clgym_si.synaptic_intelligence import SynapticIntelligence

    return [SynapticIntelligence]
