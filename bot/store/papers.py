"""The ``papers`` table: idempotent bulk upsert with source-aware merging, and read queries.

Every real change (insert or update) gives the row a new ``seq``, one above the table's maximum,
assigned while the writer holds the write lock (SQLite ``BEGIN IMMEDIATE``; a transaction-scoped
advisory lock on PostgreSQL). Writers are serialised, so ``seq`` grows in commit order and
``changes_since(seq)`` never skips a committed change. A new row's ``first_seq`` is its first
``seq`` and never changes: digest windows are ranges of it, so a paper committed after a window was
planned always falls in the next one, whatever its ``first_seen`` stamp says.

Merge rules for a record whose id is already stored:

* a bibliographic record (any source other than ``huggingface``) replaces title, abstract,
  authors, categories, version, dates, comment, journal_ref, doi and announce_type when its version
  is not older than the stored one (an unknown version only replaces an unknown version); a null
  or empty new value never erases an old one, and an older version only fills gaps;
* a Hugging Face record sets hf_upvotes/hf_repo/hf_keywords (when given) and hf_date (earliest
  wins); it fills title/abstract/authors only when the row came from Hugging Face alone;
* ``sources`` is the union, ``announced`` the earliest non-null, ``first_seen`` never changes.

A new row's ``first_seen`` is ``paper.first_seen`` when given (importers pass historical dates),
else ``now``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.models import Paper
from bot.store.engine import run_tx, storable
from bot.store.schema import papers

BATCH_SIZE = 1000
HF = "huggingface"
_PG_SEQ_LOCK = 0x50505351  # pg_advisory_xact_lock key for papers.seq ("PPSQ")
_LISTS = ("authors", "categories", "hf_keywords", "sources")
_BIBLIO = (
    *("title", "abstract", "authors", "categories", "published", "updated"),
    *("comment", "journal_ref", "doi", "announce_type"),
)
_TRACKED = tuple(
    c.name for c in papers.columns if c.name not in ("id", "seq", "first_seq", "first_seen", "last_changed")
)


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


def _utc(value: datetime | None, what: str, paper_id: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"paper {paper_id}: {what} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _text(value: str | None) -> str | None:
    return None if value is None else storable(value)


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(storable(v) for v in values)


def _values(p: Paper) -> dict[str, Any]:
    """The tracked column values of a paper (lists as tuples, datetimes in UTC, text storable)."""
    return {
        "version": p.version,
        "title": storable(p.title),
        "abstract": storable(p.abstract),
        "authors": _texts(p.authors),
        "categories": _texts(p.categories),
        "primary_category": _text(p.primary_category),
        "announced": p.announced,
        "published": _utc(p.published, "published", p.id),
        "updated": _utc(p.updated, "updated", p.id),
        "comment": _text(p.comment),
        "journal_ref": _text(p.journal_ref),
        "doi": _text(p.doi),
        "announce_type": _text(p.announce_type),
        "hf_upvotes": p.hf_upvotes,
        "hf_repo": _text(p.hf_repo),
        "hf_keywords": _texts(p.hf_keywords),
        "hf_date": p.hf_date,
        "sources": tuple(dict.fromkeys(_texts(p.sources))),
    }


def _from_row(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for name in _LISTS:
        d[name] = tuple(json.loads(d[name] or "[]"))
    return d


def _to_row(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    for name in _LISTS:
        out[name] = json.dumps(list(d[name]), ensure_ascii=False)
    return out


def row_to_paper(row: Any) -> Paper:
    d = _from_row(row)
    fields = {k: d[k] for k in _TRACKED if k != "primary_category"}
    return Paper(id=d["id"], first_seen=d["first_seen"], **fields)


def _earliest(a: Any, b: Any) -> Any:
    return min(x for x in (a, b) if x is not None) if a is not None or b is not None else None


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Apply the module's merge rules; ``old`` and ``new`` hold the tracked values."""
    out = dict(old)
    is_hf = HF in new["sources"]
    if not is_hf or any(s != HF for s in new["sources"]):
        ov, nv = old["version"], new["version"]
        newer = (ov is None and nv is None) or (nv is not None and (ov is None or nv >= ov))
        for name in _BIBLIO:
            if new[name] not in (None, (), "") and (newer or old[name] in (None, (), "")):
                out[name] = new[name]
        if nv is not None and (ov is None or nv > ov):
            out["version"] = nv
    if is_hf:
        for name in ("hf_upvotes", "hf_repo", "hf_keywords"):
            if new[name] not in (None, ()):
                out[name] = new[name]
        out["hf_date"] = _earliest(old["hf_date"], new["hf_date"])
        if set(old["sources"]) <= {HF}:
            for name in ("title", "abstract", "authors"):
                if new[name] not in (None, (), ""):
                    out[name] = new[name]
    out["primary_category"] = out["categories"][0] if out["categories"] else None
    out["announced"] = _earliest(old["announced"], new["announced"])
    out["sources"] = tuple(dict.fromkeys(old["sources"] + new["sources"]))
    return out


