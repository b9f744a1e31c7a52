"""Run a spec end to end, or resume an interrupted run, in its run directory.

A run is resolved and built in one pass (:mod:`clgym_core.build`), claimed in its
directory (:mod:`clgym_core.rundir`: one run per directory, nothing written outside it),
trained, and its results written. A resumed run continues in the same directory and
ends with the same files, and the same numbers (timings aside), as a run that was
never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clgym_core.build import Components, ResolvedRun, build, build_trainer, resolve, with_run_callbacks
from clgym_core.callback import Callback
from clgym_core.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, load_checkpoint
from clgym_core.distributed import Placement, follow_parent
from clgym_core.errors import CheckpointError, ClgymError, SpecError
from clgym_core.plain import first_difference
from clgym_core.profiling import write_profile
from clgym_core.registry import Registry
from clgym_core.rundir import SPEC_NAME, RunDirectory, default_run_dir, write_results
from clgym_core.spec import RunSpec, load_spec, parse_spec_text, read_spec_file
from clgym_core.settings import TrainerSettings
from clgym_core.trainer import ContinualTrainer, make_placement

__all__ = ["Components", "RunInterrupted", "RunResult", "resume_run", "run_spec"]


@dataclass
class RunResult:
    run_dir: Path | None
    spec: RunSpec
    summary: dict[str, float]
    accuracy_matrix: list[list[float]]
    loss_matrix: list[list[float]]
    problem: str
    wall_seconds: float
    trainer: ContinualTrainer


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; finished tasks are in its checkpoint (when checkpointing was on)."""

    def __init__(self, run_dir: Path | None, completed_tasks: int, resumable: bool, checkpointing: bool = True) -> None:
        super().__init__(f"interrupted after {completed_tasks} finished task(s)")
        self.run_dir = run_dir
        self.completed_tasks = completed_tasks
        self.resumable = resumable
        self.checkpointing = checkpointing


def run_spec(
    spec: RunSpec,
    out_dir: str | Path | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
    write: bool = True,
    source: str = "spec",
    callbacks: list[Callback] | None = None,
    profile: bool = False,
) -> RunResult:
    """Resolve, build, train and evaluate ``spec``; write its run directory unless ``write`` is false.

    ``callbacks``: callback objects attached to this run only, after the spec's own
    (not written into spec.yaml; e.g. a tuning study's reporter).

    Everything that can be refused without data (names, params, device, optimizer) is
    checked before the directory is claimed, so a rejected spec leaves nothing behind.
    Under ddp, Fabric's processes start after building; only process 0 claims and writes
    the directory. ``profile``: record a torch.profiler trace and the time per phase.
    """
    resolved = resolve(with_run_callbacks(spec, write, progress), registry, source)
    try:
        components = build(resolved)
    except KeyboardInterrupt:
        raise RunInterrupted(None, 0, False) from None
    components.callbacks.extend(callbacks or [])
    placement = _launch(resolved.spec.trainer)
    if not write or not placement.is_main:
        return _execute(resolved, components, None, placement=placement, profile=profile and write)
    flag = "--out" if out_dir is not None else "output_dir"
    path = Path(out_dir) if out_dir is not None else default_run_dir(resolved.spec)
    with RunDirectory.claim_new(path, flag) as run_dir:
        run_dir.write_text(SPEC_NAME, resolved.spec_yaml)
        return _execute(resolved, components, run_dir, placement=placement, profile=profile)


def _launch(settings: TrainerSettings) -> Placement:
    """Where the run trains; with Fabric fields set this starts its processes (the others rerun this command)."""
    placement = make_placement(settings)
    if not placement.is_main:
        follow_parent()  # a process Fabric started ends with the one that started it
    return placement


def _spec_settings(path: Path) -> TrainerSettings | None:
    """The trainer settings of ``path/spec.yaml``, or None when it cannot be read (resuming then says why)."""
    try:
        return load_spec(path / SPEC_NAME).trainer
    except (ClgymError, OSError):
        return None


