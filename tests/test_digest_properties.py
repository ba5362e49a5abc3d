"""Property tests of every Slack renderer: hostile text never pings, never disguises a link, and fits Slack.

The checks below are written independently of ``bot.slack_text``: they scan the rendered payload for
any ``<`` that does not start one of our own link forms, any ``&`` that is not an entity, bidi
overrides, and Slack's size limits (counted in UTF-16 code units, never fewer than Slack counts).
"""

from __future__ import annotations

import json
import re
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.digest import render_digest, render_status_line
from bot.models import FetchResult, Match, Message, Paper, SearchHit, SearchPage, Snippet, SourceState
from bot.render_commands import render_keyword_change, render_keywords, render_not_in_channel_help
from bot.render_search import render_no_results, render_query_error, render_search_parent, render_search_results
from bot.slack_text import esc, escape, sanitize, unescape

ID = r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})"
OWN_LINK = re.compile(
    rf"<(?:https://arxiv\.org/abs/{ID}|https://huggingface\.co/papers/{ID}"
    r"|https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/?)\|[^<>|\n]+>"
)
ENTITY = re.compile(r"&(?:amp|lt|gt);")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
SEEDS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C1>",
    "<!subteam^S1>",
    "<!date^1392734382^{date_short}|Feb 18>",
    "<https://evil|arxiv.org>",
    "<https://arxiv.org/abs/2401.00001|ok>",
    "&lt;",
    "&amp;",
    "&",
    "<",
    ">",
    "|",
    "\u202e",
    "\u2066",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\U000e0041",
    "\ud800",
    "\n\t\r",
    "@here",
    "@channel",
    "*bold*",
    "_it_",
    "`x`",
    "~s~",
    "👩‍🔬",
]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2  # raises on a lone surrogate, which Slack would reject too


def _walk(obj: object, kind: str) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == kind and isinstance(obj.get("text"), str):
            found.append(obj["text"])
        for value in obj.values():
            found += _walk(value, kind)
    elif isinstance(obj, list | tuple):
        for item in obj:
            found += _walk(item, kind)
    return found


def mrkdwn_texts(msg: Message) -> list[str]:
    return [msg.text, *_walk(list(msg.blocks), "mrkdwn")]


def assert_safe(msg: Message, *, user: str | None = None) -> None:
    """No ping, no disguised link, entities escaped once; ``user`` is the only mention allowed."""
    for text in mrkdwn_texts(msg):
        rest = OWN_LINK.sub("", text)
        if user:
            rest = rest.replace(f"<@{user}>", "")
        assert "<" not in rest and ">" not in rest, text
        assert "&" not in ENTITY.sub("", text), text
    for text in mrkdwn_texts(msg) + _walk(list(msg.blocks), "plain_text"):
        assert not BIDI.search(text), text
        assert "<!" not in text and "<#" not in text
    json.dumps(list(msg.blocks), ensure_ascii=False).encode("utf-8")  # no lone surrogates anywhere


def assert_within_limits(msg: Message) -> None:
    assert msg.text and utf16(msg.text) <= 4000
    assert 1 <= len(msg.blocks) <= 50
    total = 0
    for block in msg.blocks:
        kind = block["type"]
        if kind == "section":
            assert utf16(block["text"]["text"]) <= 3000
        elif kind == "header":
            assert block["text"]["type"] == "plain_text" and utf16(block["text"]["text"]) <= 150
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(utf16(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            for e in block["elements"]:
                assert utf16(e["text"]["text"]) <= 75 and len(e["value"]) <= 2000 and len(e["action_id"]) <= 255
        total += sum(utf16(t) for t in _walk(list(block.values()), "mrkdwn") + _walk([block], "plain_text"))
    assert total <= 10_000


def assert_valid(msg: Message, *, user: str | None = None) -> None:
    assert_safe(msg, user=user)
    assert_within_limits(msg)


def _long(piece: str, times: int) -> str:
    return piece * times


texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(SEEDS),
    st.lists(st.one_of(st.sampled_from(SEEDS), st.text(max_size=8)), max_size=8).map("".join),
    st.builds(_long, st.sampled_from(SEEDS) | st.text(min_size=1, max_size=4), st.integers(500, 3000)),
)
paper_ids = st.one_of(
    st.integers(0, 99999).map(lambda n: f"2606.{n:05d}"),
    st.sampled_from(["hep-th/9901001", "math.GT/0309136", "openreview:abc", "2606.00001\n", "<!here>", ""]),
)
repos = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://github.com/owner/repo",
            "https://github.com/o.w-n/r_e.po/",
            "https://github.com/a/b\n",
            "https://github.com/é/b",
            "https://github.com/a/b?x=<!here>",
            "https://github.com/a/b|evil",
            "https://evil.example/a/b",
            "javascript:alert(1)",
        ]
    ),
    texts,
)


