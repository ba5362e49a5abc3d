"""Digest bookkeeping for exactly-once delivery: run claims with leases, planned messages, and the outbox.

A run is unique per (channel, local day). A worker claims it with a lease; only the lease holder
plans and posts. Planning writes every message of the digest (``digest_messages``) and one outbox
row per paper (unique per channel, ever) in one transaction, before anything is posted. Posting
bumps ``attempts`` before calling Slack, so a message with attempts > 0 that is still pending may
have reached Slack and must be reconciled (via message metadata) before it is posted again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.errors import PlanConflict
from bot.models import Message
from bot.store.engine import run_tx
from bot.store.schema import digest_messages, digest_runs, outbox

# Final states: the day is done for this channel, one way or another.
POSTED, NO_ANNOUNCEMENT, SOURCE_FAILED, SLACK_FAILED = "posted", "no_announcement", "source_failed", "slack_failed"
FINAL_STATES = frozenset({POSTED, NO_ANNOUNCEMENT, SOURCE_FAILED, SLACK_FAILED})
# Open states: CLAIMED is being worked on (or its worker died: the lease tells), WAITING retries later.
CLAIMED, WAITING = "claimed", "waiting"


@dataclass(frozen=True)
class DigestRun:
    id: int
    channel: str
    day: date
    state: str
    owner: str | None
    lease_until: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    parent_ts: str | None
    note: str | None
    created_at: datetime
    seq_end: int | None = None  # the papers.seq watermark the window was planned up to

    @property
    def planned(self) -> bool:
        return self.window_end is not None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class PlannedMessage:
    chunk: int  # 0 = parent
    state: str
    message: Message
    ts: str | None
    attempts: int
    final_state: str = POSTED  # the run's state once every message is posted, decided at planning


def _run(row: sa.Row) -> DigestRun:
    m = row._mapping
    return DigestRun(**{f: m[f] for f in DigestRun.__dataclass_fields__})


def _insert(conn: Connection, table: sa.Table) -> sa.Insert:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def get_run(engine: Engine, channel: str, day: date) -> DigestRun | None:
    def fn(conn: Connection) -> DigestRun | None:
        q = sa.select(digest_runs).where(digest_runs.c.channel == channel, digest_runs.c.day == day)
        row = conn.execute(q).first()
        return _run(row) if row else None

    return run_tx(engine, fn, write=False)


def claim(engine: Engine, channel: str, day: date, owner: str, now: datetime, lease: timedelta) -> DigestRun | None:
    """Claim (channel, day) for ``owner`` until ``now + lease``; None when finished or held by a live lease.

    Safe across processes: the insert is conflict-free and the takeover is one conditional UPDATE.
    """

    def fn(conn: Connection) -> DigestRun | None:
        ins = _insert(conn, digest_runs).values(channel=channel, day=day, state=CLAIMED, created_at=now)
        conn.execute(ins.on_conflict_do_nothing(index_elements=["channel", "day"]))  # type: ignore[attr-defined]
        c = digest_runs.c
        upd = (
            sa.update(digest_runs)
            .where(
                c.channel == channel,
                c.day == day,
                c.state.in_([CLAIMED, WAITING]),
                sa.or_(c.owner == owner, c.lease_until.is_(None), c.lease_until <= now),
            )
            .values(owner=owner, lease_until=now + lease, state=CLAIMED)
        )
        if conn.execute(upd).rowcount != 1:
            return None
        row = conn.execute(sa.select(digest_runs).where(c.channel == channel, c.day == day)).one()
        return _run(row)

    return run_tx(engine, fn)


def renew(engine: Engine, run_id: int, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend the lease; False means another worker took the run over (stop working on it)."""

    def fn(conn: Connection) -> bool:
        c = digest_runs.c
        upd = sa.update(digest_runs).where(c.id == run_id, c.owner == owner, c.state == CLAIMED)
        return conn.execute(upd.values(lease_until=now + lease)).rowcount == 1

    return run_tx(engine, fn)


def release(engine: Engine, run_id: int, owner: str, *, retry_at: datetime, note: str) -> None:
    """Give the run back as WAITING; nobody claims it again before ``retry_at``."""

    def fn(conn: Connection) -> None:
        c = digest_runs.c
        upd = sa.update(digest_runs).where(c.id == run_id, c.owner == owner)
        conn.execute(upd.values(state=WAITING, owner=None, lease_until=retry_at, note=note))

    run_tx(engine, fn)


def finish(engine: Engine, run_id: int, owner: str, state: str, now: datetime, note: str | None = None) -> bool:
    assert state in FINAL_STATES, state

    def fn(conn: Connection) -> bool:
        c = digest_runs.c
        upd = sa.update(digest_runs).where(c.id == run_id, c.owner == owner, c.state == CLAIMED)
        return conn.execute(upd.values(state=state, finished_at=now, lease_until=None, note=note)).rowcount == 1

    return run_tx(engine, fn)


