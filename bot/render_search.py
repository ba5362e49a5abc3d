"""Search answers as Slack messages: the short parent line, a page of results, no results, a query error.

Pure rendering (no I/O, no slack_sdk). The query, titles and every other feed or user text are escaped
by :mod:`bot.slack_text`; the user mention is built only from a well-formed Slack user id.
"""

from __future__ import annotations

import math

from bot.models import Message, SearchHit, SearchPage
from bot.render_blocks import (
    ENTRY_BUDGET,
    MAX_BLOCKS,
    MESSAGE_TEXT_MAX,
    actions,
    blocks_text_len,
    button,
    context,
    paper_entry,
    section,
    terms_text,
)
from bot.render_blocks import message as make_message
from bot.slack_text import esc, user_mention

MORE_ACTION_ID = "papers_more"
MAX_HITS = 15  # 2 blocks each, within MAX_BLOCKS with the header and the button
QUERY_MAX = 200
HELP_HINT = "`/papers help` shows the query syntax."


def quoted(query: str) -> str:
    """The query, escaped and shortened, in curly quotes."""
    return f"“{esc(query, QUERY_MAX)}”"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render_search_parent(*, user_id: str, query: str, total: int, estimated: bool = False) -> Message:
    """``<@U…> searched for “query” — N results``: the channel message the results thread hangs from."""
    who = user_mention(user_id) or "Someone"
    text = f"{who} searched for {quoted(query)} — {'about ' if estimated else ''}{_plural(total, 'result')}"
    return make_message(text, [section(text)])


def _meta(hit: SearchHit) -> list[str]:
    paper = hit.paper
    day = paper.date.isoformat() if paper.date else ""
    cats = ", ".join(c for c in (esc(cat, 30) for cat in paper.categories[:4]) if c)
    score = f"score {hit.score:.1f}" if math.isfinite(hit.score) else ""
    terms = f"matched: {terms_text(hit.matched_terms, 40)}" if hit.matched_terms else ""
    return [day, cats, score, terms]


def render_search_results(page: SearchPage, *, more_value: str | None) -> Message:
    """One page of hits (ranked as given) plus a "More results" button when ``more_value`` is given."""
    if not page.hits:
        if page.offset:
            text = f"No more results for {quoted(page.query)}."
            return make_message(text, [section(text)])
        return render_no_results(page.query)
    hits = page.hits[:MAX_HITS]
    budget = min(ENTRY_BUDGET, (MESSAGE_TEXT_MAX - 1000) // len(hits))
    first = page.offset + 1
    last = page.offset + len(hits)
    where = f"Result {first}" if first == last else f"Results {first}–{last}"
    title = f"{where} of {'about ' if page.estimated else ''}{page.total} for {quoted(page.query)}"
    blocks = [section(f"*{title}*")]
    shown: list[str] = []
    for n, hit in enumerate(hits):
        entry = paper_entry(hit.paper, rank=first + n, snippet=hit.snippet, meta=_meta(hit), budget=budget)
        if len(blocks) + len(entry) > MAX_BLOCKS - 2 or blocks_text_len(blocks + entry) > MESSAGE_TEXT_MAX - 200:
            break  # cannot happen with the budgets above; a safety net rather than an oversized message
        blocks += entry
        shown.append(hit.paper.id)
    if len(page.hits) > len(shown):
        blocks.append(context(f"{len(page.hits) - len(shown)} more on this page could not be shown."))
    if more_value is not None:
        blocks.append(actions(button("More results", action_id=MORE_ACTION_ID, value=more_value)))
    return make_message(title, blocks, shown)


def render_no_results(query: str) -> Message:
    text = f"No papers match {quoted(query)}."
    return make_message(text, [section(text), context(f"Try fewer or more general words. {HELP_HINT}")])


def render_query_error(query: str, message: str) -> Message:
    """A query that could not be parsed: ``message`` says what is wrong, in words (e.g. a QueryError)."""
    text = f"⚠️ Could not search for {quoted(query)}: {esc(message, 500) or 'the query is not valid'}"
    return make_message(text, [section(text), context(HELP_HINT)])
