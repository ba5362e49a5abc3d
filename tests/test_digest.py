"""Structure of the rendered Slack messages: digest header and split, entries, status lines, search, keywords, help."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import unicodedata
from dataclasses import dataclass
from datetime import date

import pytest

from bot.digest import DigestPlan, render_digest, render_status_line, render_text
from bot.models import FetchResult, Match, Message, Paper, SearchHit, SearchPage, Snippet, SourceState
from bot.render_commands import (
    render_help,
    render_keyword_change,
    render_keywords,
    render_not_in_channel_help,
)
from bot.render_search import render_no_results, render_query_error, render_search_parent, render_search_results
from bot.slack_text import (
    esc,
    github_url,
    label,
    link,
    safe_link_url,
    sanitize,
    slack_len,
    truncate_mrkdwn,
    user_mention,
)
from tests.test_digest_properties import assert_valid

DAY = date(2026, 6, 12)  # a Friday
OK = SourceState.OK
NO_ANN = SourceState.NO_ANNOUNCEMENT
FAILED = SourceState.FAILED
DISABLED = SourceState.DISABLED
NO_MATCH_ALL = "No new papers match your keywords today."


def paper(n: int, **kw: object) -> Paper:
    base: dict[str, object] = {
        "id": f"2606.{n:05d}",
        "title": f"Paper number {n}",
        "abstract": f"We study retrieval for paper {n}.",
        "authors": ("Ada Lovelace", "Alan Turing"),
        "categories": ("cs.CL", "cs.IR"),
        "sources": ("arxiv",),
    }
    base.update(kw)
    return Paper(**base)  # type: ignore[arg-type]


def match(n: int, keywords: tuple[str, ...] = ("retrieval",), **kw: object) -> Match:
    p = paper(n, **kw)
    return Match(p, score=10.0 - n / 100, keywords=keywords, snippet=Snippet(p.abstract, ((9, 18),)))


def digest(matches: list[Match], results: list[FetchResult] | None = None, **kw: object) -> DigestPlan:
    args: dict[str, object] = {
        "day": DAY,
        "channel": "C0PAPERS",
        "matches": matches,
        "new_counts": {"cs.CL": 30, "cs.IR": 7},
        "results": results if results is not None else [FetchResult("arxiv", OK), FetchResult("huggingface", OK)],
        "max_papers": 5,
        "total_new": 37,
    }
    args.update(kw)
    plan = render_digest(**args)  # type: ignore[arg-type]
    for msg in [plan.parent, *plan.thread]:
        assert_valid(msg)
    return plan


def mrkdwn(msg: Message) -> str:
    """Every mrkdwn text of a message, one per line."""
    out = []
    for block in msg.blocks:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
    return "\n".join(out)


# --- digest --------------------------------------------------------------------------------------


def test_header_has_date_counts_and_match_count() -> None:
    plan = digest([match(n) for n in range(9)])
    head = plan.parent.blocks[0]
    assert head["type"] == "header" and "Fri 12 Jun 2026" in head["text"]["text"]
    summary = plan.parent.blocks[1]["text"]["text"]
    assert summary == "*37 new* in cs.CL (30), cs.IR (7) · *9 match your keywords*"
    assert "37 new" in plan.parent.text and "Fri 12 Jun 2026" in plan.parent.text


def test_single_category_and_singular_match() -> None:
    plan = digest([match(1)], new_counts={"cs.CL": 12}, total_new=12)
    assert plan.parent.blocks[1]["text"]["text"] == "*12 new* in cs.CL · *1 matches your keywords*"


def test_parent_holds_max_papers_and_the_rest_go_to_the_thread_in_order() -> None:
    ms = [match(n) for n in range(12)]
    plan = digest(ms, max_papers=5)
    ids = [m.paper.id for m in ms]
    assert plan.parent.paper_ids == tuple(ids[:5])
    assert [pid for chunk in plan.thread for pid in chunk.paper_ids] == ids[5:]
    assert plan.paper_ids == tuple(ids)
    assert "7 more matches in the thread" in mrkdwn(plan.parent)
    ranks = [line.split(".")[0] for line in mrkdwn(plan.thread[0]).splitlines() if line.startswith("*")]
    assert ranks == [f"*{n}" for n in range(6, 13)]


def test_max_papers_zero_puts_every_entry_in_the_thread() -> None:
    plan = digest([match(n) for n in range(3)], max_papers=0)
    assert plan.parent.paper_ids == ()
    assert plan.thread and plan.paper_ids == tuple(f"2606.{n:05d}" for n in range(3))


def test_long_digest_is_split_into_valid_chunks_of_similar_size() -> None:
    ms = [match(n) for n in range(120)]
    plan = digest(ms, max_papers=100)
    assert len(plan.parent.blocks) <= 40 and len(plan.parent.paper_ids) < 100
    assert len(plan.thread) >= 2
    sizes = [len(c.paper_ids) for c in plan.thread]
    assert max(sizes) - min(sizes) <= 1
    assert all(len(c.blocks) <= 40 and c.text for c in plan.thread)
    assert plan.paper_ids == tuple(m.paper.id for m in ms)


def test_entry_shows_link_authors_category_keywords_and_bold_snippet() -> None:
    m = match(1, keywords=("retrieval", "RAG & co"), authors=("A One", "B Two", "C Three", "D Four"))
    plan = digest([m])
    section, ctx = plan.parent.blocks[2], plan.parent.blocks[3]
    assert section["text"]["text"] == (
        "*1. <https://arxiv.org/abs/2606.00001|Paper number 1>*\nWe study *retrieval* for paper 1."
    )
    assert ctx["elements"][0]["text"] == "A One, B Two, C Three et al. · cs.CL · matched: retrieval, RAG &amp; co"


def test_hugging_face_upvotes_and_github_link_only_when_on_hugging_face() -> None:
    on_hf = match(1, sources=("arxiv", "huggingface"), hf_upvotes=42, hf_repo="https://github.com/org/repo")
    one_vote = match(2, sources=("arxiv", "huggingface"), hf_upvotes=1)
    bad_repo = match(3, sources=("huggingface",), hf_upvotes=0, hf_repo="https://gitlab.com/org/repo")
    arxiv_only = match(4)
    text = mrkdwn(digest([on_hf, one_vote, bad_repo, arxiv_only]).parent)
    lines = text.splitlines()
    assert "<https://huggingface.co/papers/2606.00001|🤗 42 upvotes> · <https://github.com/org/repo|org/repo>" in text
    assert "<https://huggingface.co/papers/2606.00002|🤗 1 upvote>" in text
    assert "gitlab" not in text and "<https://huggingface.co/papers/2606.00003|🤗 0 upvotes>" in text
    assert not any("🤗" in line for line in lines if line.startswith("Ada Lovelace") and "2606.00004" in line)
    assert text.count("🤗") == 3


def test_matches_keep_the_given_order_even_when_upvotes_differ() -> None:
    ms = [match(n, sources=("arxiv", "huggingface"), hf_upvotes=n * 10) for n in range(1, 5)]
    ms.reverse()  # ranked 4, 3, 2, 1 by BM25; upvotes ascending would be the opposite
    plan = digest(ms)
    assert plan.parent.paper_ids == ("2606.00004", "2606.00003", "2606.00002", "2606.00001")


def test_untrusted_title_is_escaped_once_and_pipe_replaced() -> None:
    m = match(1, title="<!channel> &lt; a|b <https://evil|arxiv.org>")
    text = mrkdwn(digest([m]).parent)
    assert "|&lt;!channel&gt; &amp;lt; a∣b &lt;https://evil∣arxiv.org&gt;>*" in text
    assert "<!channel>" not in text


def test_non_arxiv_paper_has_no_link() -> None:
    m = Match(paper(1, id="openreview:xyz"), 1.0, ("k",))
    text = mrkdwn(digest([m]).parent)
    assert "*1. Paper number 1*" in text and "<http" not in text


def test_empty_snippet_falls_back_to_the_abstract() -> None:
    m = Match(paper(1, abstract="An abstract & more."), 1.0, ("k",))
    assert "An abstract &amp; more." in mrkdwn(digest([m]).parent)


# --- never silent, never misleading -------------------------------------------------------------

STATES = [OK, NO_ANN, FAILED, DISABLED]


@pytest.mark.parametrize(("arxiv", "hf", "n_matches"), list(itertools.product(STATES, STATES, [0, 2])))
def test_status_lines_for_every_source_state_combination(arxiv, hf, n_matches) -> None:
    results = [
        FetchResult("arxiv", arxiv, error="HTTP 503" if arxiv is FAILED else None),
        FetchResult("huggingface", hf, error="timed out <after 30 s>" if hf is FAILED else None),
    ]
    plan = digest([match(n) for n in range(n_matches)], results)
    text = mrkdwn(plan.parent)
    enabled = [s for s in (arxiv, hf) if s is not DISABLED]
    assert ("⚠️ arXiv could not be fetched: HTTP 503 — will retry" in text) == (arxiv is FAILED)
    hf_failed = "⚠️ Hugging Face could not be fetched: timed out &lt;after 30 s&gt; — will retry"
    assert (hf_failed in text) == (hf is FAILED)
    assert ("No arXiv announcement today (weekend or holiday)." in text) == (arxiv is NO_ANN)
    assert ("Nothing new from Hugging Face today." in text) == (hf is NO_ANN)
    all_ok = bool(enabled) and all(s is OK for s in enabled)
    assert (NO_MATCH_ALL in text) == (n_matches == 0 and all_ok)
    if FAILED in (arxiv, hf):
        assert NO_MATCH_ALL not in text
    if n_matches == 0 and arxiv is FAILED and hf is not OK:
        assert "match your keywords today" not in text
    if n_matches == 0 and arxiv is not OK and arxiv is not DISABLED and hf is OK:
        assert "No new Hugging Face papers match your keywords today." in text
    if not enabled and n_matches == 0:
        assert "No paper sources are enabled" in text
    assert plan.parent.text  # the fallback always says something


def test_stale_announcement_is_named_but_a_one_day_offset_is_not() -> None:
    text = mrkdwn(digest([match(1)], [FetchResult("arxiv", OK, announced=date(2026, 6, 10))]).parent)
    assert "ℹ️ arXiv papers are from Wed 10 Jun 2026." in text
    for near in (date(2026, 6, 11), DAY, date(2026, 6, 13)):
        assert "ℹ️" not in mrkdwn(digest([match(1)], [FetchResult("arxiv", OK, announced=near)]).parent)


def test_fetch_failure_without_matches_never_claims_no_matches() -> None:
    plan = digest([], [FetchResult("arxiv", FAILED, error="HTTP 500")], total_new=0, new_counts={})
    text = mrkdwn(plan.parent).lower()
    assert "could not be fetched" in text and "match" not in text and "0 new" not in text
    hf_ok = [FetchResult("arxiv", FAILED, error="HTTP 500"), FetchResult("huggingface", OK)]
    text = mrkdwn(digest([], hf_ok, total_new=12, new_counts={}).parent)
    assert text.startswith("*12 new*\n⚠️ arXiv could not be fetched: HTTP 500 — will retry")
    assert "0 match" not in text and "No new Hugging Face papers match your keywords today." in text


@pytest.mark.parametrize(("arxiv", "hf"), list(itertools.product(STATES, STATES)))
def test_render_status_line(arxiv, hf) -> None:
    results = [FetchResult("arxiv", arxiv, error="boom"), FetchResult("huggingface", hf, error="boom")]
    msg = render_status_line(DAY, results)
    assert_valid(msg)
    lines = msg.blocks[0]["text"]["text"].splitlines()
    expected = []
    for name, state in (("arXiv", arxiv), ("Hugging Face", hf)):
        if state is FAILED:
            expected.append(f"⚠️ {name} could not be fetched: boom — will retry")
        elif state is NO_ANN:
            none_today = "No arXiv announcement today (weekend or holiday)."
            expected.append(none_today if name == "arXiv" else f"Nothing new from {name} today.")
    if not expected:
        fetched = [n for n, s in (("arXiv", arxiv), ("Hugging Face", hf)) if s is OK]
        expected = [f"✅ Fetched {' and '.join(fetched)}."] if fetched else ["No paper sources were checked."]
    assert lines == expected
    assert "no new papers" not in msg.text.lower()


# --- search -------------------------------------------------------------------------------------


def test_search_parent_mentions_a_valid_user_and_escapes_the_query() -> None:
    msg = render_search_parent(user_id="U123ABC", query="graph <b> & co", total=3)
    assert msg.text == "<@U123ABC> searched for “graph &lt;b&gt; &amp; co” — 3 results"
    assert msg.blocks[0]["text"]["text"] == msg.text
    assert render_search_parent(user_id="U1", query="q", total=1).text == "Someone searched for “q” — 1 result"
    about = render_search_parent(user_id="U1", query='"q r"', total=1200, estimated=True)
    assert about.text == 'Someone searched for “"q r"” — about 1200 results'
    assert render_search_parent(user_id="<!here>", query="q", total=0).text.startswith("Someone")


def _page(offset: int = 0, n: int = 3) -> SearchPage:
    hits = tuple(
        SearchHit(
            paper(i, announced=date(2026, 6, 1 + i % 28)),
            score=12.345 - (i - 1),
            matched_terms=("retriev", "graph"),
            snippet=Snippet("We study retrieval & graphs.", ((9, 18),)),
        )
        for i in range(1, n + 1)
    )
    return SearchPage(query="retrieval graph", total=42, hits=hits, offset=offset)


def test_search_results_show_rank_metadata_and_more_button() -> None:
    msg = render_search_results(_page(offset=10), more_value="page:2")
    assert_valid(msg)
    text = mrkdwn(msg)
    assert "*Results 11–13 of 42 for “retrieval graph”*" in text
    assert "*11. <https://arxiv.org/abs/2606.00001|Paper number 1>*\nWe study *retrieval* &amp; graphs." in text
    assert "Ada Lovelace, Alan Turing · 2026-06-02 · cs.CL, cs.IR · score 12.3 · matched: retriev, graph" in text
    assert msg.paper_ids == ("2606.00001", "2606.00002", "2606.00003")
    button = msg.blocks[-1]["elements"][0]
    assert button["action_id"] == "papers_more" and button["value"] == "page:2"
    assert button["text"]["text"] == "More results"


def test_search_results_without_more_value_have_no_button() -> None:
    msg = render_search_results(_page(), more_value=None)
    assert all(b["type"] != "actions" for b in msg.blocks)


def test_an_estimated_total_says_about() -> None:
    page = dataclasses.replace(_page(), estimated=True)
    assert "*Results 1–3 of about 42 for “retrieval graph”*" in mrkdwn(render_search_results(page, more_value=None))


def test_many_hits_stay_within_limits() -> None:
    msg = render_search_results(_page(n=30), more_value="x")
    assert_valid(msg)
    assert len(msg.paper_ids) == 15 and "15 more on this page could not be shown." in mrkdwn(msg)


def test_empty_pages() -> None:
    assert render_search_results(SearchPage("q <x>", 0, ()), more_value=None).text == "No papers match “q &lt;x&gt;”."
    assert render_search_results(SearchPage("q", 10, (), offset=10), more_value=None).text == "No more results for “q”."


def test_no_results_and_query_error_are_escaped_and_point_to_help() -> None:
    msg = render_no_results("<!here>")
    assert_valid(msg)
    assert msg.text == "No papers match “&lt;!here&gt;”." and "/papers help" in mrkdwn(msg)
    err = render_query_error('"open', "unclosed quote <here>")
    assert_valid(err)
    assert err.text == '⚠️ Could not search for “"open”: unclosed quote &lt;here&gt;'
    assert "/papers help" in mrkdwn(err)


# --- keywords and help --------------------------------------------------------------------------


@dataclass(frozen=True)
class Kw:
    keyword: str
    origin: str
    user_id: str | None = None


def test_keywords_list_origins_and_excludes_without_mentions() -> None:
    msg = render_keywords("C0PAPERS", [Kw("rag", "config"), Kw("graph <x>", "slack", "U123ABC")], ["survey"])
    assert_valid(msg)
    text = mrkdwn(msg)
    assert "*Keywords for this channel (2)*\n• rag  _(config file)_\n• graph &lt;x&gt;  _(added in Slack)_" in text
    assert "*Excluded (1): papers with these are left out*\n• survey" in text
    assert "<@" not in json.dumps(msg.blocks)
    assert msg.text == "Keywords for this channel: rag, graph &lt;x&gt;"


def test_empty_and_huge_keyword_lists() -> None:
    empty = render_keywords("ml-papers", [], [])
    assert_valid(empty)
    assert "No keywords for #ml-papers yet." in mrkdwn(empty)
    huge = render_keywords("C1", [Kw(f"keyword number {n} " + "x" * 80, "slack") for n in range(500)], ["y" * 50] * 300)
    assert_valid(huge)
    assert "more" in mrkdwn(huge)


def test_keyword_change_announcement() -> None:
    msg = render_keyword_change("U123ABC", "add", ["rag", "<!channel>"])
    assert_valid(msg, user="U123ABC")
    assert msg.text == "<@U123ABC> added keywords: “rag”, “&lt;!channel&gt;”"
    assert render_keyword_change("U123ABC", "remove", ["rag"]).text == "<@U123ABC> removed keyword: “rag”"
    with pytest.raises(ValueError, match="action"):
        render_keyword_change("U123ABC", "rename", ["rag"])


def test_help_lists_every_command_and_the_thread_note() -> None:
    msg = render_help()
    assert_valid(msg)
    text = mrkdwn(msg)
    for usage in ("/papers &lt;query&gt;", "/papers keywords`", "keywords add", "keywords remove", "/papers digest",
                  "/papers since &lt;date|monday|yesterday&gt;", "/papers help", "Query syntax"):  # fmt: skip
        assert usage in text
    assert "Slash commands don't work in threads: @-mention the bot in a thread instead" in text


def test_not_in_channel_help() -> None:
    msg = render_not_in_channel_help("C0PAPERS")
    assert_valid(msg)
    assert "/invite @Paperboy" in msg.text and "this channel" in msg.text and "<#" not in msg.text


# --- plain-text preview -------------------------------------------------------------------------


def test_render_text_is_plain_and_readable() -> None:
    plan = digest([match(n, title=f"A & B <{n}>") for n in range(7)], max_papers=5)
    text = render_text(plan)
    assert "Channel: C0PAPERS" in text and "== 📰 Paper digest · Fri 12 Jun 2026 ==" in text
    assert "*1. A & B <0> (https://arxiv.org/abs/2606.00000)*" in text
    assert "--- thread reply 1 of 1 ---" in text and "*7. A & B <6>" in text
    assert "&amp;" not in text and "&lt;" not in text
    assert render_text(render_no_results("a & b")).startswith("No papers match “a & b”.")


# --- escaping helpers ---------------------------------------------------------------------------


def test_escape_is_exactly_once() -> None:
    assert esc("&lt;b&gt; & <i>") == "&amp;lt;b&amp;gt; &amp; &lt;i&gt;"


def test_sanitize_removes_every_invisible_format_character_but_zwnj_and_zwj() -> None:
    fmt = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    kept = {"\u200c", "\u200d"}
    assert sanitize("a" + "".join(fmt) + "b") == "a\u200c\u200db"
    assert set(sanitize("".join(fmt))) <= kept | {" "}
    assert sanitize("evil\u202etxt.exe") == "eviltxt.exe"
    assert sanitize(" a\n\tb\x00c\u2028d ") == "a b c d"
    assert sanitize("hi @here and @Channel") == "hi @\u2060here and @\u2060Channel"
    assert sanitize("\ud800") == "\ufffd"


def test_length_budget_counts_utf16_and_keeps_entities_whole() -> None:
    assert slack_len("a😀") == 3
    assert esc("&" * 10, 12) == "&amp;&amp;…"
    assert esc("x" * 100, 10) == "x" * 9 + "…"
    text = "ab <https://arxiv.org/abs/2401.00001|title> &amp; rest"
    assert truncate_mrkdwn(text, 10) == "ab …"
    assert truncate_mrkdwn(text, 48) == "ab <https://arxiv.org/abs/2401.00001|title> …"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://arxiv.org/abs/2401.00001", True),
        ("https://arxiv.org/abs/hep-th/9901001", True),
        ("https://huggingface.co/papers/2401.00001", True),
        ("https://github.com/org/repo", True),
        ("https://github.com/o.r-g/re_po/", True),
        ("https://arxiv.org/abs/2401.00001\n", False),
        ("https://arxiv.org/abs/2401.00001|x", False),
        ("https://github.com/org/repo\n", False),
        ("https://github.com/org/repo/tree/main", False),
        ("https://github.com/é/repo", False),
        ("http://github.com/org/repo", False),
        ("https://evil.example/abs/2401.00001", False),
        ("https://github.com/" + "a" * 200 + "/b", False),
    ],
)
def test_only_our_own_link_forms_are_linked(url: str, ok: bool) -> None:
    assert (safe_link_url(url) == url) is ok
    assert link(url, "a|b", 50) == (f"<{url}|a∣b>" if ok else "a∣b")


def test_github_url_and_user_mention_validation() -> None:
    assert github_url(None) is None and github_url("https://github.com/a/b") == "https://github.com/a/b"
    assert user_mention("U123ABC") == "<@U123ABC>" and user_mention("W0XYZ") == "<@W0XYZ>"
    for bad in ("U1", "u123", "U123\n", "<@U123>", "", None, "C123"):
        assert user_mention(bad) is None
    assert label("", 10) == "" and link("https://arxiv.org/abs/2401.00001", "", 10) == ""
