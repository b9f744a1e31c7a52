"""Entry point of clgym-algos: the algorithm classes it registers."""

from __future__ import annotations

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_algorithms() -> list[type]:
    from clgym_algos.agem import AGEM
    from clgym_algos.er import ERReservoir, ERRing
    from clgym_algos.ewc import EWC
    from clgym_algos.finetune import Finetune
    from clgym_algos.joint import Joint
    from clgym_algos.mcsgd import MCSGD
    from clgym_algos.ogd import OGD
    from clgym_algos.stable_sgd import StableSGD

    return [Finetune, Joint, EWC, AGEM, ERRing, ERReservoir, OGD, StableSGD, MCSGD]
