"""The query language: every construct, every error message, and hostile input."""

from __future__ import annotations

import sys
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import QueryError
from bot.models import Paper
from bot.query import MAX_QUERY_CHARS, PaperText, Query, filters_pass, parse_query, plain_query, text_passes


def test_plain_terms_and_tokens() -> None:
    q = parse_query("Diffusion  distillation")
    assert q.raw == "Diffusion distillation"
    assert [p.text for p in q.terms] == ["Diffusion", "distillation"]
    assert q.tokens == ["diffus", "distil"]
    assert q.display_terms == ("Diffusion", "distillation")
    assert not q.has_filter and q.phrases == ()


def test_phrases_and_curly_quotes() -> None:
    q = parse_query('“vision transformer” robust "GPT-4o"')
    assert [(p.text, p.quoted) for p in q.positives] == [
        ("vision transformer", True),
        ("robust", False),
        ("GPT-4o", True),
    ]
    assert q.phrases[0].words == ("vision", "transform")
    assert q.display_terms == ('"vision transformer"', "robust", '"GPT-4o"')
    assert q.tokens == ["vision", "transform", "robust", "gpt", "4o", "gpt4o"]


def test_exclusions() -> None:
    q = parse_query('llm -survey -"medical imaging" - -the')
    assert [(p.text, p.quoted) for p in q.excludes] == [("survey", False), ("medical imaging", True)]
    assert q.tokens == ["llm"]  # a lone dash and a stopword exclusion are ignored


def test_fields() -> None:
    q = parse_query('author:"Yann LeCun" author:Bengio cat:cs.CL CAT:cs.cv -cat:cs.RO since:2025-06-01 until:2025-07')
    assert [a.tokens for a in q.authors] == [("yann", "lecun"), ("bengio",)]
    assert q.categories == ("cs.cl", "cs.cv") and q.exclude_categories == ("cs.ro",)
    assert q.since == date(2025, 6, 1) and q.until == date(2025, 7, 31)
    assert q.positives == () and q.has_filter


def test_partial_dates_and_strictest_bounds() -> None:
    q = parse_query("x since:2024 since:2025-02 until:2025 until:2025-12-30")
    assert q.since == date(2025, 2, 1) and q.until == date(2025, 12, 30)
    assert parse_query("x until:2024-02").until == date(2024, 2, 29)


def test_exclude_author_and_archive_category() -> None:
    q = parse_query("agents -author:Smith cat:cs")
    assert [a.tokens for a in q.exclude_authors] == [("smith",)] and q.categories == ("cs",)


def test_unknown_prefixes_are_plain_text() -> None:
    q = parse_query("foo:bar math: http://x.org")
    assert [p.text for p in q.terms] == ["foo:bar", "math:", "http://x.org"]
    assert q.tokens == ["foo", "bar", "math", "http", "x", "org"]


def test_filter_only_queries_are_allowed() -> None:
    assert parse_query("cat:cs.CL").categories == ("cs.cl",)
    assert parse_query("since:2025-01-01 -survey").excludes[0].text == "survey"


def test_control_characters_and_surrogates_are_cleaned() -> None:
    q = parse_query("a\x00b\u200bc\ud800d")
    assert q.raw == "a bc\ufffdd"  # NUL -> space, zero-width space removed, surrogate replaced
    q.raw.encode("utf-8")


def test_plain_query_ignores_syntax() -> None:
    q = plain_query('10% of "SIDS" deaths -happen cat:x')
    assert q.tokens == tokenize_all('10% of "SIDS" deaths -happen cat:x')
    assert len(q.positives) == 1 and not q.has_filter


