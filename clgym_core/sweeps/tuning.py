"""Hyper-parameter tuning on Optuna: a run spec plus a ``tune:`` section.

::

    tune:
      space:
        optimizer.lr: {type: float, low: 1.0e-4, high: 0.5, log: true}
        trainer.batch_size: {type: int, low: 16, high: 128, log: true}
        algorithm.name: [ewc, agem]            # a list is short for {type: categorical, choices: [...]}
      objective: {metric: validation.average_accuracy, direction: maximize}   # the default
      sampler: tpe                             # tpe (default), random, grid, cmaes; or {name, params}
      pruner: median                           # none (default), median, successive_halving, hyperband
      trials: 20

The honest protocol is the default: the objective is the average accuracy on a
validation split (``benchmark.params.validation_fraction``, set to
``tune.validation_fraction`` for the search when the base spec has none), so the
search never reads test data. Multi-fidelity for continual learning: after each
task a trial reports the mean accuracy on the tasks seen so far (validation data
when the objective is a validation metric; mean loss when minimising), so a
pruner stops hopeless settings after their first tasks.

Each trial is an ordinary run directory ``DIR/trials/trial-NNNN``. The study
lives in ``DIR/study.db`` (SQLite) unless ``--storage`` names a shared database;
running the same command again continues it up to the number of trials asked.
``best.yaml`` is the base spec with the best values: the real protocol (no
validation split unless the base had one), a spec ``clgym run`` takes as it is.
"""

from __future__ import annotations

import copy
import json
import math
import os
import socket
import traceback
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clgym_core.callback import Callback
from clgym_core.sweeps.plan import SweepError, name_field, refuse_several_processes, set_path, split_section

TUNE_KEY = "tune"
SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
TRIALS_DIR = "trials"
INFO_FILE = "study.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpaceParam(_Strict):
    """One searched field: a float or int range (optionally log-scaled or stepped), or choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": "categorical", "choices": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check(self) -> SpaceParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty choices list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs low and high")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) > high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("give either log or step, not both")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int ranges need whole low and high")
        return self

    def first_values(self) -> list[Any]:
        """Values whose specs are checked up front: every choice, or both ends of a range."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]

    def grid(self, path: str) -> list[Any]:
        if self.type == "categorical":
            return list(self.labels())
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))  # type: ignore[arg-type]
        if self.step is None:
            raise SweepError(f"tune.space.{path}: the grid sampler needs choices, an int range or a float step")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1  # type: ignore[operator]
        return [self.low + i * self.step for i in range(n)]  # type: ignore[operator]

    def labels(self) -> dict[Any, Any]:
        """Choice as Optuna stores it -> value: lists and mappings go in as their JSON text."""
        plain = (str, int, float, bool, type(None))
        return {c if isinstance(c, plain) else json.dumps(c): c for c in self.choices or []}

    def suggest(self, trial: Any, path: str) -> Any:
        if self.type == "categorical":
            labels = self.labels()
            return labels[trial.suggest_categorical(path, list(labels))]
        if self.type == "int":
            return trial.suggest_int(path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(path, float(self.low), float(self.high), step=self.step, log=self.log)


class Named(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Objective(_Strict):
    metric: str = Field("validation.average_accuracy", description="A key of metrics.json; validation.KEY for "
                        "the validation split's summary.")
    direction: Literal["maximize", "minimize"] = "maximize"

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: Any) -> Any:
        aliases = {"max": "maximize", "maximise": "maximize", "min": "minimize", "minimise": "minimize"}
        return aliases.get(value, value) if isinstance(value, str) else value


class TuneSection(_Strict):
    space: dict[str, SpaceParam] = Field(min_length=1)
    objective: Objective = Field(default_factory=Objective)
    sampler: Named = Field(default_factory=lambda: Named(name="tpe"))
    pruner: Named = Field(default_factory=lambda: Named(name="none"))
    trials: int = Field(20, ge=1)
    study_name: str = "clgym"
    seed: int | None = Field(0, description="Seed of the sampler (None: unseeded).")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Held out for the search when the base has none.")
    search_tasks: int | None = Field(
        None, ge=1, description="A-GEM's protocol: trials run the first K tasks only; best.yaml and --final-seeds "
        "run the remaining tasks (benchmark.params.first_task / last_task)."
    )

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: Named) -> Named:
        if value.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {value.name!r}; use one of {', '.join(SAMPLERS)}")
        return value

    @field_validator("pruner")
    @classmethod
    def _pruner(cls, value: Named) -> Named:
        if value.name not in PRUNERS:
            raise ValueError(f"unknown pruner {value.name!r}; use one of {', '.join(PRUNERS)}")
        return value

    @property
    def uses_validation(self) -> bool:
        return self.objective.metric.startswith("validation.")


