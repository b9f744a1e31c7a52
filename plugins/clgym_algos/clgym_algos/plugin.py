"""Entry point of clgym-algos: the algorithm classes it registers."""

from __future__ import annotations

from clgym_core.hookspecs import hookimpl


@hookimpl
def clgym_register_algorithms() -> list[type]:
    from clgym_algos.finetune import Finetune
    from clgym_algos.joint import Joint

    return [Finetune, Joint]
