"""The PAMAP2 benchmark: continual human-activity recognition from wearable IMUs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from clgym_core.benchmark import Benchmark, BenchmarkParams, Split
from clgym_core.component import Params
from clgym_core.data import TaskData
from clgym_core.errors import DataError
from clgym_pamap2 import cache, dataset
from clgym_pamap2.dataset import (
    ACTIVITIES,
    CHANNEL_COLUMNS,
    DEFAULT_CHANNELS,
    OPTIONAL_ACTIVITIES,
    PROTOCOL_ACTIVITIES,
    SUBJECTS,
)
from clgym_pamap2.preprocess import (
    SubjectWindows,
    channel_statistics,
    channels_without_values,
    subject_windows,
    window_step,
)


class PAMAP2Params(BenchmarkParams):
    num_tasks: int | None = Field(
        None, ge=1,
        description="Tasks. new_instances: the first subjects of the order (default: all of `subjects`); "
        "new_classes: activity groups (default: all activities / classes_per_task).",
    )
    scenario: Literal["new_instances", "new_classes"] = Field(
        "new_instances",
        description="new_instances: one task per subject, one shared head of all activities; "
        "new_classes: activities split into tasks, all subjects pooled.",
    )
    root: str | None = Field(
        None, description="Folder holding PAMAP2_Dataset/Protocol/ (default: $CLGYM_DATA, else ./data)."
    )
    download: bool = Field(False, description="Download and extract the UCI archive into root when it is missing.")
    download_sha256: str | None = Field(
        None, description="Pin the sha256 of the downloaded archive (UCI publishes none; unchecked when unset)."
    )
    subjects: list[int] = Field(list(SUBJECTS), description="Subject ids (101..109) to use, in order.")
    shuffle_subjects: bool = Field(False, description="Order the subjects at random from `seed` (else as listed).")
    include_optional: bool = Field(
        False, description="Also read the Optional/ recordings (subjects 101, 105, 106, 108, 109)."
    )
    activities: list[int] | None = Field(
        None,
        description="Activity ids to keep, in class order (default: the 12 protocol activities, "
        "or all 18 with include_optional).",
    )
    classes_per_task: int = Field(2, ge=1, description="Activities per task (new_classes).")
    shuffle_classes: bool = Field(False, description="Order the activities at random from `seed` (new_classes).")
    heads: Literal["single", "multi"] = Field(
        "single", description="One shared head, or one head per task (task-incremental)."
    )
    channels: list[str] = Field(
        list(DEFAULT_CHANNELS),
        description="Channels or groups: heart_rate, IMU_SENSOR[_AXIS] (e.g. ankle_gyro_x, chest_acc16), "
        "SENSOR for all IMUs (gyro) or IMU for all its sensors (ankle). "
        "Default: ±16 g accelerometer and gyroscope of the 3 IMUs (18).",
    )
    window_length: int = Field(256, ge=2, description="Samples per window (100 Hz: 256 = 2.56 s).")
    window_overlap: float = Field(0.5, ge=0.0, lt=1.0, description="Overlap of consecutive windows (fraction).")
    test_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="Last fraction of each activity's time per subject used as test data."
    )
    fill: Literal["ffill", "linear"] = Field(
        "ffill", description="Missing values along time per channel: forward fill, or linear interpolation."
    )
    normalize: Literal["global", "per_task", "none"] = Field(
        "global",
        description="Per-channel standardisation with training-split statistics of all tasks, of each task, "
        "or none (raw units; a value still missing after filling becomes 0).",
    )
    min_windows: int = Field(1, ge=1, description="Windows a subject needs in each split (new_instances).")
    small_subjects: Literal["error", "skip"] = Field(
        "error", description="A subject below min_windows: stop with an error, or skip it (next subject takes its place)."
    )
    cache: bool = Field(True, description="Cache the preprocessed windows on disk.")
    cache_dir: str | None = Field(None, description="Cache folder (default: $XDG_CACHE_HOME/clgym or ~/.cache/clgym).")

    @field_validator("subjects")
    @classmethod
    def _known_subjects(cls, value: list[int]) -> list[int]:
        unknown = [s for s in value if s not in SUBJECTS]
        if unknown:
            raise ValueError(f"unknown subject(s) {unknown}; PAMAP2 has 101..109")
        if len(set(value)) != len(value) or not value:
            raise ValueError("list each subject once, at least one")
        return value

    @field_validator("activities")
    @classmethod
    def _known_activities(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        unknown = [a for a in value if a not in ACTIVITIES]
        if unknown:
            raise ValueError(f"unknown activity id(s) {unknown}; PAMAP2 has {sorted(ACTIVITIES)} (0 is transient)")
        if len(set(value)) != len(value) or not value:
            raise ValueError("list each activity once, at least one")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        dataset.resolve_channels(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PAMAP2Params:
        acts = resolved_activities(self)
        optional = [a for a in acts if a in OPTIONAL_ACTIVITIES]
        if optional and not self.include_optional:
            raise ValueError(f"activities {optional} occur only in the Optional/ recordings; set include_optional")
        if self.scenario == "new_instances" and self.num_tasks is not None and self.num_tasks > len(self.subjects):
            raise ValueError(f"num_tasks {self.num_tasks} exceeds the {len(self.subjects)} subjects listed")
        if self.scenario == "new_classes":
            tasks = self.num_tasks or len(acts) // self.classes_per_task
            if tasks < 1 or tasks * self.classes_per_task > len(acts):
                raise ValueError(
                    f"{tasks} task(s) of {self.classes_per_task} activities need more than the {len(acts)} activities"
                )
        return self


def _describe_channels(channels: list[str]) -> str:
    """Channel names for a message, with the three axes of one sensor shortened to the sensor (``hand_gyro``)."""
    out: list[str] = []
    for name in channels:
        sensor, _, axis = name.rpartition("_")
        if axis in ("x", "y", "z") and sensor and all(f"{sensor}_{a}" in channels for a in "xyz"):
            if sensor not in out:
                out.append(sensor)
        else:
            out.append(name)
    return ", ".join(out)


def resolved_activities(params: PAMAP2Params) -> list[int]:
    if params.activities is not None:
        return list(params.activities)
    return sorted(PROTOCOL_ACTIVITIES + (OPTIONAL_ACTIVITIES if params.include_optional else ()))


class PAMAP2(Benchmark):
    """PAMAP2 activity recognition from 3 wearable IMUs: one task per subject, or activities split into tasks.

    The time-series benchmark of CL-Gym (Mirzadeh & Ghasemzadeh 2021, Sec. 3.1)
    on the PAMAP2 Physical Activity Monitoring data (Reiss & Stricker 2012,
    UCI #231): 9 subjects wearing IMUs on hand, chest and ankle at 100 Hz
    performed a protocol of 12 activities (and some of them 6 optional ones).

    Scenarios (``scenario``):

    - ``new_instances`` (the paper's): task *t* is subject *t* of the order,
      every task classifies the same activities with one shared head, so tasks
      differ by who moves, not what. A subject need not perform every activity
      (subject 109 did little of the protocol).
    - ``new_classes``: the activities, in order (or shuffled by ``seed``), are
      cut into groups of ``classes_per_task``; task *t* holds all subjects'
      windows of its group. ``heads: single`` is class-incremental (targets
      are positions in the class order), ``multi`` task-incremental.

    Inputs are float32 windows ``[channels, window_length]`` (channels first,
    for Conv1d); targets are class indices. Preprocessing (see
    :mod:`clgym_pamap2.preprocess`): activity 0 dropped, windows never cross an
    activity change or a time gap, each subject's activities split by time
    (last ``test_fraction`` is test) so overlapping windows never straddle the
    split, missing values filled along time per channel, per-channel
    standardisation with training statistics only. Windows are cached on disk
    per subject, keyed by the preprocessing params and the files' sizes/mtimes.

    Deliberate differences from CL-Gym's loader: all 9 subjects (it used 8 from
    its own CSV export); a time-block split instead of a random split of
    overlapping windows (which leaks test samples into training); standardised
    inputs instead of raw values divided by 10; subject order fixed unless
    ``shuffle_subjects``.
    """

    name = "pamap2"
    Params: ClassVar[type[Params]] = PAMAP2Params
    problem = "classification"
    scenario = "new_instances"

    def __init__(self, params: Params | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        self.scenario = p.scenario  # type: ignore[misc]  # per instance: the param picks it
        self.channels: list[str] = dataset.resolve_channels(p.channels)
        self.activities: list[int] = resolved_activities(p)
        self._subjects: dict[int, SubjectWindows] = {}
        self.task_subjects: list[int] = []
        self._stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- description ---------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        p = self.params
        if p.num_tasks is not None:
            return int(p.num_tasks)
        if p.scenario == "new_instances":
            return len(p.subjects)
        return len(self.activities) // p.classes_per_task

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.channels), int(self.params.window_length))

    @property
    def num_heads(self) -> int:
        return self.num_tasks if self.params.heads == "multi" else 1

    @property
    def head_size(self) -> int:
        p = self.params
        if p.scenario == "new_instances":
            return len(self.activities)
        return p.classes_per_task if p.heads == "multi" else p.classes_per_task * self.num_tasks

    @property
    def subject_order(self) -> list[int]:
        """The listed subjects, shuffled by ``seed`` when ``shuffle_subjects``."""
        subjects = list(self.params.subjects)
        if self.params.shuffle_subjects:
            subjects = [subjects[i] for i in torch.randperm(len(subjects), generator=self.generator("subjects"))]
        return subjects

    @property
    def class_order(self) -> list[int]:
        """Activity ids in class order (new_classes: shuffled by ``seed`` when ``shuffle_classes``)."""
        acts = list(self.activities)
        if self.params.scenario == "new_classes" and self.params.shuffle_classes:
            acts = [acts[i] for i in torch.randperm(len(acts), generator=self.generator("classes"))]
        return acts

    def task_activities(self, task: int) -> list[int]:
        """Activity ids that task ``task`` holds."""
        task = self.check_task(task)
        if self.params.scenario == "new_instances":
            return list(self.activities)
        k = self.params.classes_per_task
        return self.class_order[(task - 1) * k: task * k]

    # ---- data -----------------------------------------------------------------------------------
    def dataset_dir(self) -> Path:
        """The ``PAMAP2_Dataset`` folder, downloaded first when asked and missing."""
        p = self.params
        root = Path(p.root).expanduser() if p.root else dataset.default_root()
        found = dataset.find_dataset_dir(root)
        if found is None and p.download:
            found = dataset.download(root, p.download_sha256)
        if found is None:
            raise DataError(
                f"pamap2: no PAMAP2_Dataset/Protocol/ folder under {root}; set benchmark.params.root (or "
                "$CLGYM_DATA) to the extracted UCI release, or download: true"
            )
        return found

    def _preprocessing(self) -> dict[str, Any]:
        p = self.params
        return {
            "columns": [CHANNEL_COLUMNS[c] for c in self.channels],
            "window_length": p.window_length,
            "step": window_step(p.window_length, p.window_overlap),
            "test_fraction": p.test_fraction,
            "fill": p.fill,
        }

    def load_subject(self, subject: int, folder: Path | None = None) -> SubjectWindows:
        """The preprocessed windows of ``subject`` (every activity), from the cache when it is fresh."""
        if subject in self._subjects:
            return self._subjects[subject]
        p = self.params
        files = dataset.recording_files(folder or self.dataset_dir(), subject, p.include_optional)
        pre = self._preprocessing()
        path = None
        data = None
        if p.cache:
            key = cache.cache_key(pre, dataset.file_fingerprint(files))
            base = Path(p.cache_dir).expanduser() if p.cache_dir else cache.default_cache_dir()
            path = base / "pamap2" / f"subject{subject}-{key}.pt"
            data = cache.load(path)
            problem = None if data is None else data.problem(len(pre["columns"]), pre["window_length"])
            if problem is not None:
                warnings.warn(f"pamap2: ignoring cache file {path} ({problem}); rebuilding it", stacklevel=2)
                data = None
        if data is None:
            recordings = [dataset.read_recording(f) for f in files]
            data = subject_windows(
                recordings, pre["columns"], tuple(ACTIVITIES), pre["window_length"], pre["step"],
                pre["test_fraction"], pre["fill"],
            )
            if path is not None:
                cache.save(path, data)
        self._check_channels(subject, data, files)
        self._subjects[subject] = data
        return data

    def _check_channels(self, subject: int, data: SubjectWindows, files: list[Path]) -> None:
        """Refuse a subject none of whose selected channels has a value; warn about the channels it lacks.

        A subject that lost a sensor (an IMU's batteries, its radio link) is real
        data: the run goes on, its missing channels become the training mean,
        and the warning says so. A subject with no value in any selected channel
        would be a task the model can only guess (it would score at chance and
        pass for forgetting), so it is an error.
        """
        missing = [self.channels[i] for i in channels_without_values(data, self.activities)]
        if not missing:
            return
        where = ", ".join(f.name if f.parent.name == "Protocol" else f"{f.parent.name}/{f.name}" for f in files)
        if len(missing) == len(self.channels):
            raise DataError(
                f"pamap2: subject {subject}: every selected channel ({_describe_channels(missing)}) is missing "
                f"(NaN) throughout its training data in {where}; its task could only score at chance: drop "
                "it from benchmark.params.subjects or select other channels"
            )
        warnings.warn(
            f"pamap2: subject {subject}: channels {_describe_channels(missing)} are missing (NaN) throughout its "
            f"training data in {where}; they are filled with the training mean (drop the subject from "
            "benchmark.params.subjects, or the channels from channels, to avoid this)",
            stacklevel=2,
        )

    def _split_counts(self, data: SubjectWindows, acts: list[int]) -> tuple[int, int]:
        mask = torch.isin(data.activities, torch.tensor(acts, dtype=torch.long))
        test = int((mask & data.test).sum())
        return int(mask.sum()) - test, test

    def prepare_datasets(self) -> None:
        p = self.params
        folder = self.dataset_dir()
        if p.scenario == "new_instances":
            chosen: list[int] = []
            for subject in self.subject_order:
                if len(chosen) == self.num_tasks:
                    break
                train, test = self._split_counts(self.load_subject(subject, folder), self.activities)
                if min(train, test) >= p.min_windows:
                    chosen.append(subject)
                elif p.small_subjects == "error":
                    raise DataError(
                        f"pamap2: subject {subject} has {train} training and {test} test windows, fewer than "
                        f"min_windows {p.min_windows}; drop it from subjects or set small_subjects: skip"
                    )
            if len(chosen) < self.num_tasks:
                raise DataError(
                    f"pamap2: only {len(chosen)} of the subjects have min_windows {p.min_windows} windows per split, "
                    f"but num_tasks is {self.num_tasks}; lower num_tasks or min_windows"
                )
            self.task_subjects = chosen
            parts = {t: [(self._subjects[s], self.activities)] for t, s in enumerate(chosen, 1)}
        else:
            for subject in p.subjects:
                self.load_subject(subject, folder)
            self.task_subjects = list(p.subjects)
            parts = {
                t: [(self._subjects[s], self.task_activities(t)) for s in p.subjects]
                for t in range(1, self.num_tasks + 1)
            }
        self._stats = {}
        if p.normalize == "global":
            stats = channel_statistics([part for task_parts in parts.values() for part in task_parts])
            self._stats = dict.fromkeys(parts, stats)
        elif p.normalize == "per_task":
            self._stats = {t: channel_statistics(task_parts) for t, task_parts in parts.items()}

    def normalization(self, task: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-channel (mean, std) applied to ``task``'s inputs (None when ``normalize: none``)."""
        self.ensure_prepared()
        return self._stats.get(self.check_task(task))

    def build_task(self, task: int, split: Split) -> TaskData:
        p = self.params
        acts = self.task_activities(task)
        subjects = [self.task_subjects[task - 1]] if p.scenario == "new_instances" else self.task_subjects
        lookup = torch.full((max(ACTIVITIES) + 1,), -1, dtype=torch.long)
        if p.scenario == "new_instances":
            lookup[torch.tensor(self.activities)] = torch.arange(len(self.activities))
        elif p.heads == "multi":
            lookup[torch.tensor(acts)] = torch.arange(len(acts))
        else:
            order = self.class_order[: p.classes_per_task * self.num_tasks]
            lookup[torch.tensor(order)] = torch.arange(len(order))
        wanted = torch.tensor(acts, dtype=torch.long)
        inputs, targets = [], []
        for subject in subjects:
            data = self._subjects[subject]
            mask = torch.isin(data.activities, wanted) & (data.test == (split == "test"))
            inputs.append(data.windows[mask])
            targets.append(lookup[data.activities[mask]])
        x = torch.cat(inputs)
        y = torch.cat(targets)
        if len(y) == 0:
            who = f"subject {subjects[0]}" if len(subjects) == 1 else "the subjects"
            raise DataError(f"pamap2: task {task} ({who}, activities {acts}) has no {split} windows")
        stats = self._stats.get(task)
        if stats is not None:
            mean, std = stats
            x = (x - mean[None, :, None]) / std[None, :, None]
        else:
            x = x.clone()
        x = torch.nan_to_num_(x, nan=0.0)  # a channel missing for a whole block: the training mean
        return TaskData.for_task(x.contiguous(), y, task)