class TunePlan:
    """A checked tune file: the base spec (the real protocol) and the search section."""

    def __init__(self, base: dict[str, Any], section: TuneSection, source: str) -> None:
        self.base, self.section, self.source = base, section, source

    def trial_data(self, values: dict[str, Any]) -> dict[str, Any]:
        """The spec of a trial: the base with ``values`` and, when the objective needs it, a validation split."""
        data = copy.deepcopy(self.base)
        for path, value in values.items():
            set_path(data, path, value, f"{self.source}: tune.space.{path}")
        if self.section.search_tasks:
            set_path(data, "benchmark.params.last_task", self.section.search_tasks, self.source)
        if self.section.uses_validation:
            bench = data.get("benchmark")
            params = bench.get("params") if isinstance(bench, dict) else None
            if not (isinstance(params, dict) and params.get("validation_fraction")):
                set_path(data, "benchmark.params.validation_fraction", self.section.validation_fraction, self.source)
        return data

    def values_of(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's params as spec values (categorical labels decoded)."""
        space = self.section.space
        return {p: space[p].labels().get(v, v) if space[p].type == "categorical" else v
                for p, v in params.items() if p in space}

    def best_data(self, values: dict[str, Any]) -> dict[str, Any]:
        """``best.yaml``: the base (its protocol, its seed) with the chosen values."""
        data = copy.deepcopy(self.base)
        for path, value in values.items():
            set_path(data, path, value, f"{self.source}: tune.space.{path}")
        if self.section.search_tasks:  # evaluate on the tasks the search never saw
            set_path(data, "benchmark.params.first_task", self.section.search_tasks + 1, self.source)
        return data

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a study to be continued: the base and the search (not the trial count)."""
        section = self.section.model_dump(mode="json", exclude={"trials"})
        return json.loads(json.dumps({"base": self.base, "tune": section}, default=str))


def parse_tune(data: dict[str, Any], source: str, registry: Any = None) -> TunePlan:
    """Validate a tune file's mapping (fields named ``tune.…``) and check the specs it can produce."""
    from clgym_core.component import format_validation_error
    from clgym_core.errors import SpecError
    from clgym_core.build import resolve_spec
    from clgym_core.spec import parse_spec

    base, raw = split_section(data, TUNE_KEY, source)
    try:
        section = TuneSection.model_validate(raw)
    except ValidationError as error:
        raise SweepError(f"{source}: {format_validation_error(error, TUNE_KEY)}") from None
    plan = TunePlan(base, section, source)
    # Every choice and both ends of every range, each in a full spec: typos fail now, not in trial 7.
    paths = list(section.space)
    firsts = {p: section.space[p].first_values()[0] for p in paths}
    variants = [dict(firsts)]
    for path in paths:
        for value in section.space[path].first_values()[1:]:
            variants.append({**firsts, path: value})
    for values in variants:
        try:
            resolved = resolve_spec(parse_spec(plan.trial_data(values), source), registry, source=source)
        except SpecError as exc:
            message = name_field(str(exc), paths, f"{TUNE_KEY}.space")
            if section.search_tasks and "last_task" in message:
                message = f"{source}: tune.search_tasks: {section.search_tasks} is beyond the benchmark's tasks"
            raise SweepError(message) from None
        refuse_several_processes(resolved, source)
        total = resolved.benchmark.params.get("num_tasks")
        if section.search_tasks and isinstance(total, int) and section.search_tasks >= total:
            raise SweepError(f"{source}: tune.search_tasks: {section.search_tasks} leaves none of the {total} tasks "
                             "to evaluate on; use fewer")
    if section.sampler.name == "grid":
        for path, param in section.space.items():
            param.grid(path)
    _check_metric(section.objective.metric, source)
    return plan


def _check_metric(metric: str, source: str) -> None:
    from clgym_core.results import ALL_METRICS

    known = [m for m in ALL_METRICS if not m.startswith("validation_")]
    name = metric.removeprefix("validation.")
    if name not in known:
        raise SweepError(f"{source}: tune.objective.metric: unknown metric {metric!r}; use one of "
                         f"{', '.join(known)}, or validation.NAME for the validation split")


def read_tune_file(path: str | Path, registry: Any = None) -> TunePlan:
    from clgym_core.spec import read_spec_file

    return parse_tune(read_spec_file(path), str(path), registry)


# ---- Optuna objects -------------------------------------------------------------------------------
def make_sampler(plan: TunePlan) -> Any:
    import importlib.util

    import optuna

    spec, seed = plan.section.sampler, plan.section.seed
    where = f"{plan.source}: tune.sampler"
    try:
        if spec.name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **spec.params)
        if spec.name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **spec.params)
        if spec.name == "grid":
            space = {p: v.grid(p) for p, v in plan.section.space.items()}
            return _grid_sampler()(space, seed=seed, **spec.params)
        if importlib.util.find_spec("cmaes") is None:
            raise SweepError(f"{where}: cmaes needs the cmaes package; pip install cmaes")
        return optuna.samplers.CmaEsSampler(seed=seed, **spec.params)
    except TypeError as exc:
        raise SweepError(f"{where}.params: {exc}") from None


