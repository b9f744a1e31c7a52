"""From a spec to a run's objects, in one pass: resolve once, then build what was resolved.

:func:`resolve` looks every component up in the registry, validates its params and
fills every default (the benchmark's seed from the run's, the backbone's sizes from
the benchmark, the callbacks a run always has), giving a :class:`ResolvedRun`: the
spec as it will run plus the classes and the benchmark it built on the way. :func:`build`
consumes that object to make the backbone, algorithm, callbacks and trainer; nothing is
looked up or validated twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from clgym_core.algorithm import Algorithm
from clgym_core.backbone import Backbone
from clgym_core.benchmark import Benchmark
from clgym_core.callback import Callback
from clgym_core.component import validate_params
from clgym_core.data import Batch
from clgym_core.distributed import Placement, check_distributable, fabric_class
from clgym_core.errors import ClgymError, RegistryError, SpecError
from clgym_core.loggers import DEFAULT_LOGGERS
from clgym_core.optim import build_optimizer
from clgym_core.progress import ProgressBar
from clgym_core.registry import Registry, get_registry
from clgym_core.spec import ComponentSpec, RunSpec, dump_spec, parse_spec
from clgym_core.task_window import windowed
from clgym_core.trainer import ContinualTrainer, RunContext, check_mixed_precision, resolve_device


@dataclass
class ResolvedRun:
    """A spec resolved against the registry: what :func:`build` consumes."""

    spec: RunSpec  # every default filled in, every callback that will run listed, versions recorded
    benchmark: Benchmark  # built while resolving: its description gives the backbone's defaults
    backbone_cls: type[Backbone]
    algorithm_cls: type[Algorithm]
    callback_classes: list[type[Callback]] = field(default_factory=list)
    source: str = "spec"

    @property
    def spec_yaml(self) -> str:
        return dump_spec(self.spec)


@dataclass
class Components:
    benchmark: Benchmark
    backbone: Backbone
    algorithm: Algorithm
    callbacks: list[Callback] = field(default_factory=list)


def with_run_callbacks(spec: RunSpec, writes_run_dir: bool, progress: bool | None = None) -> RunSpec:
    """``spec`` with the callbacks a run always gets listed, so its ``spec.yaml`` shows everything that ran.

    The progress display follows ``trainer.progress`` (``progress`` overrides it, as
    ``--no-progress`` does); a run that writes a directory gets the default file loggers.
    """
    show = spec.trainer.progress if progress is None else progress
    # `trainer.progress: false` only leaves the default out; the flag (--no-progress) removes it for this process.
    callbacks = [c for c in spec.callbacks if progress is not False or c.name != ProgressBar.name]
    names = {c.name for c in callbacks}
    if show and ProgressBar.name not in names:
        callbacks.insert(0, ComponentSpec(name=ProgressBar.name))
    if writes_run_dir:
        callbacks += [ComponentSpec(name=cls.name) for cls in DEFAULT_LOGGERS if cls.name not in names]
    show = show or any(c.name == ProgressBar.name for c in callbacks)
    trainer = spec.trainer.model_copy(update={"progress": show})
    return spec.model_copy(update={"callbacks": callbacks, "trainer": trainer})


def resolve(spec: RunSpec, registry: Registry | None = None, source: str = "spec") -> ResolvedRun:
    """Check every name and params of ``spec`` against the registry and fill in the defaults."""
    registry = registry or get_registry()

    def lookup(kind: str, component: ComponentSpec, where: str) -> tuple[str, type]:
        try:
            info = registry.info(kind, component.name)
        except RegistryError as exc:
            raise RegistryError(f"{source}: {where}.name: {exc}") from None
        return info.name, info.cls

    def checked(kind: str, component: ComponentSpec, where: str, defaults: dict[str, Any] | None = None) -> Any:
        name, cls = lookup(kind, component, where)
        try:
            params = validate_params(cls, {**(defaults or {}), **component.params}, where=f"{where}.params")
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        return cls, ComponentSpec(name=name, params=params.model_dump(mode="json", by_alias=True)), params

    _, bench_cls = lookup("benchmark", spec.benchmark, "benchmark")
    seed_default = {"seed": spec.seed} if "seed" in bench_cls.Params.model_fields else {}
    bench_cls, bench_spec, bench_params = checked("benchmark", spec.benchmark, "benchmark", seed_default)
    benchmark = _construct(bench_cls, source, "benchmark", bench_params)
    _, backbone_cls = lookup("backbone", spec.backbone, "backbone")
    backbone_cls, backbone_spec, _ = checked("backbone", spec.backbone, "backbone",
                                            backbone_cls.defaults_from(benchmark))
    algorithm_cls, algorithm_spec, _ = checked("algorithm", spec.algorithm, "algorithm")
    callbacks = [checked("callback", cb, f"callbacks[{i}]") for i, cb in enumerate(spec.callbacks)]
    resolved = spec.model_copy(update={
        "benchmark": bench_spec,
        "backbone": backbone_spec,
        "algorithm": algorithm_spec,
        "callbacks": [c[1] for c in callbacks],
        "versions": registry.versions(),
    })
    return ResolvedRun(resolved, benchmark, backbone_cls, algorithm_cls, [c[0] for c in callbacks], source)


def resolve_spec(spec: RunSpec, registry: Registry | None = None, source: str = "spec") -> RunSpec:
    """The resolved spec alone (what ``clgym validate`` reports and a run directory's spec.yaml holds)."""
    return resolve(spec, registry, source).spec


def resolved_now(data: dict[str, Any]) -> dict[str, Any]:
    """A spec (plain data, e.g. a run's spec.yaml) as the installed plugins resolve it today.

    Parameters a component gained after the spec was written come in at their defaults, so a run
    made before such an addition still compares equal to the same experiment made after it. A spec
    the installed plugins cannot resolve (a component since removed) comes back unchanged.
    """
    try:
        return yaml.safe_load(dump_spec(resolve_spec(parse_spec(data, "spec")))) or {}
    except ClgymError:
        return data


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model initialisation happens after this)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build(resolved: ResolvedRun) -> Components:
    """The backbone, algorithm and callbacks of ``resolved`` (seeded: initial weights are reproducible).

    Also checks what only building shows, before any data is loaded: the device exists,
    the precision runs on it, torch accepts the optimizer settings.
    """
    spec, source = resolved.spec, resolved.source
    if spec.trainer.uses_fabric:
        fabric_class(spec.trainer)  # installed? (processes start only when the run does)
        check_distributable(resolved.algorithm_cls, spec.trainer, source)
    else:
        check_mixed_precision(spec.trainer.mixed_precision, resolve_device(spec.trainer.device))
    if spec.trainer.num_threads is not None:
        torch.set_num_threads(spec.trainer.num_threads)
    seed_everything(spec.seed)
    backbone = _construct(resolved.backbone_cls, source, "backbone", spec.backbone.params)
    benchmark = windowed(resolved.benchmark)  # first_task / last_task: the held-out-tasks protocol
    algorithm = _construct(resolved.algorithm_cls, source, "algorithm", backbone, benchmark,
                           spec.algorithm.params, optimizer=spec.optimizer)
    try:
        build_optimizer(backbone.parameters(), spec.optimizer)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{source}: optimizer: {' '.join(str(exc).split())}") from None
    check_shapes(resolved, algorithm)
    if spec.trainer.early_stopping_patience is not None and not getattr(benchmark, "has_validation", False):
        raise SpecError(f"{source}: trainer.early_stopping_patience needs a validation split; "
                        "set benchmark.params.validation_fraction")
    callbacks = [
        _construct(cls, source, f"callbacks[{i}]", c.params)
        for i, (cls, c) in enumerate(zip(resolved.callback_classes, spec.callbacks))
    ]
    return Components(benchmark, backbone, algorithm, callbacks)