def tokenize_all(text: str) -> list[str]:
    from bot.text import tokenize

    return tokenize(text)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query: type some words to search for"),
        ("  \x00 \t", "empty query: type some words to search for"),
        ("x" * (MAX_QUERY_CHARS + 1), f"query too long ({MAX_QUERY_CHARS + 1} characters, max {MAX_QUERY_CHARS})"),
        ('llm "vision trans', 'unbalanced quote: the phrase starting "vision trans has no closing "'),
        ('author:"Yann', 'unbalanced quote: the phrase starting "Yann has no closing "'),
        ("x since:2025-13-01", 'since: "2025-13-01" is not a date; use YYYY-MM-DD, e.g. since:2025-06-01'),
        ("x until:yesterday", 'until: "yesterday" is not a date; use YYYY-MM-DD, e.g. until:2025-06-01'),
        ("x since:2025-06-02 until:2025-06-01", "since:2025-06-02 is after until:2025-06-01, so nothing can match"),
        ("x -since:2025", "-since: cannot be excluded; use until: instead"),
        ("x -until:2025", "-until: cannot be excluded; use since: instead"),
        ("x author:", 'author: needs a value, e.g. author:"Yann LeCun"'),
        ('x author:""', 'author: needs a value, e.g. author:"Yann LeCun"'),
        ("x cat:", "cat: needs a value, e.g. cat:cs.CL"),
        ("x author:--", 'author: "--" has no letters to match a name'),
        ("x cat:cs/CL", 'cat: "cs/CL" is not an arXiv category; use e.g. cat:cs.CL or cat:cs'),
        ("the of and", 'nothing to search for in "the of and": very common words and punctuation are ignored'),
        ("-survey -gan", "nothing to search for: add a word or a filter (author:, cat:, since:, until:); "
         "-words only remove results"),
        ("-cat:cs.CV", "nothing to search for: add a word or a filter (author:, cat:, since:, until:); "
         "-words only remove results"),
    ],
)  # fmt: skip
def test_error_messages(query: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert str(caught.value) == message


def test_sql_and_fts_fragments() -> None:
    with pytest.raises(QueryError, match="unbalanced quote"):
        parse_query('" OR 1=1 --')
    assert parse_query("1=1 OR * NEAR/3 x; DROP TABLE papers").tokens == [
        "1",
        "1",
        "near",
        "3",
        "x",
        "drop",
        "tabl",
        "paper",
    ]


hostile = st.one_of(
    st.text(max_size=1200),
    st.lists(st.integers(0, sys.maxunicode), max_size=200).map(lambda cs: "".join(map(chr, cs))),
    st.lists(st.sampled_from(['"', "-", "author:", "cat:", "since:", "until:", "2025-01-01", "x", " ", "\x00",
                              "\ud800", "“", "cs.CL", "the", "OR", "1=1"]), max_size=40).map("".join),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(hostile)
def test_any_string_gives_a_query_or_a_query_error(text: str) -> None:
    try:
        q = parse_query(text)
    except QueryError as exc:
        assert str(exc)
        return
    assert isinstance(q, Query) and (q.tokens or q.has_filter)
    q.raw.encode("utf-8")


def paper(**kw: object) -> Paper:
    base: dict[str, object] = {"id": "2501.00001", "title": "A title", "abstract": "An abstract."}
    return Paper(**{**base, **kw})  # type: ignore[arg-type]


def test_checks_on_a_paper() -> None:
    p = paper(
        title="Vision transformers",
        abstract="We scale vision-transformer models; no survey.",
        authors=("Yann LeCun", "Li Wei"),
        categories=("cs.CV", "cs.LG"),
        announced=date(2025, 6, 3),
    )
    text = PaperText.of(p)
    assert text_passes(parse_query('"vision transformer" scale'), text, all_terms=True)
    assert not text_passes(parse_query('"transformer vision"'), text, all_terms=True)
    assert not text_passes(parse_query("vision -survey"), text, all_terms=False)
    assert not text_passes(parse_query("vision absent"), text, all_terms=True)
    assert text_passes(parse_query("vision absent"), text, all_terms=False)
    for ok in ['x author:"Y. LeCun"', "x author:lecun author:wei", "x cat:cs", "x cat:cs.lg", "x since:2025-06-03"]:
        assert filters_pass(parse_query(ok), p), ok
    for bad in ['x author:"Wei LeCun"', "x -author:Li", "x cat:cs.CL", "x -cat:cs.CV", "x until:2025-06-02"]:
        assert not filters_pass(parse_query(bad), p), bad
    assert not filters_pass(parse_query("x since:2020"), paper())  # no date: a date filter fails