def _grid_sampler() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler without its stop-the-study call, which only works inside study.optimize:
        workers stop on the trial count instead."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return GridSampler


def make_pruner(plan: TunePlan, num_tasks: int) -> Any:
    import optuna

    spec = plan.section.pruner
    try:
        if spec.name == "none":
            return optuna.pruners.NopPruner()
        if spec.name == "median":
            return optuna.pruners.MedianPruner(**{"n_startup_trials": 3, **spec.params})
        if spec.name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(**{"min_resource": 1, **spec.params})
        return optuna.pruners.HyperbandPruner(**{"min_resource": 1, "max_resource": max(1, num_tasks), **spec.params})
    except TypeError as exc:
        raise SweepError(f"{plan.source}: tune.pruner.params: {exc}") from None


def grid_size(plan: TunePlan) -> int:
    return math.prod(len(v.grid(p)) for p, v in plan.section.space.items())


def open_study(plan: TunePlan, url: str, num_tasks: int) -> tuple[Any, Any]:
    """Create or continue the study (and return its storage); refuse one that holds another search."""
    import optuna

    from clgym_core.plain import first_difference
    from clgym_core.sweeps.storage import open_storage, shown

    storage = open_storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = plan.section.study_name
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=plan.section.objective.direction,
                                    sampler=make_sampler(plan), pruner=make_pruner(plan, num_tasks),
                                    load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study with the other direction
        raise SweepError(f"--storage {shown(url)}: study {name!r}: {exc}") from None
    wanted = plan.fingerprint()
    held = study.user_attrs.get("clgym_tune")
    if held is None:
        study.set_user_attr("clgym_tune", wanted)
    else:
        differs = first_difference(held, wanted)
        if differs is not None:
            raise SweepError(f"--storage {shown(url)}: study {name!r} holds trials of another tune file ({differs} "
                             "differs); use another --out, --storage or tune.study_name")
    return study, storage


