"""The tables of the store, as the current schema has them (``bot/store/migrations.py`` creates them).

The module-level ``Table`` objects describe the schema at ``migrations.SCHEMA_VERSION``; the other
store modules import them from here. When a migration alters a table, the migrations that came
before it keep a frozen copy of the old definition (see ``migrations._v1_metadata``).

``UTCDateTime`` stores tz-aware datetimes and always returns aware UTC ones, on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that accepts only aware datetimes and returns aware UTC ones.

    SQLite has no time zone type, so values are stored as naive UTC text there (which also keeps
    lexicographic comparisons correct).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

papers = sa.Table(
    "papers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False),
    sa.Column("authors", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("categories", sa.Text, nullable=False, server_default="[]"),  # JSON list, primary first
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
    sa.Column("hf_keywords", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("hf_date", sa.Date),
    sa.Column("sources", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_changed", UTCDateTime, nullable=False),
    # The seq the row was inserted with; never changes. Digest windows are ranges of it (migration 3).
    sa.Column("first_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_papers_seq", "seq", unique=True),
    sa.Index("ix_papers_first_seen", "first_seen"),
    sa.Index("ix_papers_first_seq", "first_seq"),
)

digest_runs = sa.Table(
    "digest_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("window_start", UTCDateTime),
    sa.Column("window_end", UTCDateTime),
    sa.Column("seq_end", sa.BigInteger),  # the papers.seq watermark the window was planned up to (migration 3)
    sa.Column("parent_ts", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.UniqueConstraint("channel", "day", name="uq_digest_runs_channel_day"),
    sqlite_autoincrement=True,
)

digest_messages = sa.Table(
    "digest_messages",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("digest_runs.id"), nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),  # 0 = the parent message
    sa.Column("state", sa.Text, nullable=False),  # pending | posted | failed
    sa.Column("payload", sa.Text, nullable=False),  # JSON of the rendered message
    sa.Column("ts", sa.Text),
    sa.Column("posted_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("run_id", "chunk", name="pk_digest_messages"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("paper_id", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("digest_runs.id"), nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # pending | posted
    sa.Column("message_ts", sa.Text),
    sa.PrimaryKeyConstraint("channel", "paper_id", name="pk_outbox"),  # a paper goes to a channel once, ever
    sa.Index("ix_outbox_run", "run_id", "chunk"),
)

keyword_edits = sa.Table(
    "keyword_edits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # keyword | exclude
    sa.Column("keyword", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # add | remove
    sa.Column("user_id", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_keyword_edits_channel", "channel", "id"),
    sqlite_autoincrement=True,
)

seen_events = sa.Table(
    "seen_events",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_seen_events_at", "at"),
)

search_sessions = sa.Table(
    "search_sessions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("thread_ts", sa.Text),
    sa.Column("next_offset", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_search_sessions_created_at", "created_at"),
)

index_cache = sa.Table(  # the search index's arrays, so a restart need not re-tokenize the archive
    "index_cache",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # "meta" (JSON) or an array's name
    sa.Column("data", sa.LargeBinary, nullable=False),
)
