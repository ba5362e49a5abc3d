"""Search answers: a query into a thread, the next page for "More results", and the ``since`` catch-up.

A search posts a short parent in the channel ("<@U…> searched for “…” — N results") and the first
page as a reply in its thread; when more results exist, the page carries a "More results" button
whose value is a stored search session. A catch-up lists the channel's keyword matches among papers
announced since a day, the same way, capped at ``SINCE_CAP``; it is a view, never recorded as a digest.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, time, timedelta

from bot.answers.common import (
    Answer,
    Origin,
    channel_config,
    channel_zone,
    finish,
    notice,
    post,
    reply,
    start_thread,
    tell,
    with_note,
)
from bot.commands import parse_since
from bot.digest import format_day
from bot.errors import DeliveryError
from bot.jobs import Core
from bot.matching import match_papers
from bot.models import Match, SearchHit, SearchPage
from bot.render_search import MAX_HITS, render_search_parent, render_search_results

log = logging.getLogger("bot.answers")

PAGE_SIZE = 10
SINCE_CAP = 50


def search(core: Core, origin: Origin, query: str, answer: Answer) -> None:
    """Search the archive and post the first page in a thread (QueryError when the query is bad)."""
    page = core.index.search(query, limit=PAGE_SIZE, offset=0)
    next_offset = page.offset + len(page.hits)
    session_id = secrets.token_urlsafe(12) if page.total > next_offset else None
    parent = render_search_parent(user_id=origin.user, query=query, total=page.total, estimated=page.estimated)
    thread = start_thread(core, origin, parent, answer)
    if session_id:  # stored before the button can be seen, so a fast click finds it
        core.store.save_search_session(
            origin.channel, origin.user or None, query, next_offset, thread_ts=thread, session_id=session_id
        )
    reply(core, origin, thread, render_search_results(page, more_value=session_id), answer)
    finish(core, origin, answer)


def more_results(core: Core, origin: Origin, session_id: str, answer: Answer) -> None:
    """Post the next page of a stored search in its thread; each page is served once."""
    session = core.store.get_search_session(session_id)
    if session is None:
        text = "That search has expired. Run it again with `/papers &lt;query&gt;` to see more results."
        tell(core, origin, notice(text), answer)
        return
    page = core.index.search(session.query, limit=PAGE_SIZE, offset=session.next_offset)
    start, end = session.next_offset, session.next_offset + len(page.hits)
    if not core.store.advance_search_session(session.id, start, end):
        log.info("search session %s: page at %d already served (double click or redelivery)", session.id, start)
        answer.duplicate = True
        return
    msg = render_search_results(page, more_value=session.id if page.total > end else None)
    try:
        if session.thread_ts:
            post(core, session.channel, msg, session.thread_ts, answer)
        else:
            tell(core, origin, msg, answer)  # the search itself was answered privately
    except DeliveryError:
        core.store.advance_search_session(session.id, end, start)  # let the next click serve this page
        raise


def catch_up(core: Core, origin: Origin, since_text: str, answer: Answer) -> None:
    """The channel's keyword matches among papers announced since a day, posted like a search."""
    now = core.clock()
    day = parse_since(since_text, now.astimezone(channel_zone(core, origin.channel)).date())
    keywords, excludes = channel_keyword_lists(core, origin.channel)
    if not keywords:
        text = (
            "This channel has no keywords yet, so there is nothing to catch up on. "
            "Add some with `/papers keywords add &lt;words&gt;`."
        )
        tell(core, origin, notice(text), answer)
        return
    start = datetime.combine(day - timedelta(days=1), time(), tzinfo=channel_zone(core, origin.channel))
    papers = core.store.papers_first_seen(start, now + timedelta(seconds=1), news_since=day)
    matches = match_papers(papers, keywords, excludes, core.index.stats())
    label = f"papers since {format_day(day)} matching this channel's keywords"
    parent = render_search_parent(user_id=origin.user, query=label, total=len(matches))
    thread = start_thread(core, origin, parent, answer)
    shown = matches[:SINCE_CAP]
    if not shown:
        text = f"No papers announced since {format_day(day)} match this channel's keywords."
        reply(core, origin, thread, notice(text), answer)
    for offset in range(0, len(shown), MAX_HITS):
        chunk = tuple(_hit(m) for m in shown[offset : offset + MAX_HITS])
        msg = render_search_results(SearchPage(label, len(matches), chunk, offset), more_value=None)
        if offset + MAX_HITS >= len(shown) and len(matches) > len(shown):
            msg = with_note(
                msg, f"Showing the first {len(shown)} of {len(matches)}; catch up from a later day for the rest."
            )
        reply(core, origin, thread, msg, answer)
    finish(core, origin, answer)


def channel_keyword_lists(core: Core, channel: str) -> tuple[list[str], list[str]]:
    """The channel's effective keywords and excludes (config plus Slack edits); any channel may have them."""
    ch = channel_config(core, channel)
    keywords, excludes = core.store.effective_keywords(
        channel, list(ch.keywords) if ch else [], list(ch.exclude) if ch else []
    )
    return [k.keyword for k in keywords], [k.keyword for k in excludes]


def _hit(match: Match) -> SearchHit:
    return SearchHit(paper=match.paper, score=match.score, matched_terms=match.keywords, snippet=match.snippet)
