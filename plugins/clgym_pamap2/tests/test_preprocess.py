from __future__ import annotations

import numpy as np
import pytest
import torch

from clgym_pamap2.preprocess import (
    channel_statistics,
    fill_missing,
    num_windows,
    segments,
    split_by_time,
    subject_windows,
    window_step,
)

nan = np.nan


def test_forward_fill_runs_along_time_per_channel_never_across_channels():
    x = np.array([
        [1.0, 10.0, 100.0],
        [nan, 20.0, nan],
        [nan, nan, nan],
        [4.0, nan, 400.0],
    ])
    out = fill_missing(x, "ffill")
    # CL-Gym's bug (fillna along axis=1) would have put 20.0 into column 0 of row 1.
    np.testing.assert_array_equal(out, [[1, 10, 100], [1, 20, 100], [1, 20, 100], [4, 20, 400]])
    assert np.isnan(x[1, 0]), "the input must not be modified"


def test_leading_gap_takes_the_first_later_value_and_empty_channel_stays_missing():
    x = np.array([[nan, nan, 5.0], [nan, nan, nan], [3.0, nan, 6.0]])
    out = fill_missing(x, "ffill")
    np.testing.assert_array_equal(out[:, 0], [3, 3, 3])
    assert np.isnan(out[:, 1]).all()
    np.testing.assert_array_equal(out[:, 2], [5, 5, 6])


def test_linear_fill_interpolates_in_time():
    x = np.array([[0.0, nan], [nan, 2.0], [nan, nan], [3.0, 8.0]])
    out = fill_missing(x, "linear")
    np.testing.assert_allclose(out[:, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(out[:, 1], [2, 2, 5, 8])


def test_window_step_is_an_integer_fixed_once_so_starts_never_drift():
    assert window_step(256, 0.5) == 128
    assert window_step(100, 0.0) == 100
    assert window_step(10, 0.95) == 1
    # 10 windows of 7 samples with 3 overlapping: starts 0, 4, 8, ... exactly.
    assert num_windows(7 + 9 * 4, 7, window_step(7, 3 / 7)) == 10
    assert num_windows(6, 7, 4) == 0


def test_segments_end_at_activity_changes_time_gaps_and_dropped_labels():
    t = np.round(np.arange(20) * 0.01, 2)
    t[12:] += 1.0  # a pause of one second inside activity 2
    acts = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 5, 5, 0, 1, 1], dtype=float)
    runs = segments(t, acts, np.array([1, 2]))
    assert runs == [(2, 5, 1), (5, 12, 2), (12, 15, 2), (18, 20, 1)]


def test_split_by_time_puts_the_last_fraction_of_each_activity_in_test():
    runs = [(0, 0, 60, 1), (0, 100, 140, 1), (0, 60, 100, 2)]  # activity 1: 100 samples in two runs
    blocks = split_by_time(runs, 0.25)
    act1 = [(b.start, b.stop, b.test) for b in blocks if b.activity == 1]
    assert act1 == [(0, 60, False), (100, 115, False), (115, 140, True)]
    act2 = [(b.start, b.stop, b.test) for b in blocks if b.activity == 2]
    assert act2 == [(60, 90, False), (90, 100, True)]


def _toy_recording(lengths: list[tuple[int, int]]) -> np.ndarray:
    """Columns: time, activity, then channel 2 = row index (a clock), channel 3 = activity id."""
    acts = np.concatenate([np.full(n, a) for a, n in lengths]).astype(float)
    n = len(acts)
    values = np.zeros((n, 4))
    values[:, 0] = np.round(np.arange(n) * 0.01, 2)
    values[:, 1] = acts
    values[:, 2] = np.arange(n)
    values[:, 3] = acts
    return values


def test_windows_are_channels_first_stay_inside_one_activity_and_never_straddle_the_split():
    rec = _toy_recording([(0, 5), (1, 200), (2, 130), (0, 3), (1, 57), (4, 30)])
    data = subject_windows([rec], [2, 3], (1, 2, 4), window_length=16, step=8, test_fraction=0.25)
    w = data.windows
    assert w.dtype == torch.float32 and w.shape[1:] == (2, 16)
    clock, label = w[:, 0, :], w[:, 1, :]
    # One activity per window, and it is the window's label.
    assert torch.equal(label, data.activities[:, None].float().expand_as(label))
    # Consecutive samples: a window never jumps over a transient or a block end.
    assert torch.all(clock[:, 1:] - clock[:, :-1] == 1)
    for act in (1, 2, 4):
        mine = data.activities == act
        train = clock[mine & ~data.test]
        test = clock[mine & data.test]
        if len(test):
            assert train.max() < test.min(), "test must come after training in time, with no shared sample"
    # Window counts from the block lengths: activity 1 has 257 samples (200 + 57): train 193 = 200 - 7, ...
    expected = {
        1: num_windows(193, 16, 8) + num_windows(7, 16, 8) + num_windows(57, 16, 8),
        2: num_windows(98, 16, 8) + num_windows(32, 16, 8),
        4: num_windows(22, 16, 8) + num_windows(8, 16, 8),
    }
    for act, count in expected.items():
        assert int((data.activities == act).sum()) == count


def test_statistics_come_from_training_blocks_only():
    rec = _toy_recording([(1, 100), (2, 100)])
    rec[75:100, 2] = 1e6  # the test quarter of activity 1 is wild; it must not touch the statistics
    rec[175:200, 2] = -1e6
    data = subject_windows([rec], [2], (1, 2), window_length=10, step=5, test_fraction=0.25)
    mean, std = channel_statistics([(data, [1, 2])])
    train_values = np.concatenate([np.arange(0, 75), np.arange(100, 175)]).astype(float)
    assert mean.item() == pytest.approx(train_values.mean(), rel=1e-6)
    assert std.item() == pytest.approx(train_values.std(), rel=1e-5)
    only_two, _ = channel_statistics([(data, [2])])
    assert only_two.item() == pytest.approx(np.arange(100, 175).mean())


def test_constant_channel_gets_unit_std():
    rec = _toy_recording([(1, 50)])
    data = subject_windows([rec], [3], (1,), window_length=10, step=5, test_fraction=0.2)
    mean, std = channel_statistics([(data, [1])])
    assert mean.item() == 1.0 and std.item() == 1.0
