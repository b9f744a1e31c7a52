"""From one subject's recordings to labelled windows with a leak-free train/test split.

The steps, each vectorised (no Python loop per sample or per window):

1. **Segments**: maximal runs of rows with one activity label and continuous
   time (consecutive timestamps one sample period apart). Transient rows
   (activity 0) and activities not wanted end a segment, so a window never
   spans two activities or a pause.
2. **Split by time**: for each activity, the last ``test_fraction`` of its
   samples (in time order, over all its segments) is test data and the rest
   is training data; the segment holding the cut is cut in two. Windows are
   cut out of each block separately, so no window, and no sample, is shared
   by the two splits, and every activity a subject performed long enough
   appears in both.
3. **Fill**: missing values (``NaN``) are filled along time within each block
   and each channel: forward fill, then backward fill for a block's leading
   gap (or linear interpolation). A value is never taken from another channel
   or from the other split. A channel missing for a whole block stays ``NaN``
   and becomes the training mean (0) after normalisation.
4. **Windows**: ``window_length`` samples every ``step`` samples, by
   ``Tensor.unfold`` per block; a block shorter than a window gives none.
5. **Statistics**: per activity, the count, sum and sum of squares of each
   channel over the training blocks, so the benchmark can normalise with
   training statistics of any set of subjects and activities.

The original CL-Gym loader forward-filled along the channel axis, let the
window stride drift, ignored activity boundaries and split overlapping
windows at random between train and test; this module does none of that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clgym_pamap2.dataset import SAMPLING_HZ


@dataclass(frozen=True)
class Block:
    """Rows ``start:stop`` of one recording, all of one activity, in one split."""

    recording: int
    start: int
    stop: int
    activity: int
    test: bool

    def __len__(self) -> int:
        return self.stop - self.start


def window_step(window_length: int, overlap: float) -> int:
    """Samples between window starts: the window length less the overlap, at least 1."""
    return max(1, window_length - int(round(window_length * overlap)))


def num_windows(length: int, window_length: int, step: int) -> int:
    """Windows ``unfold`` cuts from a block of ``length`` samples."""
    return 0 if length < window_length else (length - window_length) // step + 1


def segments(timestamps: np.ndarray, activities: np.ndarray, keep: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, stop, activity)`` of every maximal run of one activity in ``keep`` in continuous time."""
    n = len(timestamps)
    if n == 0:
        return []
    period = 1.0 / SAMPLING_HZ
    dt = np.diff(timestamps)
    breaks = (activities[1:] != activities[:-1]) | (dt > 1.5 * period) | (dt <= 0)
    starts = np.concatenate([[0], np.flatnonzero(breaks) + 1])
    stops = np.concatenate([starts[1:], [n]])
    labels = activities[starts].astype(np.int64)
    kept = np.isin(labels, keep)
    return [(int(a), int(b), int(c)) for a, b, c in zip(starts[kept], stops[kept], labels[kept])]


def split_by_time(runs: list[tuple[int, int, int, int]], test_fraction: float) -> list[Block]:
    """Cut each activity's time-ordered runs ``(recording, start, stop, activity)`` into train then test blocks.

    The first ``round((1 - test_fraction) * total)`` samples of an activity are
    training data, the rest test data.
    """
    blocks: list[Block] = []
    for activity in sorted({r[3] for r in runs}):
        mine = [r for r in runs if r[3] == activity]
        total = sum(stop - start for _, start, stop, _ in mine)
        train_left = int(round((1.0 - test_fraction) * total))
        for recording, start, stop, _ in mine:
            length = stop - start
            take = min(max(train_left, 0), length)
            if take > 0:
                blocks.append(Block(recording, start, start + take, activity, False))
            if take < length:
                blocks.append(Block(recording, start + take, stop, activity, True))
            train_left -= take
    return blocks


