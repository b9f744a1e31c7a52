"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, run as an unprivileged user
(initdb refuses root), listening on a free port of 127.0.0.1 and a unix socket in the same folder."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/14/bin")
USER = "postgres"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None where the server is not installed."""
    for folder in BIN_DIRS:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def skip_reason() -> str | None:
    if server_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed (apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root and there is no {USER!r} user to run the PostgreSQL server as"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is missing (pip install 'clgym-core[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its URL (user postgres, database postgres, trust auth); stop and delete it."""
    bindir = server_bin()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="clgym-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", _free_port()
    try:
        subprocess.run(_as_user([str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                                 "-w", "-t", "60", "start"]), check=True, capture_output=True, timeout=120)
        url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        deadline = time.time() + 30
        while True:
            try:
                import psycopg2

                psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres").close()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