def counted(trials: list[Any]) -> int:
    """Trials that count towards the total: all but those cut short by Ctrl-C (they are run again)."""
    return sum(1 for t in trials if not t.user_attrs.get("interrupted"))


# ---- trials -----------------------------------------------------------------------------------------
class TrialReporter(Callback):
    """After each task: report the mean accuracy on the tasks seen so far to the trial; prune if told."""

    name = "tune_reporter"

    def __init__(self, trial: Any, use_validation: bool, maximize: bool) -> None:
        super().__init__()
        self.trial, self.use_validation, self.maximize = trial, use_validation, maximize
        self.steps = 0
        self.reported = 0

    def on_validation_end(self, trainer: Any, after_task: int, evaluation: Any) -> None:
        self.steps = trainer.global_step
        if after_task == 0:
            return
        source = evaluation.validation if self.use_validation and evaluation.validation is not None else evaluation
        if self.maximize and trainer.problem == "classification":
            value = sum(source.accuracy[:after_task]) / after_task
        elif not self.maximize:
            value = sum(source.loss[:after_task]) / after_task
        else:
            return  # nothing comparable to a maximised regression metric: no intermediate values
        if not math.isfinite(value):
            return
        self.trial.report(value, after_task)
        self.reported = after_task
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned after task {after_task} (mean on seen tasks {value:.2f})")

    def on_fit_end(self, trainer: Any) -> None:
        self.steps = trainer.global_step


def metric_value(metrics: dict[str, Any], metric: str) -> float | None:
    if metric.startswith("validation."):
        node = metrics.get("validation") or {}
        value = node.get(metric.removeprefix("validation."))
    else:
        value = metrics.get(metric)
        if value is None:
            value = (metrics.get("loss_metrics") or {}).get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def run_trial(plan: TunePlan, study: Any, trial: Any, out: Path, progress: bool) -> str:
    """Run one trial in this process and tell the study how it went; its final state."""
    import optuna
    from optuna.trial import TrialState

    from clgym_core.errors import ClgymError
    from clgym_core.runner import RunInterrupted, run_spec
    from clgym_core.spec import parse_spec

    values = {path: param.suggest(trial, path) for path, param in plan.section.space.items()}
    run_dir = out / TRIALS_DIR / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir.resolve()))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    maximize = plan.section.objective.direction == "maximize"
    reporter = TrialReporter(trial, plan.section.uses_validation, maximize)
    state, reason, value = "complete", "", None
    try:
        run_spec(parse_spec(plan.trial_data(values), str(run_dir / "spec.yaml")), out_dir=run_dir, progress=False,
                 callbacks=[reporter])
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        value = metric_value(metrics, plan.section.objective.metric)
        if value is None:
            state, reason = "fail", f"{plan.section.objective.metric} is missing or not finite in metrics.json"
    except optuna.TrialPruned as exc:
        state, reason = "pruned", str(exc)
    except (RunInterrupted, KeyboardInterrupt):
        state, reason = "interrupted", "interrupted (Ctrl-C); run again to replace it"
    except ClgymError as exc:
        state, reason = "fail", " ".join(str(exc).split())
    except Exception as exc:  # a bug in a component: keep the traceback beside the run
        state, reason = "fail", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "traceback.txt").write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    trial.set_user_attr("steps", reporter.steps)
    if reason:
        trial.set_user_attr("reason", reason)
        if run_dir.is_dir():
            (run_dir / ("pruned.txt" if state == "pruned" else "failed.txt")).write_text(reason + "\n", "utf-8")
    if state == "interrupted":
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
    elif state == "complete":
        study.tell(trial, value)
    elif state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
    if progress:
        shown = f"{value:.2f}" if value is not None else state
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        print(f"trial {trial.number}: {shown} ({params}){'; ' + reason if reason and state != 'pruned' else ''}",
              flush=True)
    return state


