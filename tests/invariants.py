"""Exactly-once invariants: what the fake Slack shows, checked against what the database recorded.

``check_invariants`` returns one sentence per violation (an empty list when everything holds), so a
test can ``assert check_invariants(...) == []`` and read every problem at once in the failure:

* each paper appears at most once per channel, ever (counted from the arXiv links people see), and
  exactly once when it matched (``matching_ids_by_channel``); nothing that did not match is posted;
* each digest message (metadata ``run_id``/``chunk``) exists in Slack at most once, thread chunks hang
  under their own parent, and the database's ``ts`` and paper ids agree with the Slack message;
* every digest run is finished, and each finished (channel, day) has exactly one top-level message
  with metadata ``event_type = "paperboy_digest"`` (a ``slack_failed`` day at most one);
* no outbox row or digest message is left pending (except the unsent rest of a ``slack_failed`` run);
* no message carries untrusted markup: every ``<`` starts one of our own link forms (arXiv abstract,
  Hugging Face paper, ``https://github.com/owner/repo``) or, outside digests, ``<@U…>`` for a
  requester named in ``requesters``; no ``>`` stands outside them.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa

from bot.jobs import EVENT_TYPE
from bot.store import Store
from bot.store import digests as dg
from bot.store.schema import digest_messages, digest_runs, outbox
from tests.fakes.slack import FakeSlack

_ID = r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})"
_LABEL = r"\|[^<>|]+>"
OWN_LINK_RE = re.compile(
    rf"<https://arxiv\.org/abs/{_ID}{_LABEL}"
    rf"|<https://huggingface\.co/papers/{_ID}{_LABEL}"
    rf"|<https://github\.com/[\w.-]+/[\w.-]+/?{_LABEL}",
    re.ASCII,
)
MENTION_RE = re.compile(r"<@([UW][A-Z0-9]{2,30})>", re.ASCII)
ARXIV_LINK_RE = re.compile(rf"<https://arxiv\.org/abs/({_ID})\|", re.ASCII)
POSTS_A_PARENT = frozenset({dg.POSTED, dg.NO_ANNOUNCEMENT, dg.SOURCE_FAILED})


def check_invariants(
    slack: FakeSlack,
    store: Store,
    channels: Iterable[Any],
    matching_ids_by_channel: Mapping[str, Collection[str]] | None = None,
    *,
    days: Mapping[str, Collection[date]] | None = None,
    requesters: Collection[str] = (),
) -> list[str]:
    """Every violation of the exactly-once and safe-markup invariants, one sentence each.

    Args:
        channels: channel ids (or ``ChannelConfig``s) to check.
        matching_ids_by_channel: per channel, the paper ids that matched: each must be posted exactly once.
        days: per channel, the days that must have a finished digest run.
        requesters: user ids that search answers may mention (``<@U…>``); digests may mention nobody.
    """
    problems: list[str] = []
    for ref in channels:
        channel = str(getattr(ref, "channel", ref))
        matching = None if matching_ids_by_channel is None else matching_ids_by_channel.get(channel)
        problems += _check_channel(slack, store, channel, matching, (days or {}).get(channel), requesters)
    return problems


def _rows(store: Store, channel: str) -> tuple[list[Any], list[Any], list[Any]]:
    def fn(conn: sa.Connection) -> tuple[list[Any], list[Any], list[Any]]:
        runs = list(conn.execute(sa.select(digest_runs).where(digest_runs.c.channel == channel)))
        ids = [r.id for r in runs]
        msgs = list(conn.execute(sa.select(digest_messages).where(digest_messages.c.run_id.in_(ids)))) if ids else []
        box = list(conn.execute(sa.select(outbox).where(outbox.c.channel == channel)))
        return runs, msgs, box

    return store.run(fn, write=False)


def _check_channel(
    slack: FakeSlack,
    store: Store,
    channel: str,
    matching: Collection[str] | None,
    days: Collection[date] | None,
    requesters: Collection[str],
) -> list[str]:
    out: list[str] = []
    runs, db_msgs, box = _rows(store, channel)
    run_by_id = {r.id: r for r in runs}
    db_by_key = {(m.run_id, m.chunk): m for m in db_msgs}
    bot_msgs = [m for m in slack.messages(channel) if m.get("user") == slack.bot_user_id]
    digest_msgs = [m for m in bot_msgs if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE]

    # Markup safety, on every message the bot left in the channel.
    digest_ts = {m["ts"] for m in digest_msgs}
    for m in bot_msgs:
        allowed = () if m["ts"] in digest_ts else requesters
        out += [f"{channel}: message {m['ts']}: {p}" for p in markup_problems(m, allowed)]

    # Each digest message once, in its place, agreeing with the database.
    by_key: dict[tuple[Any, Any], list[dict]] = defaultdict(list)
    for m in digest_msgs:
        payload = m["metadata"].get("event_payload") or {}
        by_key[(payload.get("run_id"), payload.get("chunk"))].append(m)
    seen: Counter[str] = Counter()
    for (run_id, chunk), found in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        where = f"{channel}: digest run {run_id} chunk {chunk}"
        if len(found) > 1:
            out.append(f"{where} is in Slack {len(found)} times (ts {', '.join(m['ts'] for m in found)})")
        row, run = db_by_key.get((run_id, chunk)), run_by_id.get(run_id)
        if row is None or run is None:
            out.append(f"{where} is in Slack (ts {found[0]['ts']}) but the database has no such planned message")
        for m in found:
            shown = ARXIV_LINK_RE.findall(_all_text(m))
            seen.update(set(shown))  # an id linked twice in one message (title + HF) counts once
            if row is None or run is None:
                continue
            payload = m["metadata"]["event_payload"]
            if payload.get("channel") != channel or payload.get("day") != run.day.isoformat():
                out.append(f"{where}: metadata names {payload.get('channel')} {payload.get('day')}, not {run.day}")
            planned = [p for p in json.loads(row.payload)["paper_ids"] if re.fullmatch(_ID, p)]
            if set(shown) != set(planned):
                out.append(f"{where}: Slack shows papers {sorted(shown)} but the plan has {sorted(planned)}")
            if row.state != "posted" or row.ts != m["ts"]:
                out.append(f"{where}: in Slack as {m['ts']} but the database says {row.state} ts={row.ts}")
        if chunk:
            parents = {p["ts"] for p in by_key.get((run_id, 0), [])}
            if any(m.get("thread_ts") not in parents for m in found):
                out.append(f"{where} is not in the thread of its digest parent (parent ts {sorted(parents)})")
        elif chunk == 0 and any(m.get("thread_ts") for m in found):
            out.append(f"{where} (the parent) was posted as a thread reply")

    for pid, n in sorted(seen.items()):
        if n > 1:
            out.append(f"{channel}: paper {pid} was posted {n} times")
    if matching is not None:
        missing, extra = set(matching) - set(seen), set(seen) - set(matching)
        if missing:
            out.append(f"{channel}: matching papers never posted: {sorted(missing)}")
        if extra:
            out.append(f"{channel}: papers posted although they did not match: {sorted(extra)}")

    # Runs: finished, one parent per day, nothing left pending.
    parents_by_day = Counter(m["metadata"]["event_payload"].get("day") for m in digest_msgs if not m.get("thread_ts"))
    for run in runs:
        where = f"{channel}: digest of {run.day} (run {run.id})"
        n = parents_by_day.get(run.day.isoformat(), 0)
        if run.state not in dg.FINAL_STATES:
            out.append(f"{where} is still {run.state} (note: {run.note})")
        elif run.state in POSTS_A_PARENT and n != 1:
            out.append(f"{where} is {run.state} but has {n} top-level digest messages in Slack")
        elif run.state == dg.SLACK_FAILED and n > 1:
            out.append(f"{where} is slack_failed but has {n} top-level digest messages in Slack")
        for m in (m for m in db_msgs if m.run_id == run.id and m.state != "posted"):
            if run.state != dg.SLACK_FAILED:
                out.append(f"{where}: chunk {m.chunk} is still {m.state} in the database")
    run_days = {r.day.isoformat() for r in runs}
    for day, n in parents_by_day.items():
        if day not in run_days:
            out.append(f"{channel}: {n} top-level digest message(s) for {day}, a day with no digest run")
    for day in sorted(days or ()):
        if not any(r.day == day and r.state in dg.FINAL_STATES for r in runs):
            out.append(f"{channel}: no finished digest for {day}")

    ts_by_key = {k: m.ts for k, m in db_by_key.items()}
    for row in box:
        run = run_by_id.get(row.run_id)
        if row.state != "posted":
            if run is None or run.state != dg.SLACK_FAILED:
                out.append(f"{channel}: outbox row for {row.paper_id} (run {row.run_id}) is still {row.state}")
        elif row.message_ts != ts_by_key.get((row.run_id, row.chunk)):
            out.append(f"{channel}: outbox row for {row.paper_id} points at {row.message_ts}, not its message")
    return out


def _texts(node: Any) -> Iterator[str]:
    """Every string under a ``text`` key (text objects at any depth) of a block tree."""
    if isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            elif isinstance(value, (dict, list)):
                yield from _texts(value)


def _all_text(message: dict) -> str:
    return "\n".join([str(message.get("text") or ""), *_texts(message.get("blocks") or [])])


def markup_problems(message: dict, requesters: Collection[str] = ()) -> list[str]:
    """Untrusted ``<``/``>`` in a message's text or blocks: anything but our own links and allowed mentions."""
    problems = []
    for text in [str(message.get("text") or ""), *_texts(message.get("blocks") or [])]:
        rest = OWN_LINK_RE.sub("", text)
        for m in MENTION_RE.finditer(rest):
            if m.group(1) not in requesters:
                problems.append(f"mentions {m.group(0)}, who is not a validated requester")
        rest = MENTION_RE.sub("", rest)
        for i, ch in enumerate(rest):
            if ch in "<>":
                problems.append(f"untrusted {ch!r} in …{rest[max(0, i - 30) : i + 30]!r}…")
                break
    return problems
