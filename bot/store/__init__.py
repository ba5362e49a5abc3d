"""The store: one SQLAlchemy Core database (SQLite or PostgreSQL) behind a small ``Store`` facade.

``Store.open(url)`` builds a tuned engine (see ``engine.py``); the methods delegate to the modules
that own each table group: ``papers.py``, ``keywords.py`` and ``events.py``. Digest runs, messages
and the outbox live in ``digests.py``; the tables are declared in ``schema.py`` and created by
``migrations.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

from bot.models import Paper
from bot.store import events, index_cache, keywords, migrations, papers
from bot.store.engine import create_engine, normalize_url, run_tx, transaction
from bot.store.events import SearchSession
from bot.store.keywords import KeywordEdit, KeywordSource
from bot.store.migrations import SCHEMA_VERSION
from bot.store.papers import UpsertCounts

__all__ = [
    "SCHEMA_VERSION",
    "KeywordEdit",
    "KeywordSource",
    "SearchSession",
    "Store",
    "UpsertCounts",
    "create_engine",
    "normalize_url",
    "open_store",
    "run_tx",
    "transaction",
]

T = TypeVar("T")


class Store:
    """The bot's database. Thread-safe: every method runs its own short transaction(s)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(create_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def run(self, fn: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``fn(conn)`` in one transaction, retried on a dropped connection (see ``run_tx``)."""
        return run_tx(self.engine, fn, write=write)

    # schema
    def migrate(self) -> list[int]:
        return migrations.migrate(self.engine)

    def check_schema(self) -> None:
        migrations.check_schema(self.engine)

    def schema_version(self) -> int:
        return migrations.schema_version(self.engine)

    # papers
    def upsert_papers(self, items: Iterable[Paper], now: datetime | None = None) -> UpsertCounts:
        return papers.upsert_papers(self.engine, items, now)

    def get_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        return papers.get_papers(self.engine, ids)

    def changes_since(self, seq: int, limit: int | None = None) -> list[tuple[int, Paper]]:
        return papers.changes_since(self.engine, seq, limit)

    def max_seq(self) -> int:
        return papers.max_seq(self.engine)

    def count_papers(self) -> int:
        return papers.count_papers(self.engine)

    def papers_first_seen(
        self,
        start: datetime,
        end: datetime | None = None,
        *,
        news_since: date | None = None,
        after_seq: int | None = None,
        upto_seq: int | None = None,
    ) -> list[Paper]:
        return papers.papers_first_seen(
            self.engine, start, end, news_since=news_since, after_seq=after_seq, upto_seq=upto_seq
        )

    def iter_papers(self, batch_size: int = 5000) -> Iterator[Paper]:
        return papers.iter_papers(self.engine, batch_size)

    # keywords
    def save_index_cache(self, make_parts: Callable[[], Iterable[tuple[str, bytes]]]) -> int:
        return index_cache.save_parts(self.engine, make_parts)

    def load_index_cache(self) -> dict[str, bytes]:
        return index_cache.load_parts(self.engine)

    def clear_index_cache(self) -> None:
        index_cache.clear(self.engine)

    def record_keyword_edit(
        self, channel: str, kind: str, keyword: str, action: str, user_id: str | None, now: datetime | None = None
    ) -> KeywordEdit:
        return keywords.record_keyword_edit(self.engine, channel, kind, keyword, action, user_id, now)

    def keyword_edits(self, channel: str) -> list[KeywordEdit]:
        return keywords.keyword_edits(self.engine, channel)

    def effective_keywords(
        self, channel: str, base_keywords: Sequence[str], base_excludes: Sequence[str]
    ) -> tuple[list[KeywordSource], list[KeywordSource]]:
        return keywords.effective_keywords(self.engine, channel, base_keywords, base_excludes)

    # events and search sessions
    def remember_event(self, key: str, now: datetime | None = None) -> bool:
        return events.remember_event(self.engine, key, now)

    def forget_events_before(self, cutoff: datetime) -> int:
        return events.forget_events_before(self.engine, cutoff)

    def save_search_session(
        self,
        channel: str,
        user_id: str | None,
        query: str,
        next_offset: int,
        thread_ts: str | None = None,
        now: datetime | None = None,
        session_id: str | None = None,
    ) -> SearchSession:
        return events.save_search_session(self.engine, channel, user_id, query, next_offset, thread_ts, now, session_id)

    def get_search_session(self, session_id: str) -> SearchSession | None:
        return events.get_search_session(self.engine, session_id)

    def advance_search_session(
        self, session_id: str, from_offset: int, to_offset: int, thread_ts: str | None = None
    ) -> bool:
        return events.advance_search_session(self.engine, session_id, from_offset, to_offset, thread_ts)

    def forget_search_sessions_before(self, cutoff: datetime) -> int:
        return events.forget_search_sessions_before(self.engine, cutoff)


def open_store(url: str) -> Store:
    """``Store.open(url)``."""
    return Store.open(url)