@st.composite
def snippets(draw: st.DrawFn) -> Snippet:
    text = draw(texts)
    n = len(text)
    points = draw(st.lists(st.integers(-2, n + 2), max_size=10))
    pairs = list(zip(points[::2], points[1::2], strict=False))
    return Snippet(text, tuple(pairs))


papers = st.builds(
    Paper,
    id=paper_ids,
    title=texts,
    abstract=texts,
    authors=st.lists(texts, max_size=5).map(tuple),
    categories=st.lists(texts, max_size=3).map(tuple),
    sources=st.sampled_from([(), ("arxiv",), ("arxiv", "huggingface"), ("huggingface",)]),
    hf_upvotes=st.none() | st.integers(-1, 10**9),
    hf_repo=repos,
    announced=st.none() | st.dates(),
)
matches = st.builds(
    Match, paper=papers, score=st.floats(), keywords=st.lists(texts, max_size=8).map(tuple), snippet=snippets()
)
results = st.builds(
    FetchResult,
    source=st.sampled_from(["arxiv", "huggingface"]) | texts,
    state=st.sampled_from(list(SourceState)),
    error=st.none() | texts,
    announced=st.none() | st.dates(),
)
user_ids = st.one_of(st.sampled_from(["U123ABC", "W0XYZ", "U1", "u123", "U123\n", "<!here>", ""]), texts)


@SETTINGS
@given(
    ms=st.lists(matches, max_size=30),
    counts=st.dictionaries(texts, st.integers(0, 10**6), max_size=15),
    rs=st.lists(results, max_size=4),
    max_papers=st.integers(-1, 40),
    total_new=st.integers(0, 10**6),
    day=st.dates(),
    channel=texts,
)
def test_digest_is_safe_complete_and_within_limits(ms, counts, rs, max_papers, total_new, day, channel) -> None:
    plan = render_digest(
        day=day, channel=channel, matches=ms, new_counts=counts, results=rs, max_papers=max_papers, total_new=total_new
    )
    for msg in [plan.parent, *plan.thread]:
        assert_valid(msg)
    assert all(msg.paper_ids for msg in plan.thread)
    assert list(plan.paper_ids) == [m.paper.id for m in ms]
    assert len(plan.parent.paper_ids) <= max(0, max_papers)
    if any(r.state is SourceState.FAILED for r in rs):
        shown = json.dumps(plan.parent.blocks, ensure_ascii=False)
        assert "No new papers match your keywords today" not in shown and "*0 match" not in shown


@SETTINGS
@given(day=st.dates(), rs=st.lists(results, max_size=5))
def test_status_line_is_safe(day, rs) -> None:
    msg = render_status_line(day, rs)
    assert_valid(msg)
    if any(r.state is SourceState.FAILED for r in rs):
        assert "could not be fetched" in msg.text and "no new papers match" not in msg.text.lower()


