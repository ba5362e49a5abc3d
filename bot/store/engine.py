"""Database engines for the store: URL normalisation, SQLite/PostgreSQL tuning, transactions and retry.

SQLite runs in WAL mode (switched on with retries: see ``_use_wal``) with a long busy timeout and
foreign keys on. The driver's own transaction handling is switched off and SQLAlchemy emits
``BEGIN IMMEDIATE`` itself, so a write transaction
takes the write lock up front and waits (busy timeout) instead of failing with "database is
locked" when it later upgrades from a read lock. Read-only work uses ``transaction(write=False)``,
which begins ``DEFERRED`` so readers never wait for writers.

PostgreSQL pings pooled connections before use, recycles them every 5 minutes and gives up
connecting after ``CONNECT_TIMEOUT_S`` (a partitioned network must not hang a thread for ever).
``run_tx`` retries a unit of work when the connection was dropped under it or the database is briefly
unreachable (a killed backend, a restart, a failover): always once, and then with a growing pause for
as long as the first failure is less than ``RETRY_BUDGET_S`` old. Longer outages surface as
``StoreError``; callers (the scheduler's sweep, the next command) simply try again later.
"""

from __future__ import annotations

import logging
import re
import sqlite3
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
CONNECT_TIMEOUT_S = 10
RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0)  # seconds before the 2nd … 5th attempt
RETRY_BUDGET_S = 5.0
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
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
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
            _use_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cur: sqlite3.Cursor) -> None:
    """Switch a fresh database to WAL. The switch takes an exclusive lock and SQLite answers "database
    is locked" at once, without the busy timeout, when several connections open a new file together
    (two workers or threads starting up), so it is retried here for as long as the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


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


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as every backend can store it: NUL becomes a space (PostgreSQL refuses NUL in text)
    and a lone surrogate U+FFFD (no database can encode one). Search treats both the same way."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda m: " " if m.group() == "\x00" else "\ufffd", text)


# SQLite reports schema mistakes as OperationalError too; retrying those only delays the real message.
_NOT_TRANSIENT = ("no such table", "no such column", "has no column named", "syntax error")


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError) and not any(s in str(exc.orig) for s in _NOT_TRANSIENT)


def run_tx(engine: Engine, fn: Callable[[Connection], T], *, write: bool = True) -> T:
    """Run ``fn(conn)`` in a transaction, retrying on a dropped connection or other OperationalError.

    The first failure is always retried; later ones while the first is less than ``RETRY_BUDGET_S``
    old, pausing ``RETRY_PAUSES`` in between. ``fn`` must be safe to run again (its failed
    transaction was rolled back, or its commit may have happened without us seeing it).

    Raises:
        StoreError: the retries failed too (the database is unreachable or keeps failing).
    """
    first_failure: float | None = None
    for attempt, pause in enumerate((*RETRY_PAUSES, None), start=1):
        try:
            with transaction(engine, write=write) as conn:
                return fn(conn)
        except sa.exc.DBAPIError as exc:
            if not _is_retryable(exc):
                raise
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            if pause is None or (attempt > 1 and now - first_failure > RETRY_BUDGET_S):
                raise StoreError(f"database error after {attempt} attempts: {_short(exc)}") from exc
            log.warning("database error (attempt %d), retrying in %.1f s: %s", attempt, pause, _short(exc))
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:300]
