"""The use-cases behind /papers, mentions and "More results", against a real store (SQLite and PostgreSQL),
a real search index, and the fake Slack over sockets (Web API and response_url)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time

import pytest

from bot import answers
from bot.answers import PAGE_SIZE, Origin, lookup
from bot.delivery import SlackDelivery
from bot.jobs import Core
from bot.models import FetchResult, Paper, SourceState
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.store import Store
from bot.store import digests as dg
from tests.fakes.slack import FakeSlack

DIGEST = "C0DIGEST1"  # configured: keywords + schedule
OTHER = "C111"  # not in the config
ALICE = "U0ALICE"
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _paper(n: int, topic: str, *, day: date | None = None, title: str | None = None) -> Paper:
    return Paper(
        id=f"2611.{n:05d}",
        title=title or f"A study {n} of {topic} methods",
        abstract=f"We propose a new {topic} approach number {n} and evaluate it on benchmarks.",
        authors=(f"Author {n}", "Second Author"),
        categories=("cs.LG",),
        version=1,
        announced=day or datetime.now(UTC).date(),
        announce_type="new",
        sources=("arxiv",),
    )


GNN = [_paper(n, "graph neural network") for n in range(1, 24)]  # 23: three pages of 10
PROTEINS = [_paper(n, "protein folding") for n in range(100, 103)]
OLD = [_paper(200, "graph neural network", day=date(2020, 1, 6))]  # an archive paper, not news


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(DIGEST, "papers")
        fake.add_channel(OTHER, "random")
        yield fake


@pytest.fixture
def core(db_url: str, slack: FakeSlack) -> Iterator[Core]:
    store = Store.open(db_url)
    store.migrate()
    store.upsert_papers(GNN + PROTEINS + OLD)
    channel = ChannelConfig(
        DIGEST, time(0, 0), days=ALL_DAYS, keywords=("graph neural network",), exclude=("survey",), max_papers=5
    )
    settings = Settings(categories=("cs.LG",), channels=(channel,))

    def fetcher(today: date) -> list[FetchResult]:
        return [FetchResult("arxiv", SourceState.OK, tuple(GNN + PROTEINS), announced=today)]

    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    yield Core(settings, store, SearchIndex.from_store(store), delivery=delivery, fetcher=fetcher)
    store.close()


def _origin(slack: FakeSlack, channel: str = OTHER, user: str = ALICE) -> Origin:
    return Origin(channel, user, response_url=slack.new_response_url(channel, user))


def _payload(message: dict) -> str:
    return str(message.get("text")) + str(message.get("blocks"))


def _button(message: dict) -> dict | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "papers_more":
                return element
    return None


def test_search_posts_a_parent_and_the_results_in_its_thread(core: Core, slack: FakeSlack) -> None:
    answer = answers.run_command(core, _origin(slack), "graph neural network")
    (parent,) = slack.top_level(OTHER)
    assert parent["text"].startswith(f"<@{ALICE}> searched for “graph neural network” — 24 results")
    (reply,) = slack.replies(OTHER, parent["ts"])
    assert reply["text"].startswith("Results 1–10 of 24")
    assert "<https://arxiv.org/abs/2611." in _payload(reply)
    assert answer.parent is not None and answer.parent.ts == parent["ts"]
    assert [p.thread_ts for p in answer.replies] == [parent["ts"]]
    assert answer.private == []
    button = _button(reply)
    assert button is not None
    session = core.store.get_search_session(button["value"])
    assert session is not None and session.thread_ts == parent["ts"] and session.next_offset == PAGE_SIZE


def test_more_results_posts_each_next_page_in_the_same_thread_once(core: Core, slack: FakeSlack) -> None:
    answers.run_command(core, _origin(slack), "graph neural network")
    (parent,) = slack.top_level(OTHER)
    session_id = _button(slack.replies(OTHER, parent["ts"])[0])["value"]

    second = answers.run_more(core, _origin(slack, user="U0BOB"), session_id, dedupe_key="action:a1")
    again = answers.run_more(core, _origin(slack, user="U0BOB"), session_id, dedupe_key="action:a1")  # redelivery
    assert again.duplicate and again.posts == [] and again.private == []
    third = answers.run_more(core, _origin(slack), session_id, dedupe_key="action:a2")

    replies = slack.replies(OTHER, parent["ts"])
    assert [r["text"].split(" for ")[0] for r in replies] == [
        "Results 1–10 of 24",
        "Results 11–20 of 24",
        "Results 21–24 of 24",
    ]
    assert [p.thread_ts for p in second.posts + third.posts] == [parent["ts"]] * 2
    assert _button(replies[1])["value"] == session_id
    assert _button(replies[2]) is None  # the last page has no button
    assert len(slack.top_level(OTHER)) == 1


def test_an_unknown_session_is_explained_privately(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack)
    answer = answers.run_more(core, origin, "no-such-session")
    assert "expired" in answer.private[0].text
    assert "expired" in slack.responses(origin.response_url)[0]["text"]
    assert slack.messages(OTHER) == []


def test_not_in_channel_falls_back_to_an_ephemeral_answer_with_invite_help(core: Core, slack: FakeSlack) -> None:
    slack.add_channel("C0PRIV", "secret", private=True)
    slack.set_channel_error("C0PRIV", "not_in_channel")
    origin = _origin(slack, "C0PRIV")
    answer = answers.run_command(core, origin, "graph neural network")
    assert answer.fell_back and answer.posts == []
    results, help_ = slack.responses(origin.response_url)
    assert results["response_type"] == "ephemeral" and results["text"].startswith("Results 1–10 of 24")
    assert "/invite @Paperboy" in help_["text"]
    assert slack.top_level("C0PRIV") == []
    # "More results" on the ephemeral page answers through the button's own response_url.
    later = _origin(slack, "C0PRIV")
    answers.run_more(core, later, _button(results)["value"])
    assert slack.responses(later.response_url)[0]["text"].startswith("Results 11–20 of 24")


def test_query_errors_are_explained_in_words(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack)
    answers.run_command(core, origin, 'graph "neural network')
    (response,) = slack.responses(origin.response_url)
    assert response["response_type"] == "ephemeral"
    assert "Could not search for" in response["text"] and "quote" in response["text"]
    assert slack.messages(OTHER) == []


def test_an_unexpected_error_is_logged_and_apologised_for(
    core: Core, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(core.index, "search", broken)
    origin = _origin(slack)
    with caplog.at_level(logging.ERROR):
        answer = answers.run_command(core, origin, "graph")
    assert "Sorry, something went wrong" in answer.private[0].text
    assert "Sorry" in slack.responses(origin.response_url)[0]["text"]
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.exc_info is not None and "a bug" in str(record.exc_info[1])


def test_a_command_delivered_twice_is_answered_once(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack)
    first = answers.run_command(core, origin, "protein folding", dedupe_key="cmd:abc")
    second = answers.run_command(core, origin, "protein folding", dedupe_key="cmd:abc")
    assert not first.duplicate and second.duplicate
    assert len(slack.top_level(OTHER)) == 1


def test_injection_in_queries_is_inert(core: Core, slack: FakeSlack) -> None:
    evil = "graph <!channel> <!here> <@U0BOSS> <#C0OTHER> <https://evil.example|arxiv.org> @everyone"
    answers.run_command(core, _origin(slack), evil)
    answers.run_mention(core, Origin(OTHER, ALICE, thread_ts=slack.post_as_user(OTHER, "hi")), evil)
    bot_messages = [m for m in slack.messages(OTHER) if m["user"] == slack.bot_user_id]
    assert len(bot_messages) == 3
    for m in bot_messages:
        payload = _payload(m)
        for bad in ("<!channel>", "<!here>", "<@U0BOSS>", "<#C0OTHER>", "<https://evil.example"):
            assert bad not in payload
        assert set(re.findall(r"<@[^>]*>", payload)) <= {f"<@{ALICE}>"}
        assert m["link_names"] is None and m["parse"] is None
    assert "&lt;!channel&gt;" in slack.top_level(OTHER)[0]["text"]


def test_mention_in_a_thread_is_answered_in_that_thread(core: Core, slack: FakeSlack) -> None:
    top = slack.post_as_user(OTHER, "what about proteins?")
    reply = slack.post_as_user(OTHER, "@Paperboy protein folding", thread_ts=top)
    answer = answers.run_mention(core, Origin(OTHER, ALICE, thread_ts=top), "protein folding", "event:Ev1")
    assert answer.parent is None and [p.thread_ts for p in answer.posts] == [top]
    (ours,) = [m for m in slack.replies(OTHER, top) if m["ts"] != reply]
    assert ours["text"].startswith("Results 1–3 of 3")
    assert answers.run_mention(core, Origin(OTHER, ALICE, thread_ts=top), "protein folding", "event:Ev1").duplicate
    assert len(slack.replies(OTHER, top)) == 2


def test_empty_mention_gets_short_help_in_its_thread(core: Core, slack: FakeSlack) -> None:
    ts = slack.post_as_user(OTHER, "@Paperboy")
    answers.run_mention(core, Origin(OTHER, ALICE, thread_ts=ts), "  ")
    (help_,) = slack.replies(OTHER, ts)
    assert "Mention me with what to search for" in help_["text"]


def test_keywords_add_and_remove_persist_over_the_config_and_are_announced(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack, DIGEST)
    answers.run_command(core, origin, 'keywords add diffusion models, "dense retrieval", graph neural network')
    keywords, _ = core.store.effective_keywords(DIGEST, ["graph neural network"], ["survey"])
    assert [(k.keyword, k.origin, k.user_id) for k in keywords] == [
        ("graph neural network", "config", None),
        ("diffusion models", "slack", ALICE),
        ('"dense retrieval"', "slack", ALICE),
    ]
    (announcement,) = slack.top_level(DIGEST)
    assert announcement["text"] == f'<@{ALICE}> added keywords: “diffusion models”, “"dense retrieval"”'
    assert (
        "Already in this channel's keywords: “graph neural network”" in slack.responses(origin.response_url)[0]["text"]
    )

    answers.run_command(core, _origin(slack, DIGEST, "U0BOB"), "keywords remove graph neural network, nope")
    keywords, _ = core.store.effective_keywords(DIGEST, ["graph neural network"], ["survey"])
    assert [k.keyword for k in keywords] == ["diffusion models", '"dense retrieval"']
    assert slack.top_level(DIGEST)[1]["text"] == "<@U0BOB> removed keyword: “graph neural network”"

    answers.run_command(core, _origin(slack, DIGEST, "U0BOB"), "exclude add position paper")
    _, excludes = core.store.effective_keywords(DIGEST, [], ["survey"])
    assert [e.keyword for e in excludes] == ["survey", "position paper"]
    assert "excluded “position paper”" in slack.top_level(DIGEST)[2]["text"]

    listing = _origin(slack, DIGEST)
    answers.run_command(core, listing, "keywords")
    shown = str(slack.responses(listing.response_url))
    assert "diffusion models" in shown and "added in Slack" in shown and "survey" in shown and "config file" in shown
    assert "graph neural network" not in shown


def test_invalid_keywords_change_nothing(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack, DIGEST)
    answers.run_command(core, origin, "keywords add rag, cat:")
    assert core.store.keyword_edits(DIGEST) == []
    assert slack.top_level(DIGEST) == []
    text = slack.responses(origin.response_url)[0]["text"]
    assert "“cat:” cannot be a keyword" in text and "Nothing was changed" in text


def test_a_channel_outside_the_config_can_have_keywords_but_no_digest(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack, OTHER)
    answers.run_command(core, origin, "keywords add protein folding")
    assert [k.keyword for k in core.store.effective_keywords(OTHER, [], [])[0]] == ["protein folding"]
    assert "no daily digest" in slack.responses(origin.response_url)[0]["text"]
    digest = _origin(slack, OTHER)
    answers.run_command(core, digest, "digest")
    assert "not in the config file" in slack.responses(digest.response_url)[0]["text"]


def test_since_posts_the_channels_matches_as_a_thread_without_recording_a_digest(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack, DIGEST)
    answer = answers.run_command(core, origin, "since yesterday")
    (parent,) = slack.top_level(DIGEST)
    assert "matching this channel" in parent["text"] and "23 results" in parent["text"]
    replies = slack.replies(DIGEST, parent["ts"])
    assert [r["text"].split(" for ")[0] for r in replies] == ["Results 1–15 of 23", "Results 16–23 of 23"]
    shown = "".join(_payload(r) for r in replies)
    assert "2611.00200" not in shown and "2611.00100" not in shown  # old archive paper, non-matching paper
    assert all(_button(r) is None for r in replies) and len(answer.replies) == 2
    assert dg.already_posted(core.store.engine, DIGEST, [p.id for p in GNN]) == set()


def test_since_is_capped(core: Core, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup, "SINCE_CAP", 20)
    answers.run_command(core, _origin(slack, DIGEST), "since today")
    (parent,) = slack.top_level(DIGEST)
    replies = slack.replies(DIGEST, parent["ts"])
    assert [r["text"].split(" for ")[0] for r in replies] == ["Results 1–15 of 23", "Results 16–20 of 23"]
    assert "Showing the first 20 of 23" in _payload(replies[-1])


def test_since_without_keywords_says_so(core: Core, slack: FakeSlack) -> None:
    origin = _origin(slack, OTHER)
    answers.run_command(core, origin, "since monday")
    assert "no keywords yet" in slack.responses(origin.response_url)[0]["text"]
    assert slack.messages(OTHER) == []


def test_digest_now_posts_once_per_day(core: Core, slack: FakeSlack) -> None:
    first = _origin(slack, DIGEST)
    answers.run_command(core, first, "digest")
    assert "Posted today's digest" in slack.responses(first.response_url)[0]["text"]
    parents = slack.top_level(DIGEST)
    assert len(parents) == 1 and "Paper digest" in parents[0]["text"]
    second = _origin(slack, DIGEST)
    answers.run_command(core, second, "digest")
    assert "already posted" in slack.responses(second.response_url)[0]["text"]
    assert len(slack.top_level(DIGEST)) == 1


def test_help_and_triage_are_instant_and_pure() -> None:
    assert answers.triage("").command is None and "Paperboy help" in answers.triage("help").reply.text
    assert "separate them with commas" in str(answers.triage("help").reply.blocks)  # the keyword-list syntax
    bad = answers.triage("since someday")
    assert bad.command is None and "not a day I understand" in bad.reply.text
    digest = answers.triage("digest")
    assert digest.command is not None and digest.command.kind == "digest" and digest.reply is not None
    search = answers.triage("graph")
    assert search.reply is None and search.command is not None and search.command.query == "graph"
