"""The PAMAP2 release: its column layout, activities, files, parser and download.

Facts from the dataset's readme (Reiss & Stricker 2012, UCI repository #231):
each ``.dat`` file holds one session of one subject, one line per 10 ms sample
(the three IMUs run at 100 Hz; the heart-rate monitor at about 9 Hz, so heart
rate is ``NaN`` on most lines), space separated, 54 columns:

1. timestamp (s), 2. activity id, 3. heart rate (bpm),
4-20 the hand IMU, 21-37 the chest IMU, 38-54 the ankle IMU, each with
temperature (°C), 3D acceleration at ±16 g (m/s²), 3D acceleration at ±6 g
(m/s², saturates during fast movements; the readme recommends the ±16 g one),
3D gyroscope (rad/s), 3D magnetometer (µT) and 4 orientation values that are
invalid in this collection. Missing values (dropped wireless packets) are
``NaN``. Activity 0 marks transient periods between activities.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from clgym_core.errors import DataError

NUM_COLUMNS = 54
SAMPLING_HZ = 100.0
SUBJECTS = tuple(range(101, 110))
#: Subjects with a recording in ``Optional/`` (the others did no optional activities).
OPTIONAL_SUBJECTS = (101, 105, 106, 108, 109)

ACTIVITIES: dict[int, str] = {
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "nordic_walking",
    9: "watching_tv",
    10: "computer_work",
    11: "car_driving",
    12: "ascending_stairs",
    13: "descending_stairs",
    16: "vacuum_cleaning",
    17: "ironing",
    18: "folding_laundry",
    19: "house_cleaning",
    20: "playing_soccer",
    24: "rope_jumping",
}
TRANSIENT = 0
PROTOCOL_ACTIVITIES = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)
OPTIONAL_ACTIVITIES = (9, 10, 11, 18, 19, 20)

IMUS = ("hand", "chest", "ankle")
#: Sensor of an IMU -> offsets of its columns inside the IMU's 17-column block.
IMU_SENSORS: dict[str, tuple[int, ...]] = {
    "temperature": (0,),
    "acc16": (1, 2, 3),
    "acc6": (4, 5, 6),
    "gyro": (7, 8, 9),
    "mag": (10, 11, 12),
    "orientation": (13, 14, 15, 16),
}
IMU_FIRST_COLUMN = {"hand": 3, "chest": 20, "ankle": 37}
INVALID_SENSORS = ("orientation",)
DEFAULT_CHANNELS = ("hand_acc16", "hand_gyro", "chest_acc16", "chest_gyro", "ankle_acc16", "ankle_gyro")


def _channel_table() -> dict[str, int]:
    table = {"heart_rate": 2}
    for imu in IMUS:
        for sensor, offsets in IMU_SENSORS.items():
            if len(offsets) == 1:
                table[f"{imu}_{sensor}"] = IMU_FIRST_COLUMN[imu] + offsets[0]
                continue
            suffixes = "xyz" if len(offsets) == 3 else "1234"
            for suffix, offset in zip(suffixes, offsets):
                table[f"{imu}_{sensor}_{suffix}"] = IMU_FIRST_COLUMN[imu] + offset
    return table


#: Channel name -> 0-based column of the ``.dat`` files, e.g. ``chest_gyro_y`` -> 28.
CHANNEL_COLUMNS: dict[str, int] = _channel_table()
_COLUMN_NAMES = {0: "timestamp", 1: "activity id", **{c: name for name, c in CHANNEL_COLUMNS.items()}}


def column_name(column: int) -> str:
    """The name of 0-based column ``column`` of a ``.dat`` file: ``timestamp``, ``activity id`` or a channel."""
    return _COLUMN_NAMES[column]


def resolve_channels(names: list[str] | tuple[str, ...]) -> list[str]:
    """Expand channel names and groups into single channels, in the order given.

    A name is a single channel (``ankle_gyro_x``, ``heart_rate``), one sensor of
    one IMU (``ankle_gyro``: its three axes), one sensor of all IMUs (``gyro``:
    hand, chest then ankle) or every valid channel of one IMU (``ankle``: 13). Raises ``ValueError`` for unknown names,
    repeats and the orientation columns, which the readme marks invalid.
    """
    out: list[str] = []
    for name in names:
        key = name.strip().lower()
        if any(key == s or key.endswith(f"_{s}") or f"_{s}_" in key for s in INVALID_SENSORS):
            raise ValueError(f"{name!r}: the orientation columns are invalid in PAMAP2 (see its readme)")
        if key in CHANNEL_COLUMNS:
            expanded = [key]
        elif key in IMU_SENSORS:
            expanded = [c for imu in IMUS for c in resolve_channels([f"{imu}_{key}"])]
        elif key in IMUS:
            valid = [s for s in IMU_SENSORS if s not in INVALID_SENSORS]
            expanded = resolve_channels([f"{key}_{sensor}" for sensor in valid])
        else:
            expanded = [c for c in CHANNEL_COLUMNS if c.startswith(f"{key}_") and key.count("_") == 1]
            if not expanded:
                raise ValueError(
                    f"unknown channel {name!r}; use heart_rate, IMU_SENSOR[_AXIS] with IMU in "
                    f"{'/'.join(IMUS)} and SENSOR in {'/'.join(s for s in IMU_SENSORS if s not in INVALID_SENSORS)}"
                    " (e.g. ankle_gyro_x, chest_acc16), a sensor alone (gyro) or an IMU alone (ankle)"
                )
        for channel in expanded:
            if channel in out:
                raise ValueError(f"channel {channel!r} is selected twice")
            out.append(channel)
    if not out:
        raise ValueError("select at least one channel")
    return out


# ---- files --------------------------------------------------------------------------------------
def default_root() -> Path:
    """``$CLGYM_DATA`` when set, else ``./data``."""
    return Path(os.environ.get("CLGYM_DATA") or "data").expanduser()


def find_dataset_dir(root: Path) -> Path | None:
    """The ``PAMAP2_Dataset`` folder under ``root`` (or ``root`` itself), or None."""
    for candidate in (root / "PAMAP2_Dataset", root / "PAMAP2" / "PAMAP2_Dataset", root):
        if (candidate / "Protocol").is_dir():
            return candidate
    return None


def recording_files(dataset_dir: Path, subject: int, include_optional: bool) -> list[Path]:
    """The session files of ``subject``: ``Protocol/subjectNNN.dat`` and, if asked, its ``Optional/`` file."""
    protocol = dataset_dir / "Protocol" / f"subject{subject}.dat"
    if not protocol.is_file():
        raise DataError(
            f"pamap2: missing subject file {protocol}; point root at the extracted UCI folder "
            "(the one holding PAMAP2_Dataset/Protocol/) or set download: true"
        )
    files = [protocol]
    optional = dataset_dir / "Optional" / f"subject{subject}.dat"
    if include_optional and optional.is_file():
        files.append(optional)
    return files


def _line_field_counts(raw: bytes, chunk_bytes: int = 1 << 23) -> tuple[np.ndarray, np.ndarray]:
    """Whitespace-separated fields on every line and the 1-based numbers of the non-blank lines.

    Vectorised over bytes, in chunks cut at line ends so memory stays bounded.
    """
    counts_parts: list[np.ndarray] = []
    data = np.frombuffer(raw, dtype=np.uint8)
    start = 0
    while start < len(data):
        stop = min(start + chunk_bytes, len(data))
        if stop < len(data):
            newline = raw.rfind(b"\n", start, stop)
            stop = newline + 1 if newline >= start else len(data)
        chunk = data[start:stop]
        is_newline = chunk == 10
        blank = is_newline | (chunk == 32) | (chunk == 9) | (chunk == 13)
        previous_blank = np.empty_like(blank)
        previous_blank[0] = True
        previous_blank[1:] = blank[:-1]
        token_starts = np.flatnonzero(~blank & previous_blank)
        line_ends = np.flatnonzero(is_newline)
        if len(line_ends) == 0 or line_ends[-1] != len(chunk) - 1:
            line_ends = np.append(line_ends, len(chunk))  # last line without a newline
        counts_parts.append(np.diff(np.searchsorted(token_starts, line_ends, side="right"), prepend=0))
        start = stop
    counts = np.concatenate(counts_parts) if counts_parts else np.zeros(0, dtype=np.int64)
    line_numbers = np.flatnonzero(counts > 0) + 1
    return counts, line_numbers


#: The largest ``.dat`` file read: several times the official ones, small enough that a wrong or corrupt
#: file is refused before parsing it (which needs about as much memory again as the text) exhausts memory.
MAX_FILE_BYTES = 1 << 30


def read_recording(path: Path) -> np.ndarray:
    """One ``.dat`` file as a float64 array ``[rows, 54]``; DataError (naming file and line) when malformed."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"pamap2: {path} has {size} bytes, more than the {MAX_FILE_BYTES} a PAMAP2 .dat file may hold "
                "(is this an official PAMAP2 .dat file?)"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"pamap2: cannot read {path}: {error.strerror or error}") from None
    counts, line_numbers = _line_field_counts(raw)
    bad = np.flatnonzero((counts > 0) & (counts != NUM_COLUMNS))
    if len(bad):
        line = int(bad[0]) + 1
        raise DataError(
            f"pamap2: {path}: line {line} has {int(counts[bad[0]])} columns, expected {NUM_COLUMNS} "
            "(is this an official PAMAP2 .dat file?)"
        )
    if len(line_numbers) == 0:
        raise DataError(f"pamap2: {path} is empty")
    import pandas as pd  # only when parsing: keeps `clgym list` fast

    binary = _first_binary_byte(raw)
    if binary is not None:  # checked before parsing: some pandas versions read "1.0\x00" as 1.0
        raise DataError(f"pamap2: {path}: {binary}")
    try:
        frame = pd.read_csv(
            io.BytesIO(raw), sep=r"\s+", header=None, names=list(range(NUM_COLUMNS)),
            dtype=np.float64, engine="c", na_values=["NaN", "nan"], keep_default_na=False,
        )
    except (ValueError, pd.errors.ParserError):  # UnicodeDecodeError is a ValueError too
        raise DataError(f"pamap2: {path}: {_first_bad_token(raw, line_numbers)}") from None
    values = frame.to_numpy(dtype=np.float64)
    if values.shape[0] != len(line_numbers):  # pragma: no cover - the field count check makes this unreachable
        raise DataError(f"pamap2: {path}: read {values.shape[0]} rows but the file has {len(line_numbers)} lines")
    _check_columns(path, values, line_numbers)
    return values