def _upsert_batch(conn: Connection, *, batch: list[Paper], now: datetime) -> UpsertCounts:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SEQ_LOCK)))
    ids = list(dict.fromkeys(p.id for p in batch))
    cols = [papers.c.id, papers.c.first_seen, *(papers.c[n] for n in _TRACKED)]
    stored = {r.id: _from_row(r) for r in conn.execute(sa.select(*cols).where(papers.c.id.in_(ids)))}
    state: dict[str, dict[str, Any]] = {}  # rows to write, by id
    is_new: dict[str, bool] = {}
    inserted = updated = unchanged = 0  # per input record
    for p in batch:
        values = _values(p)
        current = state.get(p.id) or stored.get(p.id)
        if current is None:
            first_seen = _utc(p.first_seen, "first_seen", p.id) or now
            state[p.id] = {"id": p.id, "first_seen": first_seen, **values}
            is_new[p.id] = True
            inserted += 1
            continue
        tracked = {k: current[k] for k in _TRACKED}
        merged = _merge(tracked, values)
        if merged == tracked:
            unchanged += 1
            continue
        state[p.id] = {**current, **merged}
        is_new.setdefault(p.id, False)
        updated += 1
    if state:
        seq = (conn.scalar(sa.select(sa.func.max(papers.c.seq))) or 0) + 1
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        for i, (pid, d) in enumerate(state.items()):
            row = _to_row({**d, "seq": seq + i, "last_changed": now})
            if is_new[pid]:
                new_rows.append({**row, "first_seq": seq + i})
            else:
                changed_rows.append(row)
        if new_rows:
            conn.execute(papers.insert(), new_rows)
        if changed_rows:
            stmt = papers.update().where(papers.c.id == sa.bindparam("b_id"))
            stmt = stmt.values({c: sa.bindparam(c) for c in ("seq", "last_changed", *_TRACKED)})
            conn.execute(stmt, [{**r, "b_id": r["id"]} for r in changed_rows])
    return UpsertCounts(inserted, updated, unchanged)


def upsert_papers(
    engine: Engine, items: Iterable[Paper], now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> UpsertCounts:
    """Insert or merge papers in batches (one short transaction each); the same input twice changes nothing."""
    now = _utc(now, "now", "-") or datetime.now(UTC)
    total = UpsertCounts()
    batch: list[Paper] = []
    for paper in items:
        batch.append(paper)
        if len(batch) >= batch_size:
            total += run_tx(engine, partial(_upsert_batch, batch=batch, now=now))
            batch = []
    if batch:
        total += run_tx(engine, partial(_upsert_batch, batch=batch, now=now))
    return total


def _fetch(engine: Engine, stmt: sa.Select[Any]) -> list[sa.Row[Any]]:
    def work(conn: Connection) -> list[sa.Row[Any]]:
        return list(conn.execute(stmt))

    return run_tx(engine, work, write=False)


def get_papers(engine: Engine, ids: Iterable[str]) -> dict[str, Paper]:
    """The stored papers among ``ids``, keyed by id (missing ids are absent)."""
    wanted = list(dict.fromkeys(ids))
    out: dict[str, Paper] = {}
    for start in range(0, len(wanted), BATCH_SIZE):
        chunk = wanted[start : start + BATCH_SIZE]
        rows = _fetch(engine, sa.select(papers).where(papers.c.id.in_(chunk)))
        out.update((r.id, row_to_paper(r)) for r in rows)
    return out


def changes_since(engine: Engine, seq: int, limit: int | None = None) -> list[tuple[int, Paper]]:
    """Papers inserted or changed after ``seq``, as ``(seq, paper)`` in ascending ``seq`` order."""
    stmt = sa.select(papers).where(papers.c.seq > seq).order_by(papers.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = _fetch(engine, stmt)
    return [(r.seq, row_to_paper(r)) for r in rows]


def max_seq(engine: Engine) -> int:
    """The latest change sequence number (0 for an empty table)."""
    return run_tx(engine, lambda c: c.scalar(sa.select(sa.func.max(papers.c.seq))) or 0, write=False)


def count_papers(engine: Engine) -> int:
    return run_tx(engine, lambda c: c.scalar(sa.select(sa.func.count()).select_from(papers)) or 0, write=False)


def papers_first_seen(
    engine: Engine,
    start: datetime,
    end: datetime | None = None,
    *,
    news_since: date | None = None,
    after_seq: int | None = None,
    upto_seq: int | None = None,
) -> list[Paper]:
    """Papers whose ``first_seen`` is in ``[start, end)``, oldest first.

    With ``after_seq``/``upto_seq``, only rows inserted in that ``first_seq`` range ``(after, upto]``
    (a digest window in commit order). With ``news_since``, only those announced on arXiv or listed
    by HF on that day or later: the filter runs in the database, so a window that holds a freshly
    imported archive stays cheap.
    """
    c = papers.c
    stmt = sa.select(papers).where(c.first_seen >= start)
    if end is not None:
        stmt = stmt.where(c.first_seen < end)
    if after_seq is not None:
        stmt = stmt.where(c.first_seq > after_seq)
    if upto_seq is not None:
        stmt = stmt.where(c.first_seq <= upto_seq)
    if news_since is not None:
        stmt = stmt.where(sa.or_(c.announced >= news_since, c.hf_date >= news_since))
    return [row_to_paper(r) for r in _fetch(engine, stmt.order_by(c.first_seen, c.id))]


def iter_papers(engine: Engine, batch_size: int = 5000) -> Iterator[Paper]:
    """Every paper in id order, read in short transactions of ``batch_size`` rows (keyset pagination).

    Rows written while iterating may or may not be seen; pair with ``max_seq``/``changes_since``.
    """
    after: str | None = None
    while True:
        stmt = sa.select(papers).order_by(papers.c.id).limit(batch_size)
        if after is not None:
            stmt = stmt.where(papers.c.id > after)
        rows = _fetch(engine, stmt)
        for row in rows:
            yield row_to_paper(row)
        if len(rows) < batch_size:
            return
        after = rows[-1].id