def last_window(engine: Engine, channel: str) -> DigestRun | None:
    """The channel's most recently planned run: where "new since the last digest" starts."""

    def fn(conn: Connection) -> DigestRun | None:
        c = digest_runs.c
        q = sa.select(digest_runs).where(c.channel == channel, c.window_end.is_not(None))
        order = (c.seq_end.desc().nulls_last(), c.window_end.desc(), c.id.desc())  # seq_end: commit order
        row = conn.execute(q.order_by(*order).limit(1)).first()
        return _run(row) if row else None

    return run_tx(engine, fn, write=False)


def already_posted(engine: Engine, channel: str, paper_ids: Sequence[str]) -> set[str]:
    """Ids (among ``paper_ids``) that already have an outbox row in this channel."""

    def fn(conn: Connection) -> set[str]:
        found: set[str] = set()
        ids = list(paper_ids)
        for i in range(0, len(ids), 500):
            q = sa.select(outbox.c.paper_id).where(outbox.c.channel == channel, outbox.c.paper_id.in_(ids[i : i + 500]))
            found.update(conn.scalars(q))
        return found

    return run_tx(engine, fn, write=False)


def plan(
    engine: Engine,
    run: DigestRun,
    owner: str,
    messages: Sequence[Message],
    *,
    window_start: datetime,
    window_end: datetime,
    seq_end: int | None = None,
    final_state: str = POSTED,
) -> bool:
    """Record every message of the digest and an outbox row per paper, atomically, before posting.

    Returns False (and writes nothing) when the lease was lost.

    Raises:
        PlanConflict: another run of the channel has an outbox row for one of these papers (it was
            planned after this one read its candidates); nothing was written, plan again.
    """

    def fn(conn: Connection) -> bool:
        c = digest_runs.c
        upd = sa.update(digest_runs).where(c.id == run.id, c.owner == owner, c.state == CLAIMED, c.window_end.is_(None))
        if conn.execute(upd.values(window_start=window_start, window_end=window_end, seq_end=seq_end)).rowcount != 1:
            return False
        for chunk, msg in enumerate(messages):
            data = {
                "text": msg.text,
                "blocks": list(msg.blocks),
                "paper_ids": list(msg.paper_ids),
                "final_state": final_state,
            }
            payload = json.dumps(data)
            conn.execute(
                sa.insert(digest_messages).values(run_id=run.id, chunk=chunk, state="pending", payload=payload)
            )
            rows = [
                {
                    "channel": run.channel,
                    "paper_id": pid,
                    "run_id": run.id,
                    "chunk": chunk,
                    "position": pos,
                    "state": "pending",
                }
                for pos, pid in enumerate(msg.paper_ids)
            ]
            if rows:
                conn.execute(sa.insert(outbox), rows)
        return True

    try:
        return run_tx(engine, fn)
    except sa.exc.IntegrityError as exc:
        raise PlanConflict(f"{run.channel} {run.day}: a paper of this digest was planned by another run") from exc


def planned_messages(engine: Engine, run_id: int) -> list[PlannedMessage]:
    def fn(conn: Connection) -> list[PlannedMessage]:
        q = sa.select(digest_messages).where(digest_messages.c.run_id == run_id).order_by(digest_messages.c.chunk)
        out = []
        for row in conn.execute(q):
            data = json.loads(row.payload)
            msg = Message(data["text"], tuple(data["blocks"]), tuple(data["paper_ids"]))
            state = data.get("final_state", POSTED)
            out.append(PlannedMessage(row.chunk, row.state, msg, row.ts, row.attempts, state))
        return out

    return run_tx(engine, fn, write=False)


def begin_attempt(engine: Engine, run_id: int, chunk: int) -> None:
    """Write-ahead: from here on the message may exist in Slack, so a retry must reconcile first."""

    def fn(conn: Connection) -> None:
        c = digest_messages.c
        conn.execute(
            sa.update(digest_messages).where(c.run_id == run_id, c.chunk == chunk).values(attempts=c.attempts + 1)
        )

    run_tx(engine, fn)


def mark_posted(engine: Engine, run_id: int, chunk: int, ts: str, now: datetime) -> None:
    def fn(conn: Connection) -> None:
        m, o = digest_messages.c, outbox.c
        conn.execute(
            sa.update(digest_messages)
            .where(m.run_id == run_id, m.chunk == chunk)
            .values(state="posted", ts=ts, posted_at=now)
        )
        conn.execute(
            sa.update(outbox).where(o.run_id == run_id, o.chunk == chunk).values(state="posted", message_ts=ts)
        )
        if chunk == 0:
            conn.execute(sa.update(digest_runs).where(digest_runs.c.id == run_id).values(parent_ts=ts))

    run_tx(engine, fn)


def open_runs(engine: Engine) -> list[DigestRun]:
    """Runs not yet finished (for the catch-up sweep and for operators)."""

    def fn(conn: Connection) -> list[DigestRun]:
        q = sa.select(digest_runs).where(digest_runs.c.state.in_([CLAIMED, WAITING])).order_by(digest_runs.c.id)
        return [_run(r) for r in conn.execute(q)]

    return run_tx(engine, fn, write=False)