def fill_missing(x: np.ndarray, method: str = "ffill") -> np.ndarray:
    """Fill ``NaN`` along axis 0 (time), separately for every column (channel).

    ``ffill``: the last earlier value of the same channel, and for a leading gap
    the first later one. ``linear``: linear interpolation in time between the
    neighbouring values of the same channel, constant beyond the ends. Columns
    with no value at all stay ``NaN``.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    if x.ndim != 2 or x.shape[0] == 0:
        return x
    valid = ~np.isnan(x)
    if valid.all():
        return x
    rows = np.arange(x.shape[0])[:, None]
    if method == "linear":
        for c in np.flatnonzero(~valid.all(axis=0)):  # a loop over channels, not samples
            known = np.flatnonzero(valid[:, c])
            if len(known):
                x[:, c] = np.interp(np.arange(x.shape[0]), known, x[known, c])
        return x
    if method != "ffill":
        raise ValueError(f"unknown fill method {method!r}")
    cols = np.arange(x.shape[1])[None, :]
    last = np.maximum.accumulate(np.where(valid, rows, 0), axis=0)
    x = x[last, cols]
    valid = ~np.isnan(x)
    # Leading gaps: take the first later value (a forward fill of the time-reversed block).
    n = x.shape[0]
    nxt = np.minimum.accumulate(np.where(valid, rows, n - 1)[::-1], axis=0)[::-1]
    return x[nxt, cols]


@dataclass
class SubjectWindows:
    """Everything kept for one subject (what the cache stores)."""

    windows: torch.Tensor  # float32 [N, C, L], filled, not normalised (NaN only where a block lacked a channel)
    activities: torch.Tensor  # int64 [N], PAMAP2 activity ids
    test: torch.Tensor  # bool [N], True for windows of the test split
    stat_activities: torch.Tensor  # int64 [A]
    stat_count: torch.Tensor  # float64 [A, C]: training samples with a value, per activity and channel
    stat_sum: torch.Tensor  # float64 [A, C]
    stat_sumsq: torch.Tensor  # float64 [A, C]

    def to_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, torch.Tensor]) -> SubjectWindows:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def problem(self, num_channels: int, window_length: int) -> str | None:
        """Why these cannot be windows of ``num_channels`` x ``window_length`` as built here, or None.

        A cache file that loads but holds something else (damaged, foreign, edited)
        is rebuilt instead of failing later with a shape error.
        """
        fields = self.to_dict()
        wrong = [name for name, value in fields.items() if not isinstance(value, torch.Tensor)]
        if wrong:
            return f"{', '.join(wrong)} not tensors"
        n, a = self.windows.shape[0] if self.windows.ndim else -1, self.stat_activities.shape[0]
        expected = {
            "windows": ((n, num_channels, window_length), torch.float32),
            "activities": ((n,), torch.long),
            "test": ((n,), torch.bool),
            "stat_activities": ((a,), torch.long),
            "stat_count": ((a, num_channels), torch.float64),
            "stat_sum": ((a, num_channels), torch.float64),
            "stat_sumsq": ((a, num_channels), torch.float64),
        }
        for name, (shape, dtype) in expected.items():
            value = fields[name]
            if tuple(value.shape) != shape or value.dtype != dtype:
                return f"{name} is {value.dtype} {tuple(value.shape)}, expected {dtype} {shape}"
        if torch.isinf(self.windows).any():
            return "windows hold infinite values"
        return None


def channels_without_values(data: SubjectWindows, activities: list[int] | tuple[int, ...]) -> list[int]:
    """Indices of the channels that have no value (all ``NaN``) in any training window of ``activities``.

    Empty when the subject has no training window of these activities at all
    (that is a subject too small, not a subject without a sensor).
    """
    mask = torch.isin(data.activities, torch.tensor(list(activities), dtype=torch.long)) & ~data.test
    if not bool(mask.any()):
        return []
    missing = torch.isnan(data.windows[mask]).all(dim=2).all(dim=0)
    return torch.nonzero(missing).flatten().tolist()


def subject_windows(
    recordings: list[np.ndarray],
    columns: list[int],
    activities: list[int] | tuple[int, ...],
    window_length: int,
    step: int,
    test_fraction: float,
    fill: str = "ffill",
) -> SubjectWindows:
    """Windows, labels, split and training statistics of one subject's recordings (see the module docstring)."""
    runs: list[tuple[int, int, int, int]] = []
    keep = np.asarray(sorted(activities), dtype=np.int64)
    for index, values in enumerate(recordings):
        for start, stop, activity in segments(values[:, 0], values[:, 1], keep):
            runs.append((index, start, stop, activity))
    blocks = split_by_time(runs, test_fraction)
    num_channels = len(columns)
    stat_acts = sorted({b.activity for b in blocks})
    row_of = {a: i for i, a in enumerate(stat_acts)}
    count = np.zeros((len(stat_acts), num_channels))
    total = np.zeros((len(stat_acts), num_channels))
    total_sq = np.zeros((len(stat_acts), num_channels))
    windows, labels, is_test = [], [], []
    for block in blocks:  # tens of blocks per subject
        x = fill_missing(recordings[block.recording][block.start:block.stop, columns], fill)
        if not block.test:
            present = ~np.isnan(x)
            row = row_of[block.activity]
            count[row] += present.sum(axis=0)
            total[row] += np.where(present, x, 0.0).sum(axis=0)
            total_sq[row] += np.where(present, x * x, 0.0).sum(axis=0)
        n = num_windows(len(block), window_length, step)
        if n == 0:
            continue
        # unfold(0, L, step) on [T, C] gives [n, C, L]: channels first, as Conv1d wants.
        w = torch.from_numpy(x.astype(np.float32)).unfold(0, window_length, step)
        windows.append(w)
        labels.append(torch.full((n,), block.activity, dtype=torch.long))
        is_test.append(torch.full((n,), block.test, dtype=torch.bool))
    if windows:
        stacked = torch.cat(windows).contiguous()
    else:
        stacked = torch.zeros((0, num_channels, window_length), dtype=torch.float32)
    return SubjectWindows(
        windows=stacked,
        activities=torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
        test=torch.cat(is_test) if is_test else torch.zeros(0, dtype=torch.bool),
        stat_activities=torch.tensor(stat_acts, dtype=torch.long),
        stat_count=torch.from_numpy(count),
        stat_sum=torch.from_numpy(total),
        stat_sumsq=torch.from_numpy(total_sq),
    )


def channel_statistics(parts: list[tuple[SubjectWindows, list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per channel over the training samples of the given (subject, activities).

    A channel with no spread (or no value) gets standard deviation 1.
    """
    count = total = total_sq = None
    for data, acts in parts:
        rows = torch.isin(data.stat_activities, torch.tensor(acts, dtype=torch.long))
        c, s, q = (t[rows].sum(dim=0) for t in (data.stat_count, data.stat_sum, data.stat_sumsq))
        count = c if count is None else count + c
        total = s if total is None else total + s
        total_sq = q if total_sq is None else total_sq + q
    if count is None:
        raise ValueError("no data to compute statistics from")
    safe = count.clamp(min=1)
    mean = total / safe
    var = (total_sq / safe - mean * mean).clamp(min=0)
    std = var.sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    mean = torch.where(count > 0, mean, torch.zeros_like(mean))
    return mean.float(), std.float()
