"""Entry point of clgym-algos: the algorithm classes it registers, and the leaderboard's tuned specs."""

from __future__ import annotations

from pathlib import Path

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_algorithms() -> list[type]:
    from clgym_algos.agem import AGEM
    from clgym_algos.der import DER, DERPP
    from clgym_algos.er import ERReservoir, ERRing
    from clgym_algos.er_ace import ERACE
    from clgym_algos.ewc import EWC
    from clgym_algos.finetune import Finetune
    from clgym_algos.gdumb import GDumb
    from clgym_algos.gem import GEM
    from clgym_algos.icarl import ICaRL
    from clgym_algos.joint import Joint
    from clgym_algos.lwf import LwF
    from clgym_algos.mas import MAS
    from clgym_algos.mcsgd import MCSGD
    from clgym_algos.ogd import OGD
    from clgym_algos.stable_sgd import StableSGD

    return [
        Finetune, Joint, EWC, AGEM, ERRing, ERReservoir, OGD, StableSGD, MCSGD,
        DER, DERPP, ERACE, LwF, MAS, GEM, ICaRL, GDumb,
    ]


@hookimpl
def clgym_register_presets() -> dict[str, Path]:
    """The clgym leaderboard's chosen specs (package data written by `clgym leaderboard collect`)."""
    from clgym_core.presets import presets_in

    return presets_in(Path(__file__).resolve().parent / "presets")
