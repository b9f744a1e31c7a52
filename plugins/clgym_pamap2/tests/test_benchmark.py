from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from clgym_core.errors import DataError, SpecError
from clgym_pamap2 import PAMAP2, benchmark as benchmark_module
from clgym_pamap2.dataset import CHANNEL_COLUMNS, PROTOCOL_ACTIVITIES
from clgym_pamap2.preprocess import num_windows
from clgym_pamap2.synthetic import recording, standard_plan, write_dat

CLOCK = CHANNEL_COLUMNS["hand_temperature"]
LABEL = CHANNEL_COLUMNS["chest_temperature"]


def _marked(plan, seed):
    """A recording whose hand temperature is the row number and chest temperature the activity id."""
    rows = recording(plan, seed=seed)
    rows[:, CLOCK] = np.arange(len(rows))
    rows[:, LABEL] = rows[:, 1]
    return rows


def _write(root: Path, subject: int, rows: np.ndarray, folder: str = "Protocol") -> Path:
    return write_dat(root / "PAMAP2_Dataset" / folder / f"subject{subject}.dat", rows)


def _marked_bench(root, cache_dir, **params):
    defaults = dict(root=str(root), channels=["hand_temperature", "chest_temperature"], window_length=32,
                    normalize="none", cache_dir=cache_dir)
    return PAMAP2(**{**defaults, **params})


def test_description_needs_no_data():
    bench = PAMAP2(root="/nonexistent")
    assert bench.num_tasks == 9 and bench.num_heads == 1 and bench.head_size == 12
    assert bench.input_shape == (18, 256)
    assert bench.scenario == "new_instances"
    classes = PAMAP2(root="/nonexistent", scenario="new_classes", classes_per_task=3)
    assert classes.scenario == "new_classes" and classes.num_tasks == 4 and classes.head_size == 12
    multi = PAMAP2(root="/nonexistent", scenario="new_classes", heads="multi", include_optional=True)
    assert multi.num_tasks == 9 and multi.num_heads == 9 and multi.head_size == 2


def test_new_instances_one_task_per_subject_with_a_shared_head(make_dataset, cache_dir):
    root = make_dataset({
        101: standard_plan((1, 2, 4), 5.0),
        102: standard_plan((1, 5), 5.0),
        103: standard_plan((2, 24), 5.0),
    })
    bench = PAMAP2(root=str(root), subjects=[101, 102, 103], window_length=32, cache_dir=cache_dir)
    assert bench.num_tasks == 3 and bench.head_size == 12 and bench.input_shape == (18, 32)
    expected = {1: {0, 1, 3}, 2: {0, 4}, 3: {1, 11}}  # class = position among the 12 protocol activities
    for task, classes in expected.items():
        for split in ("train", "test"):
            data = bench.load_train(task) if split == "train" else bench.load_test(task)
            assert data.inputs.dtype == torch.float32 and data.inputs.shape[1:] == (18, 32)
            assert set(data.targets.tolist()) == classes
            assert torch.all(data.task_ids == task)
    assert bench.task_subjects == [101, 102, 103]
    # 500 samples per activity: 375 train, 125 test; 32-sample windows every 16.
    per_class_train = torch.bincount(bench.load_train(1).targets, minlength=12)
    per_class_test = torch.bincount(bench.load_test(1).targets, minlength=12)
    assert per_class_train[[0, 1, 3]].tolist() == [num_windows(375, 32, 16)] * 3
    assert per_class_test[[0, 1, 3]].tolist() == [num_windows(125, 32, 16)] * 3


def test_default_parameters_on_full_length_windows(make_dataset, cache_dir):
    root = make_dataset({101: standard_plan((3, 7), 12.0)})
    bench = PAMAP2(root=str(root), subjects=[101], cache_dir=cache_dir)
    train, test = bench.load(1)
    assert train.inputs.shape[1:] == (18, 256)
    # 1200 samples: 900 train -> 6 windows every 128, 300 test -> 1.
    assert len(train) == 2 * num_windows(900, 256, 128) == 12 and len(test) == 2


