"""Numbered, append-only migrations of the store, recorded in ``schema_migrations``, and the checks
that refuse a database older or newer than the code.

Once released, a migration's body never changes. When migration N+1 alters a table, the earlier
migrations get a frozen copy of the old definition before the table in ``schema.py`` is edited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.errors import SchemaError
from bot.store.engine import transaction
from bot.store.schema import (
    UTCDateTime,
    digest_messages,
    index_cache,
    keyword_edits,
    outbox,
    schema_migrations,
    search_sessions,
    seen_events,
)

MIGRATE_HINT = "run `python -m bot migrate`"
_PG_MIGRATE_LOCK = 0x50504D49  # pg_advisory_xact_lock key for migrations ("PPMI")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _v1_metadata() -> sa.MetaData:
    """The tables as migration 1 created them, frozen: later migrations alter ``papers`` and ``digest_runs``."""
    v1 = sa.MetaData()
    sa.Table(
        "papers",
        v1,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("authors", sa.Text, nullable=False, server_default="[]"),
        sa.Column("categories", sa.Text, nullable=False, server_default="[]"),
        sa.Column("primary_category", sa.Text),
        sa.Column("announced", sa.Date),
        sa.Column("published", UTCDateTime),
        sa.Column("updated", UTCDateTime),
        sa.Column("comment", sa.Text),
        sa.Column("journal_ref", sa.Text),
        sa.Column("doi", sa.Text),
        sa.Column("announce_type", sa.Text),
        sa.Column("hf_upvotes", sa.Integer),
        sa.Column("hf_repo", sa.Text),
        sa.Column("hf_keywords", sa.Text, nullable=False, server_default="[]"),
        sa.Column("hf_date", sa.Date),
        sa.Column("sources", sa.Text, nullable=False, server_default="[]"),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_changed", UTCDateTime, nullable=False),
        sa.Index("ix_papers_seq", "seq", unique=True),
        sa.Index("ix_papers_first_seen", "first_seen"),
    )
    sa.Table(
        "digest_runs",
        v1,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("window_start", UTCDateTime),
        sa.Column("window_end", UTCDateTime),
        sa.Column("parent_ts", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.UniqueConstraint("channel", "day", name="uq_digest_runs_channel_day"),
        sqlite_autoincrement=True,
    )
    for table in (digest_messages, outbox, keyword_edits, seen_events, search_sessions):
        table.to_metadata(v1)
    return v1


def _m1_initial(conn: Connection) -> None:
    _v1_metadata().create_all(conn, checkfirst=False)


def _m2_index_cache(conn: Connection) -> None:
    index_cache.create(conn, checkfirst=False)


def _m3_commit_ordered_windows(conn: Connection) -> None:
    """Digest windows by commit order: ``papers.first_seq`` and ``digest_runs.seq_end``.

    A time window lost papers whose ``first_seen`` stamp was taken before another worker planned but
    which committed after it (found by the soak test). Existing rows get ``first_seq = seq``.
    """
    conn.execute(sa.text("ALTER TABLE papers ADD COLUMN first_seq BIGINT NOT NULL DEFAULT 0"))
    conn.execute(sa.text("UPDATE papers SET first_seq = seq"))
    conn.execute(sa.text("CREATE INDEX ix_papers_first_seq ON papers (first_seq)"))
    conn.execute(sa.text("ALTER TABLE digest_runs ADD COLUMN seq_end BIGINT"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _m1_initial),
    Migration(2, "search index cache", _m2_index_cache),
    Migration(3, "commit-ordered digest windows", _m3_commit_ordered_windows),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _versions(conn: Connection) -> list[int] | None:
    """Applied versions, ascending; None when there is no ``schema_migrations`` table."""
    if not sa.inspect(conn).has_table("schema_migrations"):
        return None
    return list(conn.scalars(sa.select(schema_migrations.c.version).order_by(schema_migrations.c.version)))


def schema_version(engine: Engine) -> int:
    """The highest applied migration, 0 for a blank database."""
    with transaction(engine, write=False) as conn:
        versions = _versions(conn)
    return versions[-1] if versions else 0


def migrate(engine: Engine, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply the missing migrations (default: ``MIGRATIONS``), each in its own transaction; return the versions applied.

    Safe to run twice, and from two processes at once: each step holds the database write lock
    (SQLite ``BEGIN IMMEDIATE``) or a transaction-scoped advisory lock (PostgreSQL) and re-reads
    the applied versions under it. A failing migration is rolled back and leaves its version unapplied.

    Raises:
        SchemaError: the database is newer than this code.
    """
    migrations = MIGRATIONS if migrations is None else migrations  # looked up per call, not at import
    code_version = migrations[-1].version if migrations else 0
    applied: list[int] = []
    while True:
        with transaction(engine, write=True) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATE_LOCK)))
            schema_migrations.create(conn, checkfirst=True)
            done = set(_versions(conn) or ())
            if done and max(done) > code_version:
                raise SchemaError(
                    f"database schema is at version {max(done)}, newer than this code's {code_version}: "
                    "deploy the newer code"
                )
            pending = [m for m in migrations if m.version not in done]
            if not pending:
                return applied
            step = pending[0]
            step.apply(conn)
            conn.execute(
                schema_migrations.insert().values(version=step.version, name=step.name, applied_at=datetime.now(UTC))
            )
            applied.append(step.version)


def check_schema(engine: Engine, expected: int | None = None) -> None:
    """Raise unless the database schema is exactly at ``expected`` (default: the last of ``MIGRATIONS``).

    Raises:
        SchemaError: the schema is missing, older than the code (the message says to migrate) or newer.
    """
    expected = MIGRATIONS[-1].version if expected is None else expected
    with transaction(engine, write=False) as conn:
        versions = _versions(conn)
    if not versions:
        raise SchemaError(f"database has no Paperboy schema (this code needs version {expected}): {MIGRATE_HINT}")
    current = versions[-1]
    if current < expected:
        raise SchemaError(f"database schema is at version {current}, this code needs {expected}: {MIGRATE_HINT}")
    if current > expected:
        raise SchemaError(
            f"database schema is at version {current}, newer than this code's {expected}: deploy the newer code"
        )
