"""Per-channel keyword edits made from Slack, and the effective keyword lists they produce.

The YAML config gives each channel its base keywords and excludes; Slack users add or remove
entries. Edits are an append-only log (``keyword_edits``); the latest edit per
(kind, keyword compared case-insensitively) wins over the base list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.store.engine import run_tx, storable
from bot.store.schema import keyword_edits as edits_table

KINDS = ("keyword", "exclude")
ACTIONS = ("add", "remove")


@dataclass(frozen=True, slots=True)
class KeywordEdit:
    """One add/remove of a keyword or exclude, as recorded."""

    id: int
    channel: str
    kind: str  # keyword | exclude
    keyword: str
    action: str  # add | remove
    user_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class KeywordSource:
    """An effective keyword and where it came from: the config file, or a Slack user's edit."""

    keyword: str
    origin: Literal["config", "slack"]
    user_id: str | None = None
    at: datetime | None = None


def record_keyword_edit(
    engine: Engine,
    channel: str,
    kind: str,
    keyword: str,
    action: str,
    user_id: str | None,
    now: datetime | None = None,
) -> KeywordEdit:
    """Append one edit to the channel's log and return it.

    Raises:
        ValueError: unknown ``kind``/``action`` or an empty keyword (a caller bug; parse user text first).
    """
    if kind not in KINDS:
        raise ValueError(f"keyword edit kind must be one of {KINDS}, got {kind!r}")
    if action not in ACTIONS:
        raise ValueError(f"keyword edit action must be one of {ACTIONS}, got {action!r}")
    keyword = " ".join(storable(keyword).split())
    if not keyword:
        raise ValueError("keyword must not be empty")
    at = now or datetime.now(UTC)
    values = {"channel": channel, "kind": kind, "keyword": keyword, "action": action, "user_id": user_id, "at": at}

    def work(conn: Connection) -> int:
        key = conn.execute(edits_table.insert().values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    return KeywordEdit(run_tx(engine, work), channel, kind, keyword, action, user_id, at)


def keyword_edits(engine: Engine, channel: str) -> list[KeywordEdit]:
    """The channel's edits, oldest first."""
    stmt = sa.select(edits_table).where(edits_table.c.channel == channel).order_by(edits_table.c.at, edits_table.c.id)
    rows = run_tx(engine, lambda c: list(c.execute(stmt)), write=False)
    return [KeywordEdit(**r._mapping) for r in rows]


def effective_keywords(
    engine: Engine, channel: str, base_keywords: Sequence[str], base_excludes: Sequence[str]
) -> tuple[list[KeywordSource], list[KeywordSource]]:
    """The channel's keywords and excludes: the config lists plus Slack adds, minus Slack removes.

    Config entries keep their order and come first (an add of a config entry keeps it ``config``);
    Slack additions follow in the order of their latest add.
    """
    latest: dict[tuple[str, str], KeywordEdit] = {}
    for edit in keyword_edits(engine, channel):
        key = (edit.kind, edit.keyword.casefold())
        latest.pop(key, None)  # re-insert so dict order follows the latest edit
        latest[key] = edit
    return (
        _effective("keyword", base_keywords, latest),
        _effective("exclude", base_excludes, latest),
    )


def _effective(kind: str, base: Sequence[str], latest: dict[tuple[str, str], KeywordEdit]) -> list[KeywordSource]:
    out: list[KeywordSource] = []
    seen: set[str] = set()
    for word in base:
        key = " ".join(word.split()).casefold()
        edit = latest.get((kind, key))
        if key in seen or (edit is not None and edit.action == "remove"):
            continue
        seen.add(key)
        out.append(KeywordSource(word, "config"))
    for (k, key), edit in latest.items():
        if k == kind and edit.action == "add" and key not in seen:
            seen.add(key)
            out.append(KeywordSource(edit.keyword, "slack", edit.user_id, edit.at))
    return out
