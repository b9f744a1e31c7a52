from __future__ import annotations

import io
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from clgym_core.errors import DataError, SpecError
from clgym_pamap2 import PAMAP2, dataset
from clgym_pamap2.dataset import CHANNEL_COLUMNS, read_recording, resolve_channels

from clgym_pamap2.synthetic import recording, standard_plan, write_dat


def test_channel_table_follows_the_readme_layout():
    assert CHANNEL_COLUMNS["heart_rate"] == 2
    assert CHANNEL_COLUMNS["hand_temperature"] == 3
    assert [CHANNEL_COLUMNS[f"hand_acc16_{a}"] for a in "xyz"] == [4, 5, 6]
    assert [CHANNEL_COLUMNS[f"chest_gyro_{a}"] for a in "xyz"] == [27, 28, 29]
    assert CHANNEL_COLUMNS["ankle_mag_z"] == 49
    assert CHANNEL_COLUMNS["ankle_orientation_4"] == 53
    assert len(CHANNEL_COLUMNS) == 1 + 3 * 17


def test_channel_groups_expand_in_order():
    default = resolve_channels(list(dataset.DEFAULT_CHANNELS))
    assert len(default) == 18
    assert default[:6] == ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z", "hand_gyro_x", "hand_gyro_y", "hand_gyro_z"]
    assert resolve_channels(["gyro"]) == [f"{imu}_gyro_{a}" for imu in ("hand", "chest", "ankle") for a in "xyz"]
    assert resolve_channels(["heart_rate", "ankle_temperature"]) == ["heart_rate", "ankle_temperature"]
    ankle = resolve_channels(["ankle"])
    assert len(ankle) == 13 and ankle[0] == "ankle_temperature" and not any("orientation" in c for c in ankle)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (["hand_orientation"], "orientation columns are invalid"),
        (["wrist_acc16"], "unknown channel 'wrist_acc16'"),
        (["gyro", "hand_gyro_x"], "selected twice"),
    ],
)
def test_bad_channels_are_one_line_spec_errors(channels, message):
    with pytest.raises(SpecError, match=message) as info:
        PAMAP2(channels=channels)
    assert "pamap2.params.channels" in str(info.value) and "\n" not in str(info.value)


def test_parser_reads_values_and_nan_exactly(tmp_path):
    rows = recording(standard_plan((1, 4), 1.0), seed=3)
    path = write_dat(tmp_path / "subject101.dat", rows)
    lines = path.read_text().splitlines()
    assert all(len(line.split(" ")) == 54 for line in lines)
    assert lines[1].split(" ")[:3] == ["5.01", "0", "NaN"]  # heart rate missing between monitor samples
    values = read_recording(path)
    assert values.shape == rows.shape
    assert np.array_equal(np.isnan(values), np.isnan(rows))
    np.testing.assert_allclose(values, rows, rtol=1e-5, equal_nan=True)


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = write_dat(tmp_path / "subject101.dat", recording([(1, 30)]))
    lines = path.read_text().splitlines()
    lines[6] = " ".join(lines[6].split(" ")[:53])  # a truncated row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"subject101.dat: line 7 has 53 columns, expected 54"):
        read_recording(path)


def test_extra_column_is_caught_too(tmp_path):
    path = write_dat(tmp_path / "subject102.dat", recording([(1, 30)]))
    lines = path.read_text().splitlines()
    lines[20] += " 1.0"
    path.write_text("\n".join(lines))  # and no final newline
    with pytest.raises(DataError, match=r"line 21 has 55 columns"):
        read_recording(path)


def test_corrupt_value_names_file_line_and_token(tmp_path):
    path = write_dat(tmp_path / "subject103.dat", recording([(1, 30)]))
    lines = path.read_text().splitlines()
    fields = lines[11].split(" ")
    fields[9] = "1.2.3"
    lines[11] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"subject103.dat: line 12: '1.2.3' is not a number"):
        read_recording(path)


def test_unknown_activity_and_missing_timestamp_are_corrupt_rows(tmp_path):
    rows = recording([(1, 30)])
    rows[4, 1] = 8  # activity 8 does not exist
    with pytest.raises(DataError, match=r"line 5: activity id 8 is not a PAMAP2 activity"):
        read_recording(write_dat(tmp_path / "a.dat", rows))
    rows = recording([(1, 30)])
    path = write_dat(tmp_path / "b.dat", rows)
    lines = path.read_text().splitlines()
    lines[2] = "NaN" + lines[2][lines[2].index(" "):]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 3: the timestamp is missing"):
        read_recording(path)


def test_missing_folder_and_missing_subject_say_what_to_do(make_dataset, tmp_path, cache_dir):
    with pytest.raises(DataError, match=r"no PAMAP2_Dataset/Protocol/ folder under .*set benchmark.params.root"):
        PAMAP2(root=str(tmp_path / "nowhere"), cache_dir=cache_dir).load_train(1)
    root = make_dataset({101: standard_plan((1,), 5.0)})
    with pytest.raises(DataError, match=r"missing subject file .*subject102.dat"):
        PAMAP2(root=str(root), subjects=[101, 102], window_length=32, cache_dir=cache_dir).load_train(1)


def test_offline_download_is_a_clear_error(monkeypatch, tmp_path, cache_dir):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dataset.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        PAMAP2(root=str(tmp_path / "d"), download=True, cache_dir=cache_dir).load_train(1)
    text = str(info.value)
    assert "could not download" in text and "Temporary failure in name resolution" in text
    assert dataset.DOWNLOAD_URLS[0] in text and "benchmark.params.root" in text and "\n" not in text
    assert not list((tmp_path / "d").glob("*.part")), "no partial file may be left behind"


class _Response(io.BytesIO):
    def __init__(self, payload: bytes, length: int | None = None) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _uci_archive(tmp_path: Path) -> bytes:
    """The UCI layout: an outer zip holding PAMAP2_Dataset.zip, which holds PAMAP2_Dataset/Protocol/*.dat."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for subject in (101, 102):
            src = write_dat(tmp_path / "src" / f"subject{subject}.dat", recording(standard_plan((1, 2), 3.0), subject))
            z.write(src, f"PAMAP2_Dataset/Protocol/subject{subject}.dat")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("PAMAP2_Dataset.zip", inner.getvalue())
    return outer.getvalue()


def test_download_extracts_the_nested_uci_archive(monkeypatch, tmp_path, cache_dir):
    payload = _uci_archive(tmp_path)
    monkeypatch.setattr(dataset.urllib.request, "urlopen", lambda url, timeout: _Response(payload))
    root = tmp_path / "d"
    bench = PAMAP2(root=str(root), download=True, subjects=[101, 102], window_length=32, cache_dir=cache_dir)
    assert len(bench.load_train(2)) > 0
    assert (root / "PAMAP2_Dataset" / "Protocol" / "subject102.dat").is_file()
    assert not list(root.glob("*.zip")), "archives are removed after extraction"


def test_download_rejects_a_wrong_checksum_and_a_truncated_body(monkeypatch, tmp_path):
    payload = _uci_archive(tmp_path)
    monkeypatch.setattr(dataset.urllib.request, "urlopen", lambda url, timeout: _Response(payload))
    with pytest.raises(DataError, match="not the pinned download_sha256"):
        dataset.download(tmp_path / "x", sha256="0" * 64)
    monkeypatch.setattr(dataset.urllib.request, "urlopen", lambda url, timeout: _Response(payload, len(payload) + 7))
    with pytest.raises(DataError, match="truncated download"):
        dataset.download(tmp_path / "y")