def tune_worker(source: str, data: dict[str, Any], out: str, url: str, total: int, num_tasks: int,
                progress: bool = False, threads: int | None = None) -> dict[str, Any]:
    """One worker: claim trials under the lock until the study holds ``total``; run each here."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    from clgym_core.sweeps.storage import claim_lock

    warnings.filterwarnings("ignore", module="optuna")
    plan = parse_tune(data, source)
    study, storage = open_study(plan, url, num_tasks)
    ran: list[int] = []
    status = "done"
    while True:
        with claim_lock(storage, plan.section.study_name):
            if counted(study.get_trials(deepcopy=False)) >= total:
                break
            trial = study.ask()
        state = run_trial(plan, study, trial, Path(out), progress)
        ran.append(trial.number)
        if state == "interrupted":
            status = "interrupted"
            break
    return {"status": status, "trials": ran, "pid": os.getpid()}


# ---- the whole study -------------------------------------------------------------------------------
def trials_frame(study: Any) -> Any:
    """One row per trial: number, state, value, the searched values, steps, reason, run directory."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "state": t.state.name.lower(), "value": t.value if t.value is not None else math.nan}
        row.update(t.params)
        row.update({"steps": t.user_attrs.get("steps"), "reason": t.user_attrs.get("reason", ""),
                    "worker": t.user_attrs.get("worker", ""), "run_dir": t.user_attrs.get("run_dir", "")})
        if t.user_attrs.get("interrupted"):
            row["state"] = "interrupted"
        rows.append(row)
    return pd.DataFrame(rows)


