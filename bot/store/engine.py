"""Database engines for the store: URL normalisation, SQLite/PostgreSQL tuning, transactions and retry.

SQLite runs in WAL mode with a long busy timeout and foreign keys on. The driver's own transaction
handling is switched off and SQLAlchemy emits ``BEGIN IMMEDIATE`` itself, so a write transaction
takes the write lock up front and waits (busy timeout) instead of failing with "database is
locked" when it later upgrades from a read lock. Read-only work uses ``transaction(write=False)``,
which begins ``DEFERRED`` so readers never wait for writers.

PostgreSQL pings pooled connections before use and recycles them every 5 minutes; ``run_tx``
retries a unit of work once when the connection was dropped under it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from bot.errors import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "paperboy_sqlite_begin"


def normalize_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` (Heroku style) to SQLAlchemy's psycopg 3 driver URL.

    Any other URL (``sqlite:///…``, ``postgresql+psycopg://…``) is returned unchanged.
    """
    text = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    return text


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for the bot: WAL/busy timeout/FKs on SQLite, pre-ping/recycle on PostgreSQL.

    Raises:
        StoreError: the URL names an unsupported database.
    """
    parsed = make_url(normalize_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_recycle", 300)
        return sa.create_engine(parsed, **kwargs)
    raise StoreError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(parsed: sa.URL, **kwargs: Any) -> Engine:
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
    engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One short transaction: committed on success, rolled back on error.

    On SQLite a write transaction begins IMMEDIATE (waits for the write lock), a read one DEFERRED.
    Plain ``engine.begin()`` also works and behaves like ``write=True``.
    """
    with engine.connect() as conn:
        if not write:
            conn.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        with conn.begin():
            yield conn


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError)


def run_tx(engine: Engine, fn: Callable[[Connection], T], *, write: bool = True) -> T:
    """Run ``fn(conn)`` in a transaction; retry once on a dropped connection or other OperationalError.

    ``fn`` must be safe to run again (its first transaction was rolled back).

    Raises:
        StoreError: the retry failed too (the database is unreachable or keeps failing).
    """
    for attempt in (1, 2):
        try:
            with transaction(engine, write=write) as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if not _is_retryable(exc):
                raise
            if attempt == 2:
                raise StoreError(f"database error after a retry: {_short(exc)}") from exc
            log.warning("database error, retrying once: %s", _short(exc))
            if not exc.connection_invalidated:
                time.sleep(0.2)
    raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:300]
