"""The morning digest as Slack messages: a parent message plus thread chunks, and source status notices.

Pure rendering (no I/O, no slack_sdk). The parent carries a header with the date and counts, one line
per source that failed or had no announcement, and at most ``max_papers`` entries; the remaining
matches go to thread chunks, each valid on its own within the budgets of :mod:`bot.render_blocks`.
Matches keep the order they are given (BM25 rank); Hugging Face upvotes are shown, never used to re-sort.

Never silent, never misleading: "No new papers match your keywords today." is said only when every
enabled source was fetched; after a failure the digest says which source failed and that it will retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.models import FetchResult, Match, Message, SourceState
from bot.render_blocks import (
    blocks_text_len,
    context,
    header,
    message,
    message_to_text,
    pack,
    paper_entry,
    section,
    terms_text,
)
from bot.slack_text import esc, github_label, github_url, link

SOURCE_NAMES = {"arxiv": "arXiv", "huggingface": "Hugging Face"}
MAX_HEADER_CATEGORIES = 12
_FOOTER_TEXT_RESERVE = 200


@dataclass(frozen=True, slots=True)
class DigestPlan:
    """The messages of one channel's digest: post ``parent``, then each of ``thread`` as a reply to it."""

    parent: Message
    thread: list[Message]
    channel: str = ""
    day: date | None = None

    @property
    def paper_ids(self) -> tuple[str, ...]:
        return self.parent.paper_ids + tuple(pid for chunk in self.thread for pid in chunk.paper_ids)