def test_windows_stay_inside_one_activity_and_never_straddle_the_split(tmp_path, cache_dir):
    root = tmp_path / "data"
    plan = [(0, 40), (1, 300), (0, 20), (4, 200), (0, 30), (1, 180), (12, 90), (0, 10)]
    _write(root, 101, _marked(plan, 1))
    bench = _marked_bench(root, cache_dir, subjects=[101], window_length=24, window_overlap=0.25)
    train, test = bench.load(1)
    for data in (train, test):
        clock, label = data.inputs[:, 0], data.inputs[:, 1]
        assert torch.all(label == label[:, :1]), "a window spans two activities"
        ids = torch.tensor(PROTOCOL_ACTIVITIES)[data.targets]
        assert torch.equal(label[:, 0].long(), ids)
        assert torch.all(clock[:, 1:] - clock[:, :-1] == 1), "a window skips samples"
    for act_class in train.targets.unique():
        tr = train.inputs[train.targets == act_class, 0]
        te = test.inputs[test.targets == act_class, 0]
        if len(te):
            assert tr.max() < te.min(), "test windows must come after training windows, sharing no sample"
    # Window starts advance by exactly 18 samples (24 with 25% overlap) inside a block: no drift.
    first_block = train.inputs[train.targets == 0, 0, 0]
    gaps = first_block[1:] - first_block[:-1]
    assert torch.all((gaps == 18) | (gaps > 24)) and (gaps == 18).sum() >= 10


def test_missing_values_are_filled_along_time_within_each_channel(tmp_path, cache_dir):
    root = tmp_path / "data"
    rows = _marked([(1, 400)], 2)
    rows[:, CHANNEL_COLUMNS["hand_acc16_x"]] = -rows[:, CLOCK]
    rows[100:105, 3:20] = np.nan  # a dropped packet of the hand IMU: all 17 columns
    _write(root, 101, rows)
    bench = _marked_bench(root, cache_dir, subjects=[101], channels=["hand_temperature", "hand_acc16_x"],
                          window_length=40, window_overlap=0.0)
    train = bench.load_train(1)
    window = train.inputs[2]  # rows 80..119 of the activity, which starts at row 0
    assert window[0, 0] == 80
    np.testing.assert_array_equal(window[0, 20:25].numpy(), [99] * 5)
    np.testing.assert_array_equal(window[1, 20:25].numpy(), [-99] * 5)
    assert not torch.isnan(train.inputs).any()


def test_normalisation_uses_training_statistics_only(tmp_path, cache_dir):
    root = tmp_path / "data"
    rows = _marked([(1, 400), (2, 400)], 3)
    _write(root, 101, rows)
    params = dict(subjects=[101], channels=["hand_temperature"], normalize="global")
    bench = _marked_bench(root, cache_dir, **params)
    mean, std = bench.normalization(1)
    train_rows = np.concatenate([np.arange(0, 300), np.arange(400, 700)]).astype(float)
    assert mean.item() == pytest.approx(train_rows.mean(), rel=1e-6)
    assert std.item() == pytest.approx(train_rows.std(), rel=1e-5)

    wild = rows.copy()
    wild[300:400, CLOCK] *= 1000  # only the test quarter of activity 1 changes
    _write(root, 101, wild)
    bench2 = _marked_bench(root, cache_dir, **params)
    assert torch.equal(bench2.normalization(1)[0], mean) and torch.equal(bench2.normalization(1)[1], std)
    test = bench2.load_test(1)
    raw = test.inputs[test.targets == 0] * std + mean
    assert raw.min() >= 300_000 - 1, "test inputs are standardised with the training statistics"
    assert torch.equal(bench2.load_train(1).inputs, bench.load_train(1).inputs)


def test_global_and_per_task_statistics(make_dataset, cache_dir):
    root = make_dataset({101: standard_plan((1, 4), 4.0), 102: standard_plan((5, 6), 4.0)})
    common = dict(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir)
    per_task = PAMAP2(**common, normalize="per_task")
    glob = PAMAP2(**common, normalize="global")
    assert not torch.allclose(per_task.normalization(1)[0], per_task.normalization(2)[0])
    assert torch.equal(glob.normalization(1)[0], glob.normalization(2)[0])
    # Each subject standardised by its own training data: the training windows are centred.
    for task in (1, 2):
        assert per_task.load_train(task).inputs.mean(dim=(0, 2)).abs().max() < 0.1
    none = PAMAP2(**common, normalize="none")
    assert none.normalization(1) is None