@SETTINGS
@given(user=user_ids, query=texts, total=st.integers(0, 10**9))
def test_search_parent_is_safe_and_keeps_the_query(user, query, total) -> None:
    msg = render_search_parent(user_id=user, query=query, total=total)
    valid_user = user if re.fullmatch(r"[UW][A-Z0-9]{2,30}", user, re.ASCII) else None
    assert_valid(msg, user=valid_user)
    assert msg.text.startswith(f"<@{valid_user}>" if valid_user else "Someone")
    shown = re.fullmatch(r".* searched for “(.*)” — \d+ results?", msg.text, re.DOTALL)
    assert shown is not None
    if len(query) < 150:
        assert unescape(shown.group(1)) == sanitize(query)


hits = st.builds(
    SearchHit,
    paper=papers,
    score=st.floats(),
    matched_terms=st.lists(texts, max_size=8).map(tuple),
    snippet=snippets(),
)


@SETTINGS
@given(
    query=texts,
    hs=st.lists(hits, max_size=20),
    offset=st.integers(0, 1000),
    more=st.none() | st.text(max_size=2000),
)
def test_search_results_are_safe_and_within_limits(query, hs, offset, more) -> None:
    page = SearchPage(query=query, total=len(hs) + offset, hits=tuple(hs), offset=offset)
    msg = render_search_results(page, more_value=more)
    assert_valid(msg)
    assert list(msg.paper_ids) == [h.paper.id for h in hs[: len(msg.paper_ids)]]
    if hs:
        buttons = [b for b in msg.blocks if b["type"] == "actions"]
        assert (len(buttons) == 1 and buttons[0]["elements"][0]["value"] == more) if more is not None else not buttons


@SETTINGS
@given(query=texts, reason=texts)
def test_search_errors_are_safe(query, reason) -> None:
    assert_valid(render_no_results(query))
    assert_valid(render_query_error(query, reason))


@SETTINGS
@given(
    channel=texts,
    kws=st.lists(texts, max_size=60),
    exs=st.lists(texts, max_size=60),
    user=user_ids,
    action=st.sampled_from(["add", "remove"]),
)
def test_keyword_messages_are_safe(channel, kws, exs, user, action) -> None:
    assert_valid(render_keywords(channel, kws, exs))
    valid_user = user if re.fullmatch(r"[UW][A-Z0-9]{2,30}", user, re.ASCII) else None
    assert_valid(render_keyword_change(user, action, kws), user=valid_user)
    assert_valid(render_not_in_channel_help(channel))


@SETTINGS
@given(text=texts)
def test_escaping_is_exactly_once_and_reversible(text) -> None:
    clean = sanitize(text)
    assert unescape(esc(text, 10**6)) == clean
    assert unescape(escape(text)) == text
    assert esc(escape(clean), 10**6) == escape(escape(clean))  # an entity in the input is escaped again
    assert sanitize(clean) == clean


@settings(max_examples=5, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    max_papers=st.integers(0, 30),
    failed=st.booleans(),
)
def test_200_papers_with_10k_abstracts(seed, max_papers, failed) -> None:
    big = (seed + " retrieval ") * (10_000 // (len(seed) + 11))
    ms = [
        Match(
            Paper(
                id=f"2606.{n:05d}",
                title=big,
                abstract=big,
                authors=(big,) * 5,
                categories=(big, "cs.CL"),
                sources=("arxiv", "huggingface"),
                hf_upvotes=n,
                hf_repo="https://github.com/o/r",
            ),
            score=1.0,
            keywords=(big,) * 10,
            snippet=Snippet(big, tuple((i, i + 5) for i in range(0, 9000, 40))),
        )
        for n in range(200)
    ]
    state = SourceState.FAILED if failed else SourceState.OK
    plan = render_digest(
        day=date(2026, 6, 12),
        channel=big,
        matches=ms,
        new_counts={big: 10, "cs.CL": 190},
        results=[FetchResult("arxiv", SourceState.OK), FetchResult("huggingface", state, error=big)],
        max_papers=max_papers,
        total_new=200,
    )
    for msg in [plan.parent, *plan.thread]:
        assert_valid(msg)
    assert list(plan.paper_ids) == [m.paper.id for m in ms]
    assert len(plan.parent.paper_ids) <= max_papers