def _first_binary_byte(raw: bytes) -> str | None:
    """The first byte that is not ASCII text (tab and line ends allowed), as a message; None if all is text."""
    data = np.frombuffer(raw, dtype=np.uint8)
    binary = np.flatnonzero((data > 126) | ((data < 32) & ~np.isin(data, (9, 10, 13))))
    if not len(binary):
        return None
    at = int(binary[0])
    line = raw.count(b"\n", 0, at) + 1
    return f"line {line}: byte 0x{data[at]:02x} is not text (is this an official PAMAP2 .dat file?)"


def _first_bad_token(raw: bytes, line_numbers: np.ndarray) -> str:
    """Where parsing failed, for the message: the first token that is not a number."""
    try:
        row, column, value = _first_non_numeric(raw)
    except Exception:  # noqa: BLE001 - only the message depends on it; the file is refused either way
        return "not a table of numbers (is this an official PAMAP2 .dat file?)"
    where = f"line {int(line_numbers[row])}"
    try:
        number = float(value)  # e.g. 1e999: a number, just not one a float64 parser of every pandas keeps
    except ValueError:
        return f"{where}: {value!r} is not a number (corrupt row)"
    return f"{where}, column {column + 1} ({column_name(column)}): value {number:g} is not finite (corrupt value)"