def test_subject_order_is_fixed_or_drawn_from_the_seed():
    bench = PAMAP2(root="/x", subjects=[103, 101, 102])
    assert bench.subject_order == [103, 101, 102]
    orders = {tuple(PAMAP2(root="/x", shuffle_subjects=True, seed=s).subject_order) for s in range(6)}
    assert len(orders) > 1 and all(sorted(o) == list(range(101, 110)) for o in orders)
    again = PAMAP2(root="/x", shuffle_subjects=True, seed=4).subject_order
    assert again == PAMAP2(root="/x", shuffle_subjects=True, seed=4).subject_order


def test_new_classes_split_activities_into_tasks(make_dataset, cache_dir):
    acts = (1, 2, 3, 4, 5, 6)
    root = make_dataset({101: standard_plan(acts, 3.0), 102: standard_plan(acts, 3.0)})
    common = dict(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir,
                  scenario="new_classes", activities=list(acts), classes_per_task=2)
    single = PAMAP2(**common)
    assert single.num_tasks == 3 and single.head_size == 6 and single.num_heads == 1
    per_activity = 2 * num_windows(225, 32, 16)  # two subjects, 300 samples each: 225 train
    for task in (1, 2, 3):
        train = single.load_train(task)
        assert sorted(train.targets.unique().tolist()) == [2 * task - 2, 2 * task - 1]
        assert torch.bincount(train.targets).max() == per_activity
    assert single.task_activities(2) == [3, 4]
    multi = PAMAP2(**common, heads="multi")
    assert multi.num_heads == 3 and multi.head_size == 2
    assert all(sorted(multi.load_test(t).targets.unique().tolist()) == [0, 1] for t in (1, 2, 3))
    shuffled = [PAMAP2(**common, shuffle_classes=True, seed=s).class_order for s in range(5)]
    assert any(order != list(acts) for order in shuffled)
    assert all(sorted(order) == list(acts) for order in shuffled)
    bench = PAMAP2(**common, shuffle_classes=True, seed=1)
    first = bench.task_activities(1)
    lookup = {a: i for i, a in enumerate(bench.class_order)}
    assert sorted(bench.load_train(1).targets.unique().tolist()) == sorted(lookup[a] for a in first)


def test_a_subject_with_too_few_windows_is_an_error_or_skipped(make_dataset, cache_dir):
    root = make_dataset({
        101: standard_plan((1, 2), 4.0),
        102: standard_plan((1,), 0.45),  # 45 samples: 34 train (one 32-sample window), 11 test (none)
        103: standard_plan((4,), 4.0),
    })
    common = dict(root=str(root), subjects=[101, 102, 103], window_length=32, cache_dir=cache_dir)
    with pytest.raises(DataError, match=r"subject 102 has 1 training and 0 test windows.*small_subjects: skip"):
        PAMAP2(**common).load_train(1)
    skip = PAMAP2(**common, num_tasks=2, small_subjects="skip")
    skip.load_train(1)
    assert skip.task_subjects == [101, 103]
    assert set(skip.load_test(2).targets.tolist()) == {3}
    with pytest.raises(DataError, match=r"only 2 of the subjects .* num_tasks is 3"):
        PAMAP2(**common, small_subjects="skip").load_train(1)


