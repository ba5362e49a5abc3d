"""Engine set-up: URL normalisation, SQLite tuning, retry of dropped connections, concurrent writers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from bot.errors import StoreError
from bot.models import Paper
from bot.store import Store
from bot.store.engine import create_engine, normalize_url, run_tx


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@host:5432/db", "postgresql+psycopg://u:p@host:5432/db"),
        ("postgresql://u@host/db?sslmode=require", "postgresql+psycopg://u@host/db?sslmode=require"),
        ("postgresql+psycopg://u@host/db", "postgresql+psycopg://u@host/db"),
        ("sqlite:///paperboy.db", "sqlite:///paperboy.db"),
        ("sqlite:////abs/path/paperboy.db", "sqlite:////abs/path/paperboy.db"),
        ("  postgres://h/db\n", "postgresql+psycopg://h/db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_unsupported_scheme_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        create_engine("mysql://u@h/db")


def test_sqlite_engine_is_tuned(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'p.db'}")  # parent dirs are created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_postgres_engine_pings_and_recycles(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        assert engine.pool._pre_ping is True
        assert engine.pool._recycle == 300
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select 1")) == 1
    finally:
        engine.dispose()


def _terminate(admin: sa.Engine, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.scalar(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid}) is True
        deadline = time.monotonic() + 10
        while conn.scalar(sa.text("select count(*) from pg_stat_activity where pid = :pid"), {"pid": pid}):
            assert time.monotonic() < deadline, "backend did not exit"
            time.sleep(0.05)


def test_dropped_pooled_pg_connection_is_survived(pg_url: str) -> None:
    store = Store.open(pg_url)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        store.migrate()
        pid = store.run(lambda c: c.scalar(sa.text("select pg_backend_pid()")))
        assert store.engine.pool.checkedin() == 1  # the one pooled connection is the one we kill
        _terminate(admin, pid)
        store.upsert_papers([Paper(id="2501.00001", title="T", abstract="A", sources=("arxiv",))])
        assert store.count_papers() == 1
        assert store.run(lambda c: c.scalar(sa.text("select pg_backend_pid()"))) != pid
    finally:
        store.close()
        admin.dispose()


def test_run_tx_retries_once_when_the_connection_drops_mid_transaction(pg_url: str) -> None:
    engine = create_engine(pg_url, pool_pre_ping=False)  # no ping: only run_tx's retry can save us
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    attempts: list[int] = []

    def work(conn: sa.Connection) -> int:
        pid = conn.scalar(sa.text("select pg_backend_pid()"))
        attempts.append(pid)
        if len(attempts) == 1:
            _terminate(admin, pid)
        return conn.scalar(sa.text("select 41 + 1"))

    try:
        assert run_tx(engine, work) == 42
        assert len(attempts) == 2 and attempts[0] != attempts[1]
    finally:
        engine.dispose()
        admin.dispose()


def test_run_tx_gives_up_after_its_retries_with_a_store_error(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.store.engine.RETRY_PAUSES", (0.0, 0.0, 0.0))  # 4 attempts, no waiting
    engine = create_engine(db_url)
    calls: list[int] = []

    def work(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("select 1"))
        raise sa.exc.OperationalError("select 1", {}, Exception("server went away"))

    try:
        with pytest.raises(StoreError, match="after 4 attempts: server went away"):
            run_tx(engine, work)
        assert len(calls) == 4
    finally:
        engine.dispose()


def test_run_tx_does_not_retry_a_missing_column(db_url: str) -> None:
    """SQLite reports schema mistakes as OperationalError, like a dropped connection: they fail at once."""
    store = Store.open(db_url)
    store.migrate()
    calls: list[int] = []

    def work(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("select no_such_column from papers"))

    try:
        with pytest.raises(sa.exc.DBAPIError, match="no_such_column"):
            store.run(work)
        assert len(calls) == 1
    finally:
        store.close()


def test_run_tx_does_not_retry_integrity_errors(db_url: str) -> None:
    store = Store.open(db_url)
    store.migrate()
    calls: list[int] = []

    def work(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("insert into seen_events (key, at) values ('k', :at)"), {"at": datetime.now(UTC)})
        conn.execute(sa.text("insert into seen_events (key, at) values ('k', :at)"), {"at": datetime.now(UTC)})

    try:
        with pytest.raises(sa.exc.IntegrityError):
            store.run(work)
        assert calls == [1]
        assert store.remember_event("k") is True  # the failed transaction was rolled back
    finally:
        store.close()


def test_concurrent_writers_and_readers_never_see_database_is_locked(db_url: str) -> None:
    """Several engines (like several processes) upsert, dedupe and read at once without errors."""
    Store.open(db_url).migrate()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(n: int) -> None:
        store = Store.open(db_url)
        try:
            start.wait(timeout=10)
            for i in range(15):
                paper = Paper(id=f"2501.{n:02d}{i:03d}", title=f"t{i}", abstract="a", announced=date(2025, 1, 2))
                store.upsert_papers([paper])
                store.remember_event(f"ev-{i}")
                store.changes_since(0, limit=5)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    store = Store.open(db_url)
    try:
        changes = store.changes_since(0)
        assert len(changes) == 90
        seqs = [s for s, _ in changes]
        assert seqs == sorted(set(seqs))
    finally:
        store.close()


def test_heroku_style_postgres_url_connects(pg_url: str) -> None:
    store = Store.open(pg_url.replace("postgresql+psycopg://", "postgres://", 1))
    try:
        assert store.dialect == "postgresql"
        assert store.migrate() == [1, 2, 3]
        store.check_schema()
    finally:
        store.close()
