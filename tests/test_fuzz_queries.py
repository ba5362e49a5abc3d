"""Hostile search input (reliability.md T-44): Hypothesis on the query paths, then the whole bot.

Queries up to 10,000 characters mixing control characters, NUL, lone surrogates, SQL and query-syntax
fragments (``" OR 1=1 --``, ``author:"``, ``cat:*``, ``since:2026-13-45`` …), CJK, emoji and
bidi/zero-width characters go to ``bot.commands.parse_command``, ``bot.answers.triage`` and
``SearchIndex.search`` over a small real index (the fixture papers, stored in SQLite). Each gives a
result or a ``QueryError`` with a readable message, never another exception. A few of them then go
through ``bot.answers.run_command`` end to end (real store on SQLite and PostgreSQL, fake Slack):
each is answered with results or a clear message, never with the "unexpected error" apology.

Latency is not asserted here: ``bench/bench_hostile_queries.py`` prints it.
``PAPERBOY_FUZZ_EXAMPLES`` sets the examples per test (default 150).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import answers
from bot.answers import Origin, Triage, triage
from bot.commands import Command, parse_command
from bot.delivery import SlackDelivery
from bot.errors import QueryError
from bot.jobs import Core
from bot.models import Message, Paper, SearchPage
from bot.search import SearchIndex
from bot.settings import Settings
from bot.sources import parse_announcements, parse_daily_papers
from bot.sources.arxiv_api import parse_api_feed
from bot.store import Store
from tests.conftest import FIXTURES
from tests.fakes.slack import FakeSlack

EXAMPLES = int(os.environ.get("PAPERBOY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
FRAGMENTS = [
    '" OR 1=1 --', "'; DROP TABLE papers; --", "%", "_", "*", "NEAR/3", "MATCH", "\\", "\\\\", "'", "''",
    '"', '""', '"unclosed phrase', "-", "--", "-\"a b\"", "- -", "author:", 'author:"', 'author:""', "author:*",
    "cat:", "cat:*", "cat:cs.", "cat:CS.LG", "cat:cs.LG", "since:", "since:2026-13-45", "since:0000-00-00",
    "until:9999-12-31", "since:2026-01-01", "until:yesterday", "AND", "OR", "NOT", "(", ")", "[", "]", "{", "}",
    "keywords", "keywords add", "exclude remove", "digest", "since", "search", "help", "since monday",
    "\x00", "\x07", "\x1b[31m", "\u202e", "\u200b", "\u200d", "\ufeff", "\ud800", "\udfff", "\U0001f600",
    "👨‍👩‍👧", "深層学習", "グラフニューラルネットワーク", "трансформер", "مرحبا", "<!channel>", "<@U123>", "&amp;",
    "graph", "neural", "retrieval", "diffusion", "transformer", "x" * 300, "\n", "\t", " ",
]  # fmt: skip
ANY_CHAR = st.characters(blacklist_categories=())  # every code point, lone surrogates and controls included


def queries() -> st.SearchStrategy[str]:
    pieces = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(ANY_CHAR, max_size=20)), max_size=30)
    joined = st.builds(lambda parts, sep: sep.join(parts), pieces, st.sampled_from([" ", "", ",", "\n"]))
    long = st.builds(lambda parts, n: (" ".join(parts) * n)[:10_000], pieces, st.integers(1, 400))
    return st.one_of(st.text(ANY_CHAR, max_size=200), joined, long)


def fixture_papers() -> list[Paper]:
    rss, api, hf = FIXTURES / "arxiv_rss", FIXTURES / "arxiv_api", FIXTURES / "hf_daily_papers"
    papers = list(
        parse_announcements((rss / "reconstructed_rss_cs.AI_2025-08-20_all_announce_types.xml").read_bytes()).papers
    )
    papers += parse_api_feed((api / "query_testing_start0_max10.xml").read_bytes()).papers
    papers += parse_daily_papers(
        (hf / "daily_papers_limit100_latest_2026-06-12.json").read_bytes(), date(2026, 6, 12)
    ).papers
    return papers


@pytest.fixture(scope="module")
def index() -> Iterator[SearchIndex]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/queries.db")
        store.migrate()
        store.upsert_papers(fixture_papers())
        yield SearchIndex.from_store(store)
        store.close()


def check_query_error(exc: QueryError) -> None:
    text = str(exc)
    assert text.strip() and len(text) < 2000, text


def check_page(page: SearchPage) -> None:
    assert page.total >= len(page.hits)
    assert all(h.paper.title and isinstance(h.paper.abstract, str) for h in page.hits)


def test_the_index_is_small_but_real(index: SearchIndex) -> None:
    assert len(index) > 40
    assert index.search("language models", limit=5).total > 0


@FUZZ
@given(query=queries())
@example(query="\x00" * 10_000)
@example(query="\ud800 graph \udfff")
@example(query='author:"' + "a" * 9_990)
@example(query=" OR ".join(["graph"] * 2_000)[:10_000])
def test_search_gives_results_or_a_query_error(index: SearchIndex, query: str) -> None:
    try:
        page = index.search(query, limit=10)
    except QueryError as exc:
        check_query_error(exc)
    else:
        check_page(page)


@FUZZ
@given(text=queries())
@example(text="keywords add " + ",".join(["x"] * 500))
@example(text="since \x00")
@example(text="search \ud800")
@example(text="digest " + "\u202e" * 50)
def test_parse_command_and_triage_give_a_command_or_a_clear_message(index: SearchIndex, text: str) -> None:
    try:
        cmd = parse_command(text)
    except QueryError as exc:
        check_query_error(exc)
        cmd = None
    else:
        assert isinstance(cmd, Command)
        if cmd.kind == "search":
            try:
                check_page(index.search(cmd.query, limit=10))
            except QueryError as exc:
                check_query_error(exc)
    result = triage(text)
    assert isinstance(result, Triage)
    assert result.reply is not None or result.command is not None
    if result.reply is not None:
        assert isinstance(result.reply, Message) and result.reply.text.strip()
    if cmd is None:  # a syntax error is answered in the ack, in words
        assert result.reply is not None and result.command is None and "⚠️" in result.reply.text


# ------------------------------------------------------------------ the whole bot: run_command


HOSTILE_COMMANDS = [
    "language\x00models",  # many results: the search is saved for "More results", NUL and all
    "\ud800 models \udfff",
    '" OR 1=1 -- language models',
    "'; DROP TABLE papers; -- agents",
    'author:" cat:* since:2026-13-45',
    "深層学習 🤖 transformer",
    "models " * 1_500,
    "keywords add graph\x00neural, \ud800",
]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel("C111", "random")
        yield fake


@pytest.fixture
def core(db_url: str, slack: FakeSlack) -> Iterator[Core]:
    store = Store.open(db_url)
    store.migrate()
    store.upsert_papers(fixture_papers())
    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    yield Core(Settings(categories=("cs.AI",)), store, SearchIndex.from_store(store), delivery=delivery)
    store.close()


@pytest.mark.parametrize("text", HOSTILE_COMMANDS, ids=range(len(HOSTILE_COMMANDS)))
def test_hostile_command_is_answered_never_with_the_apology(
    text: str, core: Core, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    origin = Origin("C111", "U0ALICE", response_url=slack.new_response_url("C111", "U0ALICE"))
    with caplog.at_level(logging.WARNING):
        answer = answers.run_command(core, origin, text)
    said = " ".join(m.text for m in answer.private) + " ".join(p.message.text for p in answer.posts)
    assert said.strip(), "nothing was answered"
    assert answers.common.APOLOGY not in said and "not answering right now" not in said
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