def resume_run(
    run_dir: str | Path,
    progress: bool | None = None,
    registry: Registry | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult | None:
    """Continue the run in ``run_dir`` from its last checkpoint; ``None`` when it had already finished.

    The spec comes from ``run_dir/spec.yaml`` (which must still match the one in the
    checkpoint); components are rebuilt from it, then weights, algorithm and callback
    states, counters and RNG states are restored, and training goes on with the next task.
    """
    notify = notify or (lambda message: None)
    settings = _spec_settings(Path(run_dir))
    placement = _launch(settings) if settings is not None and settings.uses_fabric else None
    if placement is not None and not placement.is_main:
        return _follow(Path(run_dir), placement, progress, registry)
    with RunDirectory.claim_existing(Path(run_dir)) as claimed:
        path = claimed.path
        spec_path = path / SPEC_NAME
        finished = (path / "metrics.json").is_file()
        if finished and not (path / CHECKPOINT_NAME).exists():
            return None  # finished before checkpoints existed, or with checkpointing off
        spec = load_spec(spec_path)
        state, checkpoint = load_checkpoint(path)
        if checkpoint.name == PREVIOUS_NAME:
            notify(f"{path / CHECKPOINT_NAME} is damaged; resuming from {checkpoint.name} instead")
        if finished and int(state["completed_tasks"]) >= int(state["num_tasks"]):
            return None
        _check_same_spec(spec_path, state.get("spec"), checkpoint.name)
        # A run resumed with a progress flag runs with that display; the spec it compares stays as written.
        resolved = resolve(with_run_callbacks(spec, True, progress), registry, str(spec_path))
        changed = {d: (v, resolved.spec.versions.get(d)) for d, v in (spec.versions or {}).items()
                   if resolved.spec.versions.get(d) != v}
        if changed:
            notify("versions changed since the run started: "
                   + ", ".join(f"{d} {old} -> {new or 'missing'}" for d, (old, new) in changed.items()))
        try:
            components = build(resolved)
        except KeyboardInterrupt:
            raise RunInterrupted(path, int(state["completed_tasks"]), True) from None
        # Later checkpoints must keep matching spec.yaml: the trainer records the spec as written.
        return _execute(resolved, components, claimed, state, spec_yaml=spec_path.read_text(encoding="utf-8"),
                        placement=placement)


def _follow(path: Path, placement: Placement, progress: bool | None, registry: Registry | None) -> RunResult | None:
    """A process other than process 0 resuming a ddp run: reads the run directory, never claims or writes it."""
    state, _ = load_checkpoint(path)
    if int(state["completed_tasks"]) >= int(state["num_tasks"]):
        return None
    resolved = resolve(with_run_callbacks(load_spec(path / SPEC_NAME), True, progress), registry, str(path / SPEC_NAME))
    return _execute(resolved, build(resolved), None, state, placement=placement)


def _check_same_spec(spec_path: Path, saved_yaml: object, checkpoint_name: str) -> None:
    if not isinstance(saved_yaml, str):
        return
    try:
        saved = parse_spec_text(saved_yaml, "yaml", f"{spec_path.parent / checkpoint_name} (its spec)")
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    current = read_spec_file(spec_path)
    differs = first_difference({k: v for k, v in current.items() if k != "versions"},
                               {k: v for k, v in saved.items() if k != "versions"})
    if differs is not None:
        raise CheckpointError(
            f"{spec_path}: {differs} differs from the spec saved in {checkpoint_name}; "
            "restore spec.yaml or start a new run with the edited spec"
        )


def _execute(
    resolved: ResolvedRun,
    components: Components,
    run_dir: RunDirectory | None,
    state: dict | None = None,
    spec_yaml: str | None = None,
    placement: Placement | None = None,
    profile: bool = False,
) -> RunResult:
    """Fit (from the start or a restored checkpoint) and write the outputs."""
    trainer = build_trainer(resolved, components, run_dir.path if run_dir is not None else None, spec_yaml,
                            placement=placement, profile=profile)
    if state is not None:
        trainer.restore(state)
    try:
        summary = trainer.fit()
        if run_dir is not None:
            trainer.release_data()  # before plotting: the plots' memory must not stack on the data's
            write_results(run_dir, resolved.spec, trainer, summary)
            if trainer.profiler is not None:
                write_profile(run_dir, trainer.profiler)
    except KeyboardInterrupt:
        path = run_dir.path if run_dir is not None else None
        resumable = path is not None and trainer.checkpointing and (path / CHECKPOINT_NAME).exists()
        raise RunInterrupted(path, trainer.completed_tasks, resumable, trainer.settings.checkpoint) from None
    return RunResult(
        run_dir=run_dir.path if run_dir is not None else None,
        spec=resolved.spec,
        summary=summary,
        accuracy_matrix=trainer.accuracy_matrix,
        loss_matrix=trainer.loss_matrix,
        problem=trainer.problem,
        wall_seconds=trainer.wall_seconds,
        trainer=trainer,
    )
