"""Migrations and schema checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.errors import SchemaError
from bot.store import SCHEMA_VERSION, Store
from bot.store.migrations import MIGRATIONS, Migration, _v1_metadata, check_schema, migrate, schema_version
from bot.store.schema import digest_runs, metadata, outbox, schema_migrations

TABLES = {
    "schema_migrations",
    "papers",
    "digest_runs",
    "digest_messages",
    "outbox",
    "keyword_edits",
    "seen_events",
    "search_sessions",
}


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def test_migrate_blank_database_then_rerun_is_a_noop(store: Store) -> None:
    assert store.schema_version() == 0
    assert store.migrate() == [1, 2, 3]
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
    store.check_schema()
    assert store.migrate() == []
    rows = store.run(lambda c: list(c.execute(sa.select(schema_migrations))), write=False)
    assert [(r.version, r.name) for r in rows] == [
        (1, "initial tables"),
        (2, "search index cache"),
        (3, "commit-ordered digest windows"),
    ]
    assert rows[0].applied_at.tzinfo is not None


def test_check_schema_on_blank_database_names_the_fix(store: Store) -> None:
    with pytest.raises(SchemaError, match=r"run `python -m bot migrate`"):
        store.check_schema()


def test_check_schema_on_older_database_names_versions_and_fix(store: Store) -> None:
    store.migrate()
    with pytest.raises(SchemaError, match=r"at version 3, this code needs 4: run `python -m bot migrate`"):
        check_schema(store.engine, expected=4)


def test_newer_database_is_refused_by_check_and_migrate(store: Store) -> None:
    store.migrate()
    store.run(lambda c: c.execute(schema_migrations.insert().values(version=99, name="future", applied_at=_now())))
    with pytest.raises(SchemaError, match="at version 99, newer than this code's 3"):
        store.check_schema()
    with pytest.raises(SchemaError, match="newer"):
        store.migrate()


def test_failing_migration_is_rolled_back_and_stays_unapplied(store: Store) -> None:
    def boom(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE half_done (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(sa.exc.DBAPIError):
        migrate(store.engine, (*MIGRATIONS, Migration(4, "broken", boom)))
    assert schema_version(store.engine) == 3  # migrations 1 to 3 each committed in its own transaction
    assert "half_done" not in sa.inspect(store.engine).get_table_names()


def test_two_concurrent_migrations_apply_each_version_once(db_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        s = Store.open(db_url)
        try:
            barrier.wait(timeout=10)
            results.append(s.migrate())
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(v for applied in results for v in applied) == [1, 2, 3]  # each version once, by any of them


def test_aware_datetimes_round_trip_as_utc_and_naive_ones_are_refused(store: Store) -> None:
    store.migrate()
    created = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.run(
        lambda c: c.execute(
            digest_runs.insert().values(
                channel="C1", day=date(2026, 3, 29), state="claimed", created_at=created, lease_until=None
            )
        )
    )
    row = store.run(lambda c: c.execute(sa.select(digest_runs)).one(), write=False)
    assert row.created_at == created
    assert row.created_at.utcoffset() == timedelta(0)
    assert row.created_at.hour == 23 and row.created_at.day == 28
    assert row.lease_until is None and row.day == date(2026, 3, 29)
    # Comparisons in SQL use UTC on both backends.
    later = datetime(2026, 3, 28, 23, 30, 16, tzinfo=UTC)
    n = store.run(lambda c: c.scalar(sa.select(sa.func.count()).where(digest_runs.c.created_at < later)))
    assert n == 1
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        store.run(
            lambda c: c.execute(
                digest_runs.insert().values(
                    channel="C2", day=date(2026, 3, 29), state="x", created_at=datetime(2026, 1, 1)
                )
            )
        )


def test_constraints_hold_unique_run_per_day_and_foreign_keys(store: Store) -> None:
    store.migrate()
    values = {"channel": "C1", "day": date(2026, 1, 5), "state": "claimed", "created_at": _now()}
    store.run(lambda c: c.execute(digest_runs.insert().values(**values)))
    with pytest.raises(sa.exc.IntegrityError):
        store.run(lambda c: c.execute(digest_runs.insert().values(**values)))
    with pytest.raises(sa.exc.IntegrityError):  # run 999 does not exist (FKs are on in SQLite too)
        store.run(
            lambda c: c.execute(
                outbox.insert().values(
                    channel="C1", paper_id="2501.00001", run_id=999, chunk=1, position=0, state="pending"
                )
            )
        )


def _now() -> datetime:
    return datetime.now(UTC)


def test_migration_3_keeps_every_row_and_continues_the_digest_window_from_its_time(store: Store) -> None:
    """A database planned under version 2 (time windows) upgrades in place: ``first_seq`` = ``seq``, and
    the next digest window starts where the last time window ended."""
    from bot.window import next_window
    from tests.botproc import news

    migrate(store.engine, MIGRATIONS[:2])
    v2_papers = _v1_metadata().tables["papers"]  # what version-2 code wrote: no first_seq column
    stamped = _now() - timedelta(hours=2)
    rows = [
        {"id": p.id, "seq": n, "title": p.title, "abstract": p.abstract, "first_seen": stamped, "last_changed": stamped}
        for n, p in enumerate(news(3), start=1)
    ]
    store.run(lambda c: c.execute(v2_papers.insert(), rows))
    planned_until = _now() - timedelta(hours=1)
    store.run(
        lambda c: c.execute(
            digest_runs.insert().values(
                channel="C1",
                day=date(2026, 1, 5),
                state="posted",
                created_at=planned_until,
                window_start=planned_until - timedelta(days=1),
                window_end=planned_until,
            )  # fmt: skip
        )
    )
    assert store.migrate() == [3]
    rows = store.run(lambda c: list(c.execute(sa.text("SELECT seq, first_seq FROM papers"))), write=False)
    assert len(rows) == 3 and all(r.first_seq == r.seq for r in rows)
    assert {c["name"] for c in sa.inspect(store.engine).get_columns("digest_runs")} >= {"seq_end"}

    window = next_window(store, "C1", _now())
    assert (window.after_seq, window.start, window.seen_since) == (None, planned_until, planned_until)
    assert window.seq_end == store.max_seq() == 3
    store.upsert_papers(news(1, start=40))
    (new,) = store.get_papers(["2611.00040"]).values()
    assert new.first_seen is not None and new.first_seen >= planned_until
    fresh = store.run(lambda c: c.scalar(sa.text("SELECT first_seq FROM papers WHERE id = '2611.00040'")))
    assert fresh == 4  # new rows get their own first seq


def test_a_migrated_database_has_every_column_and_index_the_code_declares(store: Store) -> None:
    migrate(store.engine, MIGRATIONS[:1])  # a version-1 database, upgraded step by step
    store.migrate()
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}, table.name
        declared = {i.name for i in table.indexes}
        assert declared <= {i["name"] for i in inspector.get_indexes(table.name)}, table.name
