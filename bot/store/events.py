"""Cross-worker dedupe of Slack deliveries (``seen_events``) and paged search sessions (``search_sessions``).

``remember_event`` is an ``INSERT … ON CONFLICT DO NOTHING`` on both databases, so of two workers
racing on the same Slack ``event_id`` (or command retry key) exactly one gets True.

A search session remembers a ``/papers`` query so a "More results" button can fetch the next page;
``advance_search_session`` is a compare-and-set on ``next_offset`` so a double click or a retried
action serves each page once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.store.engine import run_tx, storable
from bot.store.schema import search_sessions, seen_events


@dataclass(frozen=True, slots=True)
class SearchSession:
    id: str
    channel: str
    user_id: str | None
    query: str
    thread_ts: str | None
    next_offset: int
    created_at: datetime


def remember_event(engine: Engine, key: str, now: datetime | None = None) -> bool:
    """Record ``key``; True the first time it is seen (by any worker), False afterwards."""
    values = {"key": key, "at": now or datetime.now(UTC)}

    def work(conn: Connection) -> bool:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(seen_events).values(**values).on_conflict_do_nothing(index_elements=["key"])
        # RETURNING, not rowcount: SQLAlchemy 2.1 does not keep rowcount for INSERT on psycopg.
        return conn.execute(stmt.returning(seen_events.c.key)).first() is not None

    return run_tx(engine, work)


def forget_events_before(engine: Engine, cutoff: datetime) -> int:
    """Delete dedupe keys recorded before ``cutoff``; return how many were deleted."""
    stmt = seen_events.delete().where(seen_events.c.at < cutoff)
    return run_tx(engine, lambda c: c.execute(stmt).rowcount)


def save_search_session(
    engine: Engine,
    channel: str,
    user_id: str | None,
    query: str,
    next_offset: int,
    thread_ts: str | None = None,
    now: datetime | None = None,
    session_id: str | None = None,
) -> SearchSession:
    """Store a new session (a fresh random id unless ``session_id`` is given) and return it."""
    session = SearchSession(
        id=session_id or secrets.token_urlsafe(12),
        channel=channel,
        user_id=user_id,
        query=storable(query),  # the query parser reads NUL as a space and a lone surrogate as U+FFFD too
        thread_ts=thread_ts,
        next_offset=next_offset,
        created_at=now or datetime.now(UTC),
    )
    values = {f: getattr(session, f) for f in SearchSession.__slots__}
    run_tx(engine, lambda c: c.execute(search_sessions.insert().values(**values)))
    return session


def get_search_session(engine: Engine, session_id: str) -> SearchSession | None:
    stmt = sa.select(search_sessions).where(search_sessions.c.id == session_id)
    row = run_tx(engine, lambda c: c.execute(stmt).first(), write=False)
    return SearchSession(**row._mapping) if row is not None else None


def advance_search_session(
    engine: Engine, session_id: str, from_offset: int, to_offset: int, thread_ts: str | None = None
) -> bool:
    """Move ``next_offset`` from ``from_offset`` to ``to_offset`` (and set ``thread_ts`` if given).

    Returns False when the session is gone or another click already moved it (serve nothing then).
    """
    values: dict[str, object] = {"next_offset": to_offset}
    if thread_ts is not None:
        values["thread_ts"] = thread_ts
    stmt = (
        search_sessions.update()
        .where(search_sessions.c.id == session_id, search_sessions.c.next_offset == from_offset)
        .values(**values)
    )
    return run_tx(engine, lambda c: c.execute(stmt).rowcount == 1)


def forget_search_sessions_before(engine: Engine, cutoff: datetime) -> int:
    """Delete search sessions created before ``cutoff``; return how many were deleted."""
    stmt = search_sessions.delete().where(search_sessions.c.created_at < cutoff)
    return run_tx(engine, lambda c: c.execute(stmt).rowcount)
