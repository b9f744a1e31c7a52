"""Hostile PAMAP2 files: corrupt values, non-text bytes, oversized files, subjects without sensors, bad caches.

Every case ends in a one-line DataError naming the file (and line and column
where there is one), or in a warning naming the subject and channels; none
reaches training as an infinite or empty input.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from clgym_algos.finetune import Finetune
from clgym_core.errors import DataError
from clgym_core.trainer import ContinualTrainer
from clgym_pamap2 import CNN1D, PAMAP2, cache, dataset
from clgym_pamap2.dataset import CHANNEL_COLUMNS, IMU_FIRST_COLUMN, read_recording
from clgym_pamap2.preprocess import SubjectWindows
from clgym_pamap2.synthetic import recording, standard_plan, write_dat

PLAN = standard_plan((1, 2), 4.0)


def _one_line_naming(error: BaseException, path: Path) -> str:
    text = str(error)
    assert "\n" not in text and str(path) in text
    return text


def _write(root: Path, subject: int, rows: np.ndarray) -> Path:
    return write_dat(root / "PAMAP2_Dataset" / "Protocol" / f"subject{subject}.dat", rows)


def _replace_token(path: Path, line: int, column: int, token: str, encoding: str = "utf-8") -> None:
    """Put ``token`` at 1-based ``line`` and ``column`` of a .dat file."""
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split(" ")
    fields[column - 1] = token
    lines[line - 1] = " ".join(fields)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


# ---- item 7: infinite and out-of-range values --------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "problem"),
    [("inf", "value inf is not finite"), ("-Infinity", "value -inf is not finite"),
     ("1e999", "value inf is not finite"), ("3e38", None), ("1e300", "value 1e+300 exceeds the float32 range")],
)
def test_infinite_or_huge_value_names_file_line_and_column(tmp_path, token, problem):
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    column = CHANNEL_COLUMNS["chest_gyro_y"] + 1  # 1-based, as in the readme: column 29
    _replace_token(path, 7, column, token)
    if problem is None:  # the largest float32 values are still numbers
        assert read_recording(path)[6, column - 1] == pytest.approx(3e38)
        return
    with pytest.raises(DataError) as info:
        read_recording(path)
    text = _one_line_naming(info.value, path)
    assert f"line 7, column {column} (chest_gyro_y): {problem}" in text


def test_infinite_timestamp_is_named_too(tmp_path):
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    _replace_token(path, 3, 1, "inf")
    with pytest.raises(DataError, match=r"line 3, column 1 \(timestamp\): value inf is not finite"):
        read_recording(path)


def test_infinite_value_is_blamed_on_the_file_not_the_learning_rate(tmp_path, cache_dir):
    """Before, the windows held inf, the loss became NaN and the trainer said to lower the learning rate."""
    root = tmp_path / "data"
    path = _write(root, 101, recording(PLAN, seed=1))
    _replace_token(path, 300, CHANNEL_COLUMNS["ankle_acc16_x"] + 1, "inf")
    bench = PAMAP2(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir)
    backbone = CNN1D(**CNN1D.defaults_from(bench), conv_channels=[4], hidden_size=8)
    trainer = ContinualTrainer(Finetune(backbone, bench, optimizer={"name": "sgd", "lr": 0.01}),
                               epochs_per_task=1, batch_size=16, device="cpu", seed=0)
    with pytest.raises(DataError) as info:
        trainer.fit()
    text = _one_line_naming(info.value, path)
    assert "ankle_acc16_x" in text and "learning rate" not in text


# ---- malformed and oversized files --------------------------------------------------------------------------
@pytest.mark.parametrize(("token", "byte"), [("1.0\xe9", "0xe9"), ("1.0\x00", "0x00"), ("\x07", "0x07")])
def test_non_text_bytes_name_file_and_line(tmp_path, token, byte):
    """A latin-1 byte used to escape as UnicodeDecodeError from the second parse that looked for the bad token."""
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    _replace_token(path, 12, 10, token, encoding="latin-1")
    with pytest.raises(DataError) as info:
        read_recording(path)
    assert f"line 12: byte {byte} is not text" in _one_line_naming(info.value, path)


def test_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    monkeypatch.setattr(dataset, "MAX_FILE_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("an oversized file was read"))
    with pytest.raises(DataError) as info:
        read_recording(path)
    assert f"more than the {path.stat().st_size - 1}" in _one_line_naming(info.value, path)


def test_crlf_line_ends_still_load(tmp_path):
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    expected = read_recording(path)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    np.testing.assert_array_equal(read_recording(path), expected)


# ---- item 7: subjects without sensor values -----------------------------------------------------------------
def _without(rows: np.ndarray, imus: tuple[str, ...]) -> np.ndarray:
    rows = rows.copy()
    for imu in imus:
        first = IMU_FIRST_COLUMN[imu]
        rows[:, first: first + 17] = np.nan  # the IMU sent nothing in this session
    return rows


def test_subject_without_any_selected_channel_is_refused(tmp_path, cache_dir):
    root = tmp_path / "data"
    _write(root, 101, recording(PLAN, seed=1))
    _write(root, 102, _without(recording(PLAN, seed=2), ("hand", "chest", "ankle")))
    bench = PAMAP2(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir)
    with pytest.raises(DataError) as info:
        bench.load_train(1)
    text = str(info.value)
    assert "\n" not in text and "subject 102" in text and "subject102.dat" in text and "chance" in text
    assert "hand_acc16, hand_gyro, chest_acc16, chest_gyro, ankle_acc16, ankle_gyro" in text
    assert "benchmark.params.subjects" in text


def test_subject_without_one_imu_warns_and_keeps_the_rest(tmp_path, cache_dir):
    """A lost IMU is real data: the run goes on, told which channels are empty (they become the mean, 0)."""
    root = tmp_path / "data"
    _write(root, 101, recording(PLAN, seed=1))
    _write(root, 102, _without(recording(PLAN, seed=2), ("ankle",)))
    bench = PAMAP2(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir)
    with pytest.warns(UserWarning) as record:
        task2 = bench.load_train(2)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1, messages
    assert "subject 102" in messages[0] and "channels ankle_acc16, ankle_gyro are missing" in messages[0]
    x = task2.inputs
    ankle = [i for i, c in enumerate(bench.channels) if c.startswith("ankle")]
    assert torch.all(x[:, ankle] == 0) and x[:, :ankle[0]].std() > 0.5


def test_channel_missing_only_where_unused_is_no_warning(tmp_path, cache_dir, recwarn):
    """Channels the spec did not select may be missing without a word."""
    root = tmp_path / "data"
    _write(root, 101, _without(recording(PLAN, seed=1), ("ankle",)))
    bench = PAMAP2(root=str(root), subjects=[101], channels=["hand", "chest_gyro"], window_length=32,
                   cache_dir=cache_dir)
    assert len(bench.load_train(1)) > 0
    assert not [w for w in recwarn if "pamap2" in str(w.message)]


def test_a_cached_subject_is_checked_too(tmp_path, cache_dir):
    root = tmp_path / "data"
    _write(root, 101, _without(recording(PLAN, seed=1), ("hand", "chest", "ankle")))
    for _ in range(2):  # the second run reads the windows from the cache
        with pytest.raises(DataError, match="subject 101: every selected channel"):
            PAMAP2(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir).load_train(1)
    assert list((Path(cache_dir) / "pamap2").glob("subject101-*.pt"))


# ---- malformed cache files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["channels", "lengths", "infinite", "not-a-tensor"])
def test_malformed_cache_is_rebuilt_with_a_warning(make_dataset, cache_dir, damage):
    root = make_dataset({101: PLAN})
    fresh = PAMAP2(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir).load_train(1)
    (path,) = (Path(cache_dir) / "pamap2").glob("subject101-*.pt")
    data = cache.load(path).to_dict()
    if damage == "channels":
        data["windows"] = data["windows"][:, :3]
    elif damage == "lengths":
        data["activities"] = data["activities"][:-1]
    elif damage == "infinite":
        data["windows"][0, 0, 0] = float("inf")
    else:
        data["stat_count"] = data["stat_count"].tolist()
    torch.save(data, path)
    with pytest.warns(UserWarning, match=f"ignoring cache file {path}"):
        again = PAMAP2(root=str(root), subjects=[101], window_length=32, cache_dir=cache_dir).load_train(1)
    assert torch.equal(again.inputs, fresh.inputs) and torch.equal(again.targets, fresh.targets)
    assert SubjectWindows.from_dict(torch.load(path, weights_only=True)).problem(18, 32) is None  # rewritten


# ---- downloading without internet ---------------------------------------------------------------------------
def test_offline_download_says_how_to_point_at_the_files(monkeypatch, tmp_path, cache_dir):
    def offline(*args, **kwargs):  # what urllib raises on a machine without network (no DNS)
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        PAMAP2(root=str(tmp_path / "d"), download=True, cache_dir=cache_dir).load_train(1)
    text = str(info.value)
    assert "\n" not in text and "name resolution" in text
    assert "$CLGYM_DATA" in text and "benchmark.params.root" in text and "PAMAP2_Dataset/" in text


def test_download_into_an_impossible_root_is_a_one_line_error(tmp_path, cache_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError) as info:
        PAMAP2(root=str(blocker / "data"), download=True, cache_dir=cache_dir).load_train(1)
    text = _one_line_naming(info.value, blocker / "data")
    assert "cannot create" in text and "$CLGYM_DATA" in text
