"""The ``/papers`` grammar: every subcommand, the keyword list syntax, the catch-up days, and each error."""

from __future__ import annotations

from datetime import date

import pytest

from bot.commands import MAX_KEYWORDS, Command, parse_command, parse_since, split_keywords
from bot.errors import QueryError

WED = date(2026, 6, 10)  # a Wednesday


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?", "--help", "help me please"])
def test_help(text: str) -> None:
    assert parse_command(text) == Command("help")


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("diffusion models", "diffusion models"),
        ('  "dense  retrieval"   -survey ', '"dense retrieval" -survey'),
        ("“dense retrieval” cat:cs.IR", '"dense retrieval" cat:cs.IR'),  # Slack's smart quotes
        ("search digest models", "digest models"),  # explicit search escapes a subcommand word
        ("search keywords extraction", "keywords extraction"),
        ("helpful agents", "helpful agents"),  # only the exact word is a subcommand
        ("<!channel> <@U999> hi", "<!channel> <@U999> hi"),  # passed through; rendering escapes it
    ],
)
def test_search(text: str, query: str) -> None:
    assert parse_command(text) == Command("search", query=query)


def test_search_errors() -> None:
    with pytest.raises(QueryError, match="needs something to search for"):
        parse_command("search")
    long = "x" * 4000  # left to bot.query, which explains its own limit
    assert parse_command(long) == Command("search", query=long)


@pytest.mark.parametrize("text", ["keywords", "keywords list", "KEYWORDS", "kw", "exclude", "keywords exclude"])
def test_keywords_list(text: str) -> None:
    assert parse_command(text) == Command("keywords_list")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keywords add rag", Command("keywords_add", keywords=("rag",))),
        (
            'keywords add retrieval augmented generation, "dense retrieval", BM25',
            Command("keywords_add", keywords=("retrieval augmented generation", '"dense retrieval"', "BM25")),
        ),
        ('keyword add "foo, bar", baz', Command("keywords_add", keywords=('"foo, bar"', "baz"))),
        ("keywords remove rag; BM25", Command("keywords_remove", keywords=("rag", "BM25"))),
        ("kw rm rag", Command("keywords_remove", keywords=("rag",))),
        ("exclude add survey, position paper", Command("exclude_add", keywords=("survey", "position paper"))),
        ("keywords exclude remove survey", Command("exclude_remove", keywords=("survey",))),
        ("exclude delete survey", Command("exclude_remove", keywords=("survey",))),
    ],
)
def test_keyword_edits(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keywords add", "Say which keywords to add, separated by commas"),
        ("keywords add , ,", "Say which keywords to add"),
        ("exclude remove", "Say which excludes to remove"),
        ("keywords extraction methods", "takes `add` or `remove`"),
        ("exclude survey", "takes `add` or `remove`"),
        ('keywords add "dense retrieval', "is not closed"),
    ],
)
def test_keyword_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_command(text)


def test_split_keywords_dedupes_ignoring_case_and_keeps_the_first_spelling() -> None:
    assert split_keywords("BM25, bm25,  Dense   Retrieval ,dense retrieval\nRAG") == ("BM25", "Dense Retrieval", "RAG")


def test_split_keywords_limits() -> None:
    with pytest.raises(QueryError, match=f"at most {MAX_KEYWORDS}"):
        split_keywords(", ".join(f"k{i}" for i in range(MAX_KEYWORDS + 1)))
    with pytest.raises(QueryError, match="too long"):
        split_keywords("x" * 201)


@pytest.mark.parametrize("text", ["digest", "digest now", "Digest today"])
def test_digest(text: str) -> None:
    assert parse_command(text) == Command("digest")


def test_digest_with_words_points_to_search() -> None:
    with pytest.raises(QueryError, match="`/papers search digest models`"):
        parse_command("digest models")


def test_since_keeps_the_day_text() -> None:
    assert parse_command("since monday") == Command("since", since="monday")
    assert parse_command("since 2026-06-01") == Command("since", since="2026-06-01")


@pytest.mark.parametrize(
    ("text", "message"),
    [("since", "needs a day"), ("since next tuesday", "not a day I understand"), ("since 2026-02-30", "not a real")],
)
def test_since_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_command(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", WED),
        ("yesterday", date(2026, 6, 9)),
        ("monday", date(2026, 6, 8)),
        ("Mon", date(2026, 6, 8)),
        ("last monday", date(2026, 6, 8)),
        ("tuesday", date(2026, 6, 9)),
        ("wednesday", date(2026, 6, 3)),  # the weekday of today means a week ago
        ("thursday", date(2026, 6, 4)),
        ("sunday", date(2026, 6, 7)),
        ("3 days", date(2026, 6, 7)),
        ("3d", date(2026, 6, 7)),
        ("last week", date(2026, 6, 3)),
        ("2026-06-01", date(2026, 6, 1)),
    ],
)
def test_parse_since(text: str, expected: date) -> None:
    assert parse_since(text, WED) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-06-11", "in the future"),
        ("2026-05-01", "more than 31 days ago"),
        ("32 days", "more than 31 days ago"),
        ("fortnight", "not a day I understand"),
        ("2026-13-01", "not a real date"),
    ],
)
def test_parse_since_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_since(text, WED)