def format_day(day: date) -> str:
    """``Fri 12 Jun 2026`` (locale-independent day number)."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def source_name(source: str) -> str:
    return SOURCE_NAMES.get(source) or esc(source, 40) or "A source"


def status_lines(day: date, results: Sequence[FetchResult]) -> list[str]:
    """One escaped mrkdwn line per source that failed, had no announcement, or served a stale day.

    An announcement dated one day off is normal (time zones, the evening release) and not reported.
    """
    lines: list[str] = []
    for result in results:
        name = source_name(result.source)
        if result.state is SourceState.FAILED:
            reason = esc(result.error, 200) or "unknown error"
            lines.append(f"⚠️ {name} could not be fetched: {reason} — will retry")
        elif result.state is SourceState.NO_ANNOUNCEMENT:
            if result.source == "arxiv":
                lines.append("No arXiv announcement today (weekend or holiday).")
            else:
                lines.append(f"Nothing new from {name} today.")
        elif result.state is SourceState.OK and result.announced and abs((day - result.announced).days) > 1:
            lines.append(f"ℹ️ {name} papers are from {format_day(result.announced)}.")
    return lines


def _names(results: Sequence[FetchResult], sep: str = " or ") -> str:
    return sep.join(dict.fromkeys(source_name(r.source) for r in results))


def no_match_line(results: Sequence[FetchResult]) -> str | None:
    """What to say when nothing matched; ``None`` when the status lines already say it all (failures).

    No results at all means "no fetch information" (e.g. the CLI preview over stored papers).
    """
    enabled = [r for r in results if r.state is not SourceState.DISABLED]
    if results and not enabled:
        return "No paper sources are enabled, so nothing could be matched."
    ok = [r for r in enabled if r.state is SourceState.OK]
    if len(ok) == len(enabled):
        return "No new papers match your keywords today."
    if ok:
        return f"No new {_names(ok)} papers match your keywords today."
    return None


def _summary(new_counts: Mapping[str, int], total_new: int, n_matches: int, results: Sequence[FetchResult]) -> str:
    nothing_fetched = results and not any(r.state is SourceState.OK for r in results)
    if nothing_fetched and not total_new and not n_matches:
        return ""
    items = list(new_counts.items())
    if len(items) == 1:
        where = f" in {esc(items[0][0], 40)}"
    elif items:
        shown = ", ".join(f"{esc(cat, 40)} ({count})" for cat, count in items[:MAX_HEADER_CATEGORIES])
        extra = len(items) - MAX_HEADER_CATEGORIES
        where = f" in {shown}" + (f" +{extra} more" if extra > 0 else "")
    else:
        where = ""
    if not n_matches and any(r.state is SourceState.FAILED for r in results):
        return f"*{total_new} new*{where}"  # never "0 match" while a source is missing
    verb = "matches" if n_matches == 1 else "match"
    return f"*{total_new} new*{where} · *{n_matches} {verb} your keywords*"


def _meta(match: Match) -> list[str]:
    paper = match.paper
    meta = [esc(paper.primary_category, 40)]
    if match.keywords:
        meta.append("matched: " + terms_text(match.keywords, 40))
    if "huggingface" in paper.sources or paper.hf_upvotes is not None:
        votes = paper.hf_upvotes
        hf = "🤗 on Hugging Face" if votes is None else f"🤗 {votes} upvote{'' if votes == 1 else 's'}"
        meta.append(link(paper.hf_url, hf, 60))
        repo = github_url(paper.hf_repo)
        if repo:
            meta.append(link(repo, github_label(repo), 150))
    return meta


def _flat(entries: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [block for entry in entries for block in entry]


def _chunks(entries: Sequence[list[dict[str, Any]]], start: int) -> list[tuple[int, int]]:
    """Split ``entries[start:]`` into as few chunks as fit, of roughly equal length."""

    def split(limit: int) -> list[tuple[int, int]]:
        spans, pos = [], start
        while pos < len(entries):
            n = pack(entries, start=pos, limit=limit, used_blocks=1, used_text=_FOOTER_TEXT_RESERVE, force=True)
            spans.append((pos, n))
            pos += n
        return spans

    greedy = split(len(entries))
    if len(greedy) < 2:
        return greedy
    even = split(-(-(len(entries) - start) // len(greedy)))
    return even if len(even) == len(greedy) else greedy


def render_digest(
    *,
    day: date,
    channel: str,
    matches: Sequence[Match],
    new_counts: Mapping[str, int],
    results: Sequence[FetchResult],
    max_papers: int,
    total_new: int,
) -> DigestPlan:
    """The digest of ``day`` for ``channel``: parent (≤ ``max_papers`` entries) plus thread chunks."""
    entries = [paper_entry(m.paper, rank=i + 1, snippet=m.snippet, meta=_meta(m)) for i, m in enumerate(matches)]
    ids = [m.paper.id for m in matches]
    title = f"Paper digest · {format_day(day)}"
    intro = [_summary(new_counts, total_new, len(matches), results), *status_lines(day, results)]
    if not matches:
        intro.append(no_match_line(results) or "")
    intro = [line for line in intro if line]
    head = [header(f"📰 {title}")] + ([section("\n".join(intro))] if intro else [])
    taken = pack(
        entries,
        start=0,
        limit=max(0, max_papers),
        used_blocks=len(head) + 1,
        used_text=blocks_text_len(head) + _FOOTER_TEXT_RESERVE,
        force=False,
    )
    blocks = head + _flat(entries[:taken])
    rest = len(entries) - taken
    if rest:
        blocks.append(context(f"➕ {rest} more {'match' if rest == 1 else 'matches'} in the thread 🧵"))
    parent = message("\n".join([title, *intro]), blocks, ids[:taken])

    thread: list[Message] = []
    for start, n in _chunks(entries, taken):
        span = f"papers {start + 1}–{start + n} of {len(entries)}"
        chunk = [context(f"{title} · {span}"), *_flat(entries[start : start + n])]
        thread.append(message(f"{title}: {span}", chunk, ids[start : start + n]))
    return DigestPlan(parent=parent, thread=thread, channel=channel, day=day)


def render_status_line(day: date, results: Sequence[FetchResult]) -> Message:
    """The source notices on their own (e.g. when no digest is posted), never an empty message."""
    lines = status_lines(day, results)
    if not lines:
        enabled = [r for r in results if r.state is not SourceState.DISABLED]
        lines = [f"✅ Fetched {_names(enabled, ' and ')}." if enabled else "No paper sources were checked."]
    text = "\n".join(lines)
    return message(text, [section(text), context(f"Paperboy · {format_day(day)}")])


def render_text(item: DigestPlan | Message) -> str:
    """A readable plain-text version of a digest or message (CLI ``preview``): no mrkdwn escapes."""
    if isinstance(item, Message):
        return message_to_text(item)
    parts = [f"Channel: {item.channel}\n" if item.channel else ""]
    parts[0] += message_to_text(item.parent)
    for n, chunk in enumerate(item.thread, 1):
        parts.append(f"--- thread reply {n} of {len(item.thread)} ---\n{message_to_text(chunk)}")
    return "\n\n".join(parts)
