"""Logger callbacks: the run's timeline in files and in the tools researchers already use.

Every logger records the same things: the spec, the accuracy and loss on every
task after every task (the rows of the accuracy matrix, step 0 the untrained
model), the mean training loss of every epoch, the wall time of every task and
the summary metrics at the end. ``clgym run`` always attaches the CSV and
JSON-lines loggers; TensorBoard, MLflow and W&B loggers are attached by naming them
in the spec's ``callbacks`` and need those libraries (``pip install
clgym-core[tensorboard]`` / ``[mlflow]`` / ``[wandb]``). Nothing leaves the machine unless a
logger is pointed at a server (MLflow's ``tracking_uri``, W&B's ``mode: online``).

Scalar tags, shared by the CSV, TensorBoard, MLflow and W&B loggers (the x-axis
``step`` is the trainer's global step):

- ``train/loss``: mean training loss of an epoch;
- ``accuracy/task_J``, ``loss/task_J``: task J evaluated after each task;
- ``accuracy/seen_tasks`` (``loss/seen_tasks`` for regression): mean over tasks 1..t after task t;
- ``time/task_seconds``: wall time of a task;
- ``summary/KEY``: the summary metrics (average accuracy, forgetting, BWT, FWT, ...).

A resumed run appends to the same files: the file logs are cut back to where the
checkpoint was written (dropping what the killed attempt logged afterwards) and
TensorBoard purges the steps after it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from clgym_core.callback import Callback
from clgym_core.component import Params
from clgym_core.errors import ClgymError, RunDirError
from clgym_core.plain import nan_to_null
from clgym_core.rundir import RUN_FILES, inside, open_no_follow

if TYPE_CHECKING:
    from clgym_core.callback import Evaluation
    from clgym_core.trainer import ContinualTrainer


def _spec_dict(trainer: ContinualTrainer) -> dict[str, Any] | None:
    return trainer.run.spec


def _spec_yaml(trainer: ContinualTrainer) -> str | None:
    return trainer.run.spec_yaml


def log_folder(trainer: ContinualTrainer, configured: str | None, default: str, who: str) -> Path | None:
    """Where a logger writes: ``configured`` (relative, inside the run directory) or ``default`` in it.

    From the Python API (no run directory) a configured folder is used as given; with
    neither there is nowhere to write (None).
    """
    if trainer.run_dir is None:
        return Path(configured) if configured is not None else None
    return inside(Path(trainer.run_dir), configured if configured is not None else default, f"callbacks: {who}.dir")


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists become strings)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


class FileLogParams(Params):
    dir: str | None = Field(
        None, description="Folder of the log file, relative to the run directory (the run directory when unset)."
    )


class _FileLog(Callback):
    """An append-only log file that a resumed run cuts back to the checkpoint's offset."""

    filename = ""

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._handle: Any = None
        self._resume_offset: int | None = None
        self._dropped = b""  # what a resume cut from the end of the file
        self.path: Path | None = None

    def _open(self, trainer: ContinualTrainer) -> bool:
        """Open the file; True when it was continued rather than started."""
        folder = log_folder(trainer, self.params.dir, ".", self.name)
        if folder is None:
            # From the Python API there is no run directory: say so once and log nothing.
            warnings.warn(f"callback {self.name}: no folder to write to (set params.dir); logging nothing",
                          stacklevel=2)
            return False
        name = Path(self.filename)
        if name.name != self.filename or self.filename in ("", ".", ".."):
            raise RunDirError(f"callbacks: {self.name}.filename: {self.filename!r} must be a plain file name")
        if trainer.run_dir is not None and self.params.dir is None and self.filename in RUN_FILES - {type(self).filename}:
            raise RunDirError(f"callbacks: {self.name}.filename: {self.filename!r} is a file the run itself writes")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"callbacks: {self.name}.dir: cannot create {folder} ({exc.strerror or exc})") from None
        self.path = folder / self.filename
        if trainer.run_dir is not None:
            inside(Path(trainer.run_dir), self.path.relative_to(trainer.run_dir), f"callbacks: {self.name}.filename")
        resumed = trainer.resumed_from is not None
        if resumed and self._resume_offset is not None and self.path.exists():
            # Drop what the interrupted attempt wrote after the checkpoint.
            if self.path.stat().st_size > self._resume_offset:
                with open(self.path, "rb") as handle:
                    handle.seek(self._resume_offset)
                    self._dropped = handle.read()
                os.truncate(self.path, self._resume_offset)
        # A resumed run appends (never clobbers earlier logs); a new one starts a file that must not exist yet.
        self._handle = open_no_follow(self.path, append=resumed)
        return resumed

    def _write(self, text: str) -> None:
        # Unbuffered: each line reaches the OS at once, so a killed process loses nothing logged.
        if self._handle is not None:
            try:
                self._handle.write(text.encode("utf-8"))
            except OSError as exc:  # a full disk: one line naming the file; the last checkpoint stays good
                raise RunDirError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def state_dict(self) -> dict[str, Any]:
        if self._handle is not None:
            return {"offset": int(self._handle.tell())}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "offset" in state:
            self._resume_offset = int(state["offset"])

    def teardown(self, trainer: ContinualTrainer) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class JSONLinesLogger(_FileLog):
    """JSON-lines event log of the run: start (with the spec), epochs, evaluations, tasks, end, errors."""

    name = "jsonl_logger"
    filename = "events.jsonl"

    class Params(FileLogParams):
        filename: str = Field("events.jsonl", description="File name inside the folder.")

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.filename = self.params.filename

    def event(self, kind: str, **fields: Any) -> None:
        record = {"event": kind, "time": round(time.time(), 3), **fields}
        self._write(json.dumps(nan_to_null(record), allow_nan=False) + "\n")

    def setup(self, trainer: ContinualTrainer) -> None:
        if self._open(trainer):
            self.event("resume", completed_tasks=trainer.completed_tasks, global_step=trainer.global_step,
                       interrupted_by=self._last_exception())
            return
        self.event(
            "start",
            benchmark=trainer.benchmark.name,
            algorithm=trainer.algorithm.name,
            problem=trainer.problem,
            num_tasks=trainer.num_tasks,
            seed=trainer.seed,
            device=str(trainer.device),
            spec=_spec_dict(trainer),
        )

    def _last_exception(self) -> dict[str, Any] | None:
        """The error that stopped the attempt being resumed, if it lived to log one (not after SIGKILL)."""
        for line in reversed(self._dropped.decode("utf-8", "replace").splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("event") == "exception":
                return {k: record.get(k) for k in ("type", "message", "task", "epoch", "global_step")}
        return None

    def on_train_epoch_end(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        self.event(
            "epoch", task=task, epoch=epoch, global_step=trainer.global_step,
            train_loss=trainer.metrics.train_loss.get(f"{task}/{epoch}"),
        )

    def on_validation_end(self, trainer: ContinualTrainer, after_task: int, evaluation: Evaluation) -> None:
        accuracy = evaluation.accuracy if trainer.problem == "classification" else None
        self.event("evaluation", after_task=after_task, global_step=trainer.global_step,
                   accuracy=accuracy, loss=evaluation.loss)

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        self.event("task_end", task=task, global_step=trainer.global_step,
                   seconds=trainer.metrics.task_seconds.get(task))

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        self.event("end", global_step=trainer.global_step, summary=trainer.summary())

    def on_exception(self, trainer: ContinualTrainer, exception: BaseException) -> None:
        if self._handle is None:
            return
        self.event(
            "exception", type=type(exception).__name__, message=" ".join(str(exception).split()),
            task=trainer.current_task, epoch=trainer.current_epoch, global_step=trainer.global_step,
            completed_tasks=trainer.completed_tasks,
        )


class ScalarLogger(Callback):
    """Base of loggers that record named scalars against the global step (see the module's tags)."""

    def log_scalar(self, tag: str, value: float, step: int, task: int | None, epoch: int | None) -> None:
        raise NotImplementedError

    def _scalar(self, tag: str, value: float | None, step: int, task: int | None = None,
                epoch: int | None = None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.log_scalar(tag, float(value), int(step), task, epoch)

    def on_train_epoch_end(self, trainer: ContinualTrainer, task: int, epoch: int) -> None:
        self._scalar("train/loss", trainer.metrics.train_loss.get(f"{task}/{epoch}"), trainer.global_step, task, epoch)

    def on_validation_end(self, trainer: ContinualTrainer, after_task: int, evaluation: Evaluation) -> None:
        step = trainer.global_step
        classification = trainer.problem == "classification"
        for j, (acc, loss) in enumerate(zip(evaluation.accuracy, evaluation.loss), start=1):
            if classification:
                self._scalar(f"accuracy/task_{j}", acc, step, after_task)
            self._scalar(f"loss/task_{j}", loss, step, after_task)
        if after_task > 0:
            seen = (evaluation.accuracy if classification else evaluation.loss)[:after_task]
            tag = "accuracy/seen_tasks" if classification else "loss/seen_tasks"
            self._scalar(tag, sum(seen) / len(seen), step, after_task)

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        self._scalar("time/task_seconds", trainer.metrics.task_seconds.get(task), trainer.global_step, task)

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        for key, value in trainer.summary().items():
            self._scalar(f"summary/{key}", value, trainer.global_step, trainer.num_tasks)


CSV_COLUMNS = ("tag", "value", "step", "task", "epoch", "time")


class CSVLogger(_FileLog, ScalarLogger):
    """CSV of every logged scalar (tag, value, step, task, epoch, time): accuracies per task, losses, summary."""

    name = "csv_logger"
    filename = "scalars.csv"

    class Params(FileLogParams):
        filename: str = Field("scalars.csv", description="File name inside the folder.")

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.filename = self.params.filename
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def _row(self, *values: Any) -> None:
        self._writer.writerow(values)
        self._write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def setup(self, trainer: ContinualTrainer) -> None:
        self._open(trainer)
        if self._handle is not None and self._handle.tell() == 0:
            self._row(*CSV_COLUMNS)

    def log_scalar(self, tag: str, value: float, step: int, task: int | None, epoch: int | None) -> None:
        self._row(tag, repr(value), step, "" if task is None else task, "" if epoch is None else epoch,
                  f"{time.time():.3f}")


def _require(module: str, extra: str, name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ClgymError(f"callbacks: {name} needs {module}, which is not installed; pip install clgym-core[{extra}]")


class TensorBoardLogger(ScalarLogger):
    """TensorBoard event files: per-task accuracies and losses, training loss, summary and the spec."""

    name = "tensorboard"

    class Params(Params):
        dir: str | None = Field(
            None, description="Log directory, relative to the run directory (RUN_DIR/tensorboard when unset)."
        )

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        _require("tensorboard", "tensorboard", self.name)
        self._writer: Any = None
        self._purge_step: int | None = None

    def setup(self, trainer: ContinualTrainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = log_folder(trainer, self.params.dir, "tensorboard", self.name)
        if folder is None:
            # From the Python API there is no run directory: say so once and log nothing.
            warnings.warn(f"callback {self.name}: no folder to write to (set params.dir); logging nothing",
                          stacklevel=2)
            return False
        # On resume, drop the interrupted attempt's steps after the checkpoint (the checkpoint's own step stays).
        purge = trainer.global_step + 1 if trainer.resumed_from is not None else None
        self._writer = SummaryWriter(log_dir=str(folder), purge_step=purge)
        spec = _spec_yaml(trainer)
        if spec is not None and trainer.resumed_from is None:
            # Indented: TensorBoard's text plugin renders markdown, and this keeps the YAML verbatim.
            self._writer.add_text("spec", "\n".join("    " + line for line in spec.splitlines()), 0)

    def log_scalar(self, tag: str, value: float, step: int, task: int | None, epoch: int | None) -> None:
        self._writer.add_scalar(tag, value, step)

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        super().on_fit_end(trainer)
        spec = _spec_dict(trainer)
        if spec is not None:
            hparams = {k: v for k, v in flatten(spec).items() if isinstance(v, (int, float, str, bool))}
            metrics = {f"hparam/{k}": v for k, v in trainer.summary().items() if math.isfinite(v)}
            self._writer.add_hparams(hparams, metrics, run_name=".", global_step=trainer.global_step)
        self._writer.flush()

    def teardown(self, trainer: ContinualTrainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MLflowLogger(ScalarLogger):
    """MLflow run: the spec as params and artifact, per-task accuracies and losses, summary metrics."""

    name = "mlflow"

    class Params(Params):
        tracking_uri: str | None = Field(
            None, description="Where to log (e.g. a server URL); RUN_DIR/mlflow.db when unset (nothing is uploaded)."
        )
        experiment: str = Field("clgym", description="MLflow experiment name.")
        run_name: str | None = Field(None, description="MLflow run name (the run directory's name when unset).")

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        _require("mlflow", "mlflow", self.name)
        self._client: Any = None
        self.run_id: str | None = None
        self._pending: list[Any] = []

    def setup(self, trainer: ContinualTrainer) -> None:
        from mlflow.tracking import MlflowClient

        uri, artifacts = self.params.tracking_uri, None
        if uri is None:
            if trainer.run_dir is None:
                raise ClgymError(f"callbacks: {self.name} has no run directory; set its params.tracking_uri")
            # A local SQLite store (MLflow 3 retired the ./mlruns file store) and artifacts next to it.
            folder = Path(trainer.run_dir).resolve()
            uri, artifacts = f"sqlite:///{folder / 'mlflow.db'}", (folder / "mlartifacts").as_uri()
        self._client = MlflowClient(tracking_uri=uri)
        if self.run_id is not None:  # resumed: continue the same MLflow run
            self._client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self._client.get_experiment_by_name(self.params.experiment)
        experiment_id = (
            experiment.experiment_id if experiment is not None
            else self._client.create_experiment(self.params.experiment, artifact_location=artifacts)
        )
        run_name = self.params.run_name or (Path(trainer.run_dir).name if trainer.run_dir is not None else None)
        run = self._client.create_run(experiment_id, run_name=run_name, tags={"clgym.seed": str(trainer.seed)})
        self.run_id = run.info.run_id
        spec = _spec_dict(trainer)
        if spec is not None:
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in flatten(spec).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self._client.log_batch(self.run_id, params=params[start : start + 100])
            self._client.log_text(self.run_id, _spec_yaml(trainer), "spec.yaml")

    def log_scalar(self, tag: str, value: float, step: int, task: int | None, epoch: int | None) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(tag, value, int(time.time() * 1000), step))

    def _flush(self) -> None:
        if self._pending and self._client is not None:
            for start in range(0, len(self._pending), 1000):
                self._client.log_batch(self.run_id, metrics=self._pending[start : start + 1000])
            self._pending = []

    def on_task_end(self, trainer: ContinualTrainer, task: int) -> None:
        super().on_task_end(trainer, task)
        self._flush()

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        super().on_fit_end(trainer)
        self._flush()
        self._client.set_terminated(self.run_id, status="FINISHED")

    def on_exception(self, trainer: ContinualTrainer, exception: BaseException) -> None:
        if self._client is None or self.run_id is None:
            return
        self._flush()
        status = "KILLED" if isinstance(exception, KeyboardInterrupt) else "FAILED"
        self._client.set_terminated(self.run_id, status=status)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")


class WandbLogger(ScalarLogger):
    """Weights & Biases run: the spec as config, per-task accuracies and losses, summary metrics (offline by default)."""

    name = "wandb"

    class Params(Params):
        project: str = Field("clgym", description="W&B project.")
        mode: Literal["offline", "online", "disabled"] = Field(
            "offline", description="offline (files in RUN_DIR/wandb; `wandb sync` uploads them later), online or disabled."
        )
        entity: str | None = Field(None, description="W&B entity (team or user); your default when unset.")
        run_name: str | None = Field(None, description="W&B run name (the run directory's name when unset).")
        dir: str | None = Field(None, description="Folder for W&B's files, relative to the run directory (the run directory).")

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        _require("wandb", "wandb", self.name)
        self._run: Any = None
        self.run_id: str | None = None

    def setup(self, trainer: ContinualTrainer) -> None:
        import wandb

        folder = log_folder(trainer, self.params.dir, ".", self.name)
        if folder is None:
            warnings.warn(f"callback {self.name}: no folder to write to (set params.dir); logging nothing",
                          stacklevel=2)
            return
        folder.mkdir(parents=True, exist_ok=True)
        name = self.params.run_name or (Path(trainer.run_dir).name if trainer.run_dir is not None else None)
        self._run = wandb.init(
            project=self.params.project, entity=self.params.entity, name=name, dir=str(folder),
            mode=self.params.mode, config=_spec_dict(trainer) or {}, id=self.run_id,
            resume="allow" if self.run_id is not None else None, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run_id = self._run.id

    def log_scalar(self, tag: str, value: float, step: int, task: int | None, epoch: int | None) -> None:
        if self._run is not None:
            self._run.log({tag: value}, step=step)

    def on_fit_end(self, trainer: ContinualTrainer) -> None:
        super().on_fit_end(trainer)
        if self._run is not None:
            for key, value in trainer.summary().items():
                self._run.summary[key] = value

    def on_exception(self, trainer: ContinualTrainer, exception: BaseException) -> None:
        if self._run is not None:
            self._run.finish(exit_code=130 if isinstance(exception, KeyboardInterrupt) else 1)
            self._run = None

    def teardown(self, trainer: ContinualTrainer) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")


LOGGERS = [CSVLogger, JSONLinesLogger, TensorBoardLogger, MLflowLogger, WandbLogger]
DEFAULT_LOGGERS = [CSVLogger, JSONLinesLogger]