def _first_non_numeric(raw: bytes) -> tuple[int, int, str]:
    import pandas as pd

    text = pd.read_csv(io.BytesIO(raw), sep=r"\s+", header=None, dtype=str, keep_default_na=False)
    first_row, first_column, first_value = len(text), 0, ""
    for column in text.columns:
        values = text[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & ~values.str.lower().eq("nan")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            if row < first_row:
                first_row, first_column, first_value = row, int(column), str(values.iloc[row])
    return first_row, first_column, first_value


def _check_columns(path: Path, values: np.ndarray, line_numbers: np.ndarray) -> None:
    time = values[:, 0]
    if np.isnan(time).any():
        row = int(np.flatnonzero(np.isnan(time))[0])
        raise DataError(f"pamap2: {path}: line {int(line_numbers[row])}: the timestamp is missing (corrupt row)")
    # NaN marks a missing value; anything else must be a number float32 windows can hold (an infinite or huge
    # value would only surface later, as a loss that is not finite).
    limit = float(np.finfo(np.float32).max)
    with np.errstate(invalid="ignore"):
        bad = np.abs(values) > limit
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        value = values[row, column]
        problem = "is not finite" if np.isinf(value) else "exceeds the float32 range"
        raise DataError(
            f"pamap2: {path}: line {int(line_numbers[row])}, column {column + 1} ({column_name(column)}): "
            f"value {value:g} {problem} (corrupt value)"
        )
    activity = values[:, 1]
    known = np.array([TRANSIENT, *ACTIVITIES], dtype=np.float64)
    bad = ~np.isin(activity, known)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"pamap2: {path}: line {int(line_numbers[row])}: activity id {activity[row]:g} is not a PAMAP2 "
            f"activity (known: 0, {', '.join(str(a) for a in ACTIVITIES)})"
        )