def test_windows_are_cached_and_the_cache_follows_params_and_files(make_dataset, cache_dir, monkeypatch):
    root = make_dataset({101: standard_plan((1, 2), 3.0)})
    common = dict(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir)
    first = PAMAP2(**common).load_train(1)
    files = list((Path(cache_dir) / "pamap2").glob("subject101-*.pt"))
    assert len(files) == 1

    calls = []
    real = benchmark_module.dataset.read_recording

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(benchmark_module.dataset, "read_recording", counting)
    again = PAMAP2(**common).load_train(1)
    assert calls == [] and torch.equal(again.inputs, first.inputs)
    PAMAP2(**common, channels=["heart_rate"]).load_train(1)  # other preprocessing: parsed again
    assert len(calls) == 1
    PAMAP2(**common, activities=[1], normalize="none").load_train(1)  # same windows, other selection: cached
    assert len(calls) == 1
    dat = root / "PAMAP2_Dataset" / "Protocol" / "subject101.dat"
    stat = dat.stat()
    os.utime(dat, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # the file changed
    PAMAP2(**common).load_train(1)
    assert len(calls) == 2
    assert len(list((Path(cache_dir) / "pamap2").glob("*.pt"))) == 3

    newest = max((Path(cache_dir) / "pamap2").glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        rebuilt = PAMAP2(**common).load_train(1)
    assert len(calls) == 3 and torch.equal(rebuilt.inputs, first.inputs)
    PAMAP2(**{**common, "window_length": 16}, cache=False).load_train(1)
    assert len(list((Path(cache_dir) / "pamap2").glob("*.pt"))) == 3


def test_optional_recordings_and_activities(make_dataset, cache_dir):
    root = make_dataset({101: standard_plan((1, 2), 3.0)}, optional={101: standard_plan((9, 20), 3.0)})
    common = dict(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir)
    protocol_only = PAMAP2(**common)
    assert set(protocol_only.load_train(1).targets.tolist()) == {0, 1}
    with_optional = PAMAP2(**common, include_optional=True)
    assert with_optional.head_size == 18
    ids = torch.tensor(with_optional.activities)[with_optional.load_train(1).targets]
    assert set(ids.tolist()) == {1, 2, 9, 20}
    with pytest.raises(SpecError, match=r"activities \[9\] occur only in the Optional/ recordings"):
        PAMAP2(**common, activities=[1, 9])


def test_memory_joint_and_subset_come_from_training_windows(make_dataset, cache_dir):
    root = make_dataset({101: standard_plan((1, 2, 4), 3.0), 102: standard_plan((1, 5), 3.0)})
    bench = PAMAP2(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir,
                   per_task_memory_examples=6, per_task_subset_examples=4)
    memory = bench.load_memory(1)
    assert len(memory) == 6 and torch.bincount(memory.targets, minlength=12)[[0, 1, 3]].tolist() == [2, 2, 2]
    train = bench.load_train(1).inputs.flatten(1)
    for x in memory.inputs.flatten(1):
        assert (train == x).all(dim=1).any(), "memory must hold training windows"
    assert len(bench.load_subset(2)) == 4
    joint = bench.load_joint(2)
    assert len(joint) == len(bench.load_train(1)) + len(bench.load_train(2))
    assert set(joint.task_ids.tolist()) == {1, 2}


def test_same_params_same_tensors(make_dataset, cache_dir):
    root = make_dataset({101: standard_plan((1, 3), 3.0)})
    a = PAMAP2(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir, per_task_examples=10)
    b = PAMAP2(root=str(root), subjects=[101], window_length=32, cache=False, per_task_examples=10)
    assert torch.equal(a.load_train(1).inputs, b.load_train(1).inputs)
    assert torch.equal(a.load_test(1).targets, b.load_test(1).targets)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"subjects": [101, 110]}, r"pamap2.params.subjects: .*unknown subject\(s\) \[110\]"),
        ({"activities": [1, 8]}, r"pamap2.params.activities: .*unknown activity id\(s\) \[8\]"),
        ({"num_tasks": 4, "subjects": [101, 102]}, r"num_tasks 4 exceeds the 2 subjects"),
        ({"scenario": "new_classes", "classes_per_task": 5, "num_tasks": 3}, r"3 task\(s\) of 5 activities"),
        ({"window_overlap": 1.0}, r"pamap2.params.window_overlap"),
        ({"windw_length": 3}, r"pamap2.params.windw_length: unknown parameter"),
    ],
)
def test_bad_params_are_one_line_spec_errors(params, message):
    with pytest.raises(SpecError, match=message) as info:
        PAMAP2(**params)
    assert "\n" not in str(info.value)
