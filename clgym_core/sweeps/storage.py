"""Where a study lives: an SQLite file inside DIR by default, or a shared database (PostgreSQL).

Several processes, on one machine or many, can work on one study: each claims
its next trial under a lock held across "count the trials, ask for one", so
the study ends with exactly the number of trials asked for and no trial runs
twice. The lock is a file lock next to an SQLite database and a PostgreSQL
advisory lock (``pg_advisory_lock``) on a shared server.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clgym_core.sweeps.plan import SweepError

DB_NAME = "study.db"
POSTGRES_HINT = "pip install 'clgym-core[postgres]' (the psycopg2 driver)"


def default_url(out: Path) -> str:
    return f"sqlite:///{(out / DB_NAME).resolve()}"


def shown(url: str) -> str:
    """The URL without its password (for messages and files)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show it as given
        return url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_storage(url: str) -> Any:
    """An Optuna RDB storage for ``url``; a one-line :class:`SweepError` naming --storage when it cannot be used."""
    import optuna

    given = url
    kind = url.split(":", 1)[0].split("+", 1)[0].lower()
    if kind not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise SweepError(f"--storage {shown(url)}: unsupported URL; use sqlite:///PATH or postgresql://USER@HOST/DB")
    engine_kwargs: dict[str, Any] = {}
    if kind in ("postgresql", "postgres"):
        url = postgres_url(url)
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    try:
        if not url.startswith("postgresql"):
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        # Two machines starting at once would both create the schema: one at a time.
        from sqlalchemy import create_engine, text

        engine = create_engine(url, **engine_kwargs)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key("schema")})
                try:
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key("schema")})
                    conn.commit()
        finally:
            engine.dispose()
    except ModuleNotFoundError as exc:
        raise SweepError(f"--storage {shown(url)}: the database driver {exc.name!r} is missing; {POSTGRES_HINT}"
                         if kind.startswith("postgres") else
                         f"--storage {shown(url)}: the database driver {exc.name!r} is missing") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: cannot reach or open it
        raise SweepError(f"--storage {shown(given)}: cannot open the study storage ({_first_line(exc)})") from None


def postgres_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed (SQLAlchemy's default differs between versions)."""
    import importlib.util

    scheme, rest = url.split("://", 1) if "://" in url else (url, "")
    if "+" in scheme:
        return url
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise SweepError(f"--storage {shown(url)}: no PostgreSQL driver is installed; {POSTGRES_HINT}")


def _lock_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"clgym-tune/{study_name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def claim_lock(storage: Any, study_name: str) -> Iterator[None]:
    """Held while a worker counts the study's trials and asks for the next one."""
    url = str(storage.engine.url)
    if url.startswith("sqlite"):
        import fcntl

        db = storage.engine.url.database
        with open(f"{db}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        from sqlalchemy import text

        key = _lock_key(study_name)
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
    else:  # no cross-process lock: a race can add a trial beyond the count
        yield