def file_fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(name, size, mtime in ns) of each file: what the window cache is keyed on besides the params."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((f"{path.parent.name}/{path.name}", int(stat.st_size), int(stat.st_mtime_ns)))
    return out


# ---- download -----------------------------------------------------------------------------------
#: The UCI archive (a zip holding ``PAMAP2_Dataset.zip``) and the legacy direct link to the inner zip.
DOWNLOAD_URLS = (
    "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip",
    "https://archive.ics.uci.edu/ml/machine-learning-databases/00231/PAMAP2_Dataset.zip",
)
INNER_ZIP = "PAMAP2_Dataset.zip"


def download(root: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download and extract the UCI release into ``root``; returns the ``PAMAP2_Dataset`` folder.

    UCI publishes no checksum, so a download is verified by its length
    (``Content-Length``), the CRC of every zip member, ``sha256`` when the
    caller pins one, and afterwards by parsing the files (54 columns each).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"pamap2: cannot create {root} to download into ({error.strerror or error}); point "
            "benchmark.params.root (or $CLGYM_DATA) at a writable folder"
        ) from None
    errors = []
    for url in DOWNLOAD_URLS:
        target = root / url.rsplit("/", 1)[-1].replace("+", "_")
        try:
            _fetch(url, target, sha256, timeout)
        except DataError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as error:
            errors.append(f"{url}: {_reason(error)}")
            continue
        try:
            return _extract(target, root)
        except OSError as error:  # a full disk or an unwritable folder while extracting
            raise DataError(f"pamap2: cannot extract {target.name} into {root} ({error.strerror or error})") from None
        finally:
            target.unlink(missing_ok=True)
    raise DataError(
        f"pamap2: could not download the dataset ({'; '.join(errors)}); without internet, download "
        f"{DOWNLOAD_URLS[0]} elsewhere, extract it (and the {INNER_ZIP} inside) and point "
        "benchmark.params.root (or $CLGYM_DATA) at the folder that holds PAMAP2_Dataset/"
    )


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return " ".join(f"{type(error).__name__}: {reason}".split())


def _fetch(url: str, target: Path, sha256: str | None, timeout: float) -> None:
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            expected = response.headers.get("Content-Length")
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
        if expected is not None and int(expected) != received:
            raise OSError(f"truncated download: {received} of {expected} bytes")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if sha256 and digest.hexdigest().lower() != sha256.lower():
        partial.unlink(missing_ok=True)
        raise DataError(
            f"pamap2: {url} has sha256 {digest.hexdigest()}, not the pinned download_sha256 {sha256}; "
            "the file changed or is corrupt"
        )
    partial.replace(target)


def _extract(archive: Path, root: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as outer:
            if INNER_ZIP in outer.namelist():  # the UCI page wraps the release in a second zip
                inner = root / INNER_ZIP
                with outer.open(INNER_ZIP) as source, open(inner, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                try:
                    return _extract(inner, root)
                finally:
                    inner.unlink(missing_ok=True)
            broken = outer.testzip()
            if broken is not None:
                raise DataError(f"pamap2: {archive}: member {broken} fails its CRC check; delete it and download again")
            base = root.resolve()
            for member in outer.namelist():
                if not (base / member).resolve().is_relative_to(base):
                    raise DataError(f"pamap2: {archive}: refusing member {member!r} outside {root}")
            outer.extractall(root)
    except (zipfile.BadZipFile, NotImplementedError, EOFError):  # not a zip, an unknown compression, truncated
        raise DataError(f"pamap2: {archive} is not a zip archive; delete it and download again") from None
    found = find_dataset_dir(root)
    if found is None:
        raise DataError(f"pamap2: {archive} did not contain PAMAP2_Dataset/Protocol/")
    return found

