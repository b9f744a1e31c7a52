"""Golden values for clgym_core.metrics, worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from clgym_core import metrics

# Rows: 0 = untrained, i = after training task i. Columns: tasks 1..3.
# Task 2 scores 99 after task 1 (before it is trained), more than at any point after it is learned,
# so CL-Gym's Eq. 2 (max over rows 1..T-1) and Chaudhry's forgetting (rows i..T-1) disagree.
ACC = [
    [10.0, 20.0, 30.0],
    [90.0, 99.0, 40.0],
    [70.0, 95.0, 50.0],
    [80.0, 85.0, 92.0],
]

# Lower is better; task 2's loss is lowest (0.2) after task 1, before it is trained.
LOSS = [
    [2.0, 2.5, 3.0],
    [0.5, 0.2, 2.0],
    [0.9, 0.3, 1.5],
    [0.7, 0.6, 0.1],
]


def test_average_accuracy_is_mean_of_last_row():
    # (80 + 85 + 92) / 3 = 257 / 3
    assert metrics.average_accuracy(ACC) == pytest.approx(257 / 3)


def test_average_forgetting_follows_printed_eq2():
    # task 1: max(a11=90, a21=70) - a31=80 = 10
    # task 2: max(a12=99, a22=95) - a32=85 = 14   (row 1 counts although task 2 was not yet trained)
    # (10 + 14) / 2 = 12
    assert metrics.average_forgetting(ACC) == pytest.approx(12.0)


def test_chaudhry_forgetting_starts_at_the_learned_row():
    # task 1: max(a11=90, a21=70) - 80 = 10
    # task 2: max(a22=95) - 85 = 10   (a12=99 is before task 2 was trained: ignored)
    # (10 + 10) / 2 = 10
    assert metrics.chaudhry_forgetting(ACC) == pytest.approx(10.0)


def test_forgetting_is_not_clipped_at_zero():
    # T = 2, task 1 ends higher than it ever was: max(a11=50) - a21=70 = -20 in both formulas.
    # (CL-Gym's code would also take a21 into the max and report 0.)
    a = [[0.0, 0.0], [50.0, 10.0], [70.0, 90.0]]
    assert metrics.average_forgetting(a) == pytest.approx(-20.0)
    assert metrics.chaudhry_forgetting(a) == pytest.approx(-20.0)


def test_backward_transfer():
    # ((a31 - a11) + (a32 - a22)) / 2 = ((80 - 90) + (85 - 95)) / 2 = -10
    assert metrics.backward_transfer(ACC) == pytest.approx(-10.0)


def test_forward_transfer_uses_untrained_row():
    # ((a12 - b2) + (a23 - b3)) / 2 = ((99 - 20) + (50 - 30)) / 2 = (79 + 20) / 2 = 49.5
    assert metrics.forward_transfer(ACC) == pytest.approx(49.5)


def test_learning_accuracy_is_mean_of_diagonal():
    # (a11 + a22 + a33) / 3 = (90 + 95 + 92) / 3 = 277 / 3
    assert metrics.learning_accuracy(ACC) == pytest.approx(277 / 3)


def test_single_task():
    a = [[10.0], [90.0]]
    assert metrics.average_accuracy(a) == pytest.approx(90.0)
    assert metrics.learning_accuracy(a) == pytest.approx(90.0)
    for fn in (metrics.average_forgetting, metrics.chaudhry_forgetting, metrics.backward_transfer,
               metrics.forward_transfer, metrics.average_loss_forgetting, metrics.loss_backward_transfer,
               metrics.loss_forward_transfer):
        assert fn(a) == 0.0
    assert metrics.summarize(a) == {
        "average_accuracy": 90.0,
        "average_forgetting": 0.0,
        "chaudhry_forgetting": 0.0,
        "backward_transfer": 0.0,
        "forward_transfer": 0.0,
        "learning_accuracy": 90.0,
    }


def test_no_forgetting_no_transfer():
    # Every task at 100 once learned and 0 before: nothing forgotten, BWT 0, FWT 0 (all b_i = 0).
    a = [[0, 0, 0], [100, 0, 0], [100, 100, 0], [100, 100, 100]]
    assert metrics.average_forgetting(a) == 0.0
    assert metrics.chaudhry_forgetting(a) == 0.0
    assert metrics.backward_transfer(a) == 0.0
    assert metrics.forward_transfer(a) == 0.0
    assert metrics.average_accuracy(a) == 100.0


def test_average_loss():
    # (0.7 + 0.6 + 0.1) / 3 = 1.4 / 3
    assert metrics.average_loss(LOSS) == pytest.approx(1.4 / 3)


def test_average_loss_forgetting_mirrors_eq2():
    # task 1: l31 - min(l11=0.5, l21=0.9) = 0.7 - 0.5 = 0.2
    # task 2: l32 - min(l12=0.2, l22=0.3) = 0.6 - 0.2 = 0.4   (row 1 counts, as in Eq. 2)
    # (0.2 + 0.4) / 2 = 0.3
    assert metrics.average_loss_forgetting(LOSS) == pytest.approx(0.3)


def test_loss_backward_transfer_positive_means_better():
    # ((l11 - l31) + (l22 - l32)) / 2 = ((0.5 - 0.7) + (0.3 - 0.6)) / 2 = -0.25: old tasks got worse
    assert metrics.loss_backward_transfer(LOSS) == pytest.approx(-0.25)
    # Loss dropping on task 1 after task 2 (0.5 -> 0.4) is positive transfer: (0.5 - 0.4) / 1 = 0.1
    assert metrics.loss_backward_transfer([[1.0, 1.0], [0.5, 0.9], [0.4, 0.2]]) == pytest.approx(0.1)


def test_loss_forward_transfer():
    # ((b2 - l12) + (b3 - l23)) / 2 = ((2.5 - 0.2) + (3.0 - 1.5)) / 2 = (2.3 + 1.5) / 2 = 1.9
    assert metrics.loss_forward_transfer(LOSS) == pytest.approx(1.9)


def test_learning_loss():
    # (l11 + l22 + l33) / 3 = (0.5 + 0.3 + 0.1) / 3 = 0.3
    assert metrics.learning_loss(LOSS) == pytest.approx(0.3)


def test_summarize_accuracy_keys_and_values():
    summary = metrics.summarize(ACC)
    assert list(summary) == [
        "average_accuracy", "average_forgetting", "chaudhry_forgetting", "backward_transfer", "forward_transfer",
        "learning_accuracy",
    ]
    assert all(type(v) is float for v in summary.values())
    assert summary == pytest.approx({
        "average_accuracy": 257 / 3,
        "average_forgetting": 12.0,
        "chaudhry_forgetting": 10.0,  # task 2's max starts at row 2 (95), not row 1 (99)
        "backward_transfer": -10.0,
        "forward_transfer": 49.5,
        "learning_accuracy": 277 / 3,
    })


def test_summarize_loss_keys_and_values():
    summary = metrics.summarize(LOSS, kind="loss")
    assert list(summary) == [
        "average_loss", "average_forgetting", "chaudhry_forgetting", "backward_transfer", "forward_transfer",
        "learning_loss",
    ]
    assert all(type(v) is float for v in summary.values())
    assert summary == pytest.approx({
        "average_loss": 1.4 / 3,
        "average_forgetting": 0.3,
        "chaudhry_forgetting": 0.25,  # task 2: 0.6 - l_{2,2} = 0.3 rather than 0.6 - l_{1,2} = 0.4
        "backward_transfer": -0.25,
        "forward_transfer": 1.9,
        "learning_loss": 0.3,
    })


def test_summarize_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be 'accuracy' or 'loss', got 'error'"):
        metrics.summarize(ACC, kind="error")


def test_accepts_arrays_tuples_and_ints():
    as_ints = [[int(v) for v in row] for row in ACC]
    for a in (np.array(ACC), tuple(map(tuple, ACC)), as_ints, np.array(ACC, dtype=np.float32)):
        assert metrics.average_forgetting(a) == pytest.approx(12.0)


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    assert metrics.summarize(torch.tensor(ACC)) == pytest.approx(metrics.summarize(ACC))
    assert metrics.forward_transfer(torch.tensor(ACC, requires_grad=True)) == pytest.approx(49.5)


def test_does_not_modify_input():
    a = np.array(LOSS)
    metrics.summarize(a, kind="loss")
    assert np.array_equal(a, np.array(LOSS))


@pytest.mark.parametrize(
    ("bad", "got"),
    [
        ([[90.0, 80.0], [70.0, 95.0]], r"\(2, 2\) \(one row per task\? row 0 must be the untrained model\)"),
        ([1.0, 2.0], r"\(2,\)"),
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], r"\(2, 3\)$"),
        (np.zeros((1, 0)), r"\(1, 0\)$"),
        (np.zeros((3, 2, 1)), r"\(3, 2, 1\)$"),
        (5.0, r"\(\)$"),
    ],
)
def test_rejects_wrong_shape(bad, got):
    with pytest.raises(ValueError, match=r"^accuracy matrix: expected shape \(T\+1, T\) with T >= 1.*got " + got):
        metrics.average_accuracy(bad)


def test_loss_errors_name_the_loss_matrix():
    with pytest.raises(ValueError, match=r"^loss matrix: expected shape \(T\+1, T\)"):
        metrics.summarize([[1.0]], kind="loss")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_rejects_non_finite(value):
    a = [row[:] for row in ACC]
    a[2][1] = value
    with pytest.raises(ValueError, match=r"^accuracy matrix: values must be finite, got .* at row 2, column 1$"):
        metrics.summarize(a)


@pytest.mark.parametrize("bad", [[[1.0], [2.0, 3.0]], [["a"], ["b"]]])
def test_rejects_non_numeric(bad):
    with pytest.raises(ValueError, match=r"^accuracy matrix: expected a numeric matrix"):
        metrics.average_accuracy(bad)


def test_error_messages_are_one_line():
    for bad in ([[1.0], [2.0, 3.0]], [[1.0, 2.0]], [[float("nan")], [1.0]]):
        with pytest.raises(ValueError) as info:
            metrics.average_accuracy(bad)
        assert "\n" not in str(info.value)