def write_plots(study: Any, out: Path) -> list[Path]:
    """Optimisation history, parameter importances, slice and parallel-coordinate views as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from optuna.visualization import matplotlib as vis

    written = []
    plots = {"optimization_history": vis.plot_optimization_history, "param_importances": vis.plot_param_importances,
             "slice": vis.plot_slice, "parallel_coordinate": vis.plot_parallel_coordinate}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except Exception:  # too few finished trials, or a single parameter for importances
                continue
            figure = np.atleast_1d(axes).flat[0].figure
            path = out / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
    return written


def tune(
    path: str | Path,
    out: str | Path,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    executor: str = "process",
    address: str | None = None,
    final_seeds: int = 0,
    progress: bool = False,
    registry: Any = None,
) -> dict[str, Any]:
    """Run (or continue) the study of the tune file at ``path`` into ``out`` (``clgym tune`` from Python).

    Returns ``{"trials": DataFrame, "best": {...} | None, "best_path": Path | None,
    "final": DataFrame | None}``: ``final`` is the results frame of the best setting
    run with ``final_seeds`` seeds (see :func:`clgym_core.sweeps.run.sweep`).
    """
    from clgym_core.spec import read_spec_file
    from clgym_core.sweeps.executors import make_executor
    from clgym_core.sweeps.storage import default_url, open_storage, shown

    path, out = Path(path), Path(out)
    data = read_spec_file(path)
    plan = parse_tune(data, str(path), registry)
    total = trials if trials is not None else (grid_size(plan) if plan.section.sampler.name == "grid"
                                               and "trials" not in data[TUNE_KEY] else plan.section.trials)
    if total < 1:
        raise SweepError("--trials: give at least 1")
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out}: exists and is not a directory")
    url = storage or default_url(out)
    if storage is not None:
        open_storage(url)  # fails in one line, before anything is written, when it cannot be reached
    num_tasks = _num_tasks(plan, registry)
    out.mkdir(parents=True, exist_ok=True)
    study, _ = open_study(plan, url, num_tasks)  # refuses a study of another search before anything is written
    _keep_copy(out, "tune.yaml", path.read_text(encoding="utf-8"))
    (out / INFO_FILE).write_text(json.dumps({"storage": shown(url), "study_name": plan.section.study_name,
                                             "direction": plan.section.objective.direction,
                                             "local": storage is None}, indent=2) + "\n", encoding="utf-8")
    threads = _threads(plan) or 1
    jobs = [(str(path), data, str(out), url, total, num_tasks, progress, threads) for _ in range(max(1, workers))]
    runner = make_executor(executor, workers, threads, address)
    interrupted = False

    def on_event(kind: str, index: int, payload: Any) -> None:
        nonlocal interrupted
        if kind == "done" and isinstance(payload, dict) and payload.get("status") == "interrupted":
            interrupted = True

    runner.run(tune_worker, jobs, on_event)
    if interrupted:
        raise KeyboardInterrupt
    frame = trials_frame(study)
    frame.to_csv(out / "trials.csv", index=False)
    write_plots(study, out)
    result: dict[str, Any] = {"direction": plan.section.objective.direction, "trials": frame, "best": None, "best_path": None, "final": None, "study": study}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return result
    best = study.best_trial
    best_values = plan.values_of(best.params)
    best_data = plan.best_data(best_values)
    best_path = out / "best.yaml"
    header = (f"# best of {len(frame)} trial(s) of {path.name}: trial {best.number}, "
              f"{plan.section.objective.metric} = {best.value:.4g}\n")
    best_path.write_text(header + yaml.safe_dump(best_data, sort_keys=False), encoding="utf-8")
    result.update(best={"trial": best.number, "value": best.value, "params": best_values}, best_path=best_path)
    if final_seeds:
        result["final"] = run_final(best_data, plan, out, final_seeds, workers, executor, address, registry)
    return result


def run_final(best_data: dict[str, Any], plan: TunePlan, out: Path, seeds: int, workers: int, executor: str,
              address: str | None, registry: Any) -> Any:
    """The best setting under the real protocol, with ``seeds`` seeds, as a sweep in ``DIR/final``."""
    from clgym_core.sweeps.plan import expand
    from clgym_core.sweeps.run import run_sweep

    first = int(best_data.get("seed", 0) or 0)
    sweep_data = {**best_data, "sweep": {"seed": [first + i for i in range(seeds)]}}
    final = expand(sweep_data, str(out / "best.yaml"))
    return run_sweep(final, out / "final", workers=workers, executor=executor, address=address, registry=registry,
                     source_text=yaml.safe_dump(sweep_data, sort_keys=False))


def _num_tasks(plan: TunePlan, registry: Any) -> int:
    from clgym_core.build import resolve_spec
    from clgym_core.spec import parse_spec

    firsts = {p: v.first_values()[0] for p, v in plan.section.space.items()}
    spec = resolve_spec(parse_spec(plan.trial_data(firsts), plan.source), registry, source=plan.source)
    return plan.section.search_tasks or int(spec.benchmark.params.get("num_tasks", 1))


def _threads(plan: TunePlan) -> int | None:
    trainer = plan.base.get("trainer")
    value = trainer.get("num_threads") if isinstance(trainer, dict) else None
    return int(value) if isinstance(value, int) else None


def _keep_copy(out: Path, name: str, text: str) -> None:
    target, n = out / name, 1
    while target.exists() and target.read_text(encoding="utf-8") != text:
        n += 1
        target = out / f"{Path(name).stem}-{n}{Path(name).suffix}"
    if not target.exists():
        target.write_text(text, encoding="utf-8")


def is_study_dir(path: str | Path) -> bool:
    return (Path(path) / INFO_FILE).is_file()


def study_direction(out: str | Path) -> str:
    return json.loads((Path(out) / INFO_FILE).read_text(encoding="utf-8")).get("direction", "maximize")


def study_trials(out: str | Path) -> Any:
    """The trials of the study in ``out``: live from its SQLite file, else the trials.csv of the last call."""
    import pandas as pd

    out = Path(out)
    info = json.loads((out / INFO_FILE).read_text(encoding="utf-8"))
    if info.get("local") and (out / "study.db").is_file():
        import optuna

        from clgym_core.sweeps.storage import default_url

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=info["study_name"], storage=default_url(out))
        return trials_frame(study)
    if (out / "trials.csv").is_file():
        return pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    raise SweepError(f"{out}: the study is in {info.get('storage')}; no trials.csv here yet")