def check_shapes(resolved: ResolvedRun, algorithm: Algorithm) -> None:
    """Pass a dummy batch of the benchmark's input shape through the algorithm's forward (no data needed).

    A backbone whose sizes do not fit the benchmark fails here, in one line naming the two
    settings, instead of at the first training step with a traceback.
    """
    benchmark, spec, source = resolved.benchmark, resolved.spec, resolved.source
    backbone = algorithm.backbone
    shape = tuple(int(d) for d in benchmark.input_shape)
    params = spec.backbone.params
    sizes = ", ".join(f"backbone.params.{k}={params[k]}" for k in ("input_size", "input_channels") if k in params)
    inputs = torch.zeros((2, *shape))
    task_ids = torch.ones(2, dtype=torch.long)
    targets = torch.zeros(2, dtype=torch.long if benchmark.problem == "classification" else torch.float32)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            outputs = algorithm.forward(Batch(inputs, targets, task_ids))
    except (RuntimeError, ValueError, IndexError) as exc:
        reason = (" ".join(str(exc).split()) or type(exc).__name__)[:200]
        raise SpecError(
            f"{source}: backbone {spec.backbone.name} does not fit benchmark {spec.benchmark.name}: "
            f"its inputs have shape {list(shape)}, {sizes or 'the backbone params'} ({reason})"
        ) from None
    finally:
        backbone.train(was_training)
    expected = benchmark.head_size
    got = int(outputs.shape[-1]) if outputs.dim() > 1 else 1
    if outputs.shape[0] != 2 or got != expected:
        where = f"backbone.params.output_size={params['output_size']}" if "output_size" in params else "the backbone"
        raise SpecError(
            f"{source}: {where} gives {got} output(s) per example but benchmark {spec.benchmark.name} "
            f"has {expected} per head (benchmark head size)"
        )


def build_trainer(
    resolved: ResolvedRun,
    components: Components,
    run_dir: Path | None = None,
    spec_yaml: str | None = None,
    placement: Placement | None = None,
    profile: bool = False,
) -> ContinualTrainer:
    """The trainer of a built run, told its settings, its run directory and where it trains.

    ``spec_yaml`` is the spec its checkpoints record (a resumed run's ``spec.yaml`` as written).
    """
    spec = resolved.spec
    run = RunContext(run_dir=run_dir, spec=spec.model_dump(mode="json", exclude_none=True),
                     spec_yaml=spec_yaml if spec_yaml is not None else resolved.spec_yaml, profile=profile)
    return ContinualTrainer(components.algorithm, spec.trainer, components.callbacks, seed=spec.seed, run=run,
                            placement=placement)


def _construct(cls: type, source: str, where: str, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)``; a component refusing its settings is a one-line error naming it."""
    try:
        return cls(*args, **kwargs)
    except ClgymError as exc:
        message = str(exc)
        raise type(exc)(message if message.startswith(source) else f"{source}: {where}: {message}") from None
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as exc:
        # A constructor that rejects a combination of valid params (a negative size, torch refusing a shape).
        raise SpecError(f"{source}: {where}: {getattr(cls, 'name', cls.__name__)} cannot be built "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None
