"""The Slack edge: a real Bolt ``App`` with the real ``register(app, services)``, driven by the fixture envelopes'
payloads (``BoltRequest(mode="socket_mode")``, Bolt's own test style), against the fake Slack over sockets.

Each test checks that the ack comes back from ``app.dispatch`` before the answer (the fake delays
``chat.postMessage``, so nothing can be posted yet when the ack returns), then waits (bounded) for the
parent and the threaded reply.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient

import handlers
from bot.answers import Origin
from bot.delivery import SlackDelivery
from bot.jobs import Core
from bot.lanes import Lanes
from bot.models import Paper
from bot.search import SearchIndex
from bot.services import Services
from bot.settings import Settings
from bot.store import Store
from handlers import make_error_backstop, origin_from_body
from handlers.commands.papers import command_key, make_papers_command
from handlers.events.app_mention import is_own, strip_mention
from tests.fakes.slack import FakeSlack, Fault

CHANNEL = "C111"


def _paper(n: int, topic: str) -> Paper:
    return Paper(
        id=f"2611.{n:05d}",
        title=f"A study {n} of {topic} methods",
        abstract=f"We propose a new {topic} approach number {n}.",
        authors=(f"Author {n}",),
        categories=("cs.LG",),
        announced=datetime.now(UTC).date(),
        sources=("arxiv",),
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "random")
        yield fake


@pytest.fixture
def services(db_url: str, slack: FakeSlack) -> Iterator[Services]:
    store = Store.open(db_url)
    store.migrate()
    store.upsert_papers([_paper(n, "graph neural network") for n in range(1, 15)] + [_paper(50, "protein folding")])
    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    core = Core(Settings(), store, SearchIndex.from_store(store), delivery=delivery)
    work = Lanes(1, "answer")
    yield Services(core=core, bot_user_id=slack.bot_user_id, work=work)
    work.shutdown(wait=True)
    store.close()


@pytest.fixture
def app(slack: FakeSlack, services: Services) -> App:
    bolt = App(client=WebClient(token=slack.bot_token, base_url=slack.api_url))  # auth.test on the fake
    handlers.register(bolt, services)
    return bolt


def _envelope(fixtures_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((fixtures_dir / "slack_socket_mode" / name).read_text())["payload"]


def _command(fixtures_dir: Path, slack: FakeSlack, text: str, user: str = "U0ALICE") -> dict[str, Any]:
    payload = _envelope(fixtures_dir, "envelope_slash_commands.json")
    payload.update(
        command="/papers",
        text=text,
        channel_id=CHANNEL,
        user_id=user,
        response_url=slack.new_response_url(CHANNEL, user),
        trigger_id=f"111.{time.monotonic_ns()}.xxx",
    )
    return payload


def _mention(fixtures_dir: Path, text: str, *, thread_ts: str | None = None, user: str = "U222") -> dict[str, Any]:
    payload = _envelope(fixtures_dir, "envelope_events_api_app_mention.json")
    payload["event"].update(text=text, user=user, channel=CHANNEL)
    if thread_ts:
        payload["event"]["thread_ts"] = thread_ts
    return payload


def _wait(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _drain(services: Services) -> None:
    """Wait until every answer submitted so far has finished."""
    assert services.work.join(timeout=30)


def _bot_posts(slack: FakeSlack) -> list[dict]:
    return [m for m in slack.messages(CHANNEL) if m["user"] == slack.bot_user_id]


def test_slash_command_is_acked_before_the_answer_is_posted_in_a_thread(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path
) -> None:
    slack.add_fault("chat.postMessage", Fault.delay(1.0))
    response = app.dispatch(BoltRequest(body=_command(fixtures_dir, slack, "graph neural network"), mode="socket_mode"))
    assert response.status == 200 and response.body == ""
    assert not any(c.answered for c in slack.calls("chat.postMessage"))  # ack first, answer later
    parent, reply = _wait(lambda: len(_bot_posts(slack)) >= 2 and _bot_posts(slack), "parent and reply")
    assert parent["text"].startswith("<@U0ALICE> searched for “graph neural network” — 14 results")
    assert parent["thread_ts"] is None and reply["thread_ts"] == parent["ts"]
    assert "arxiv.org/abs/2611." in str(reply["blocks"])


def test_more_results_button_posts_the_next_page_in_the_same_thread(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path
) -> None:
    app.dispatch(BoltRequest(body=_command(fixtures_dir, slack, "graph neural network"), mode="socket_mode"))
    parent, first = _wait(lambda: len(_bot_posts(slack)) >= 2 and _bot_posts(slack), "the first page")
    button = next(e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"])
    click = _envelope(fixtures_dir, "reconstructed_envelope_interactive_block_actions_message_button.json")
    click["actions"][0].update(action_id=button["action_id"], value=button["value"])
    click["container"].update(channel_id=CHANNEL, message_ts=first["ts"], is_ephemeral=False)
    click["channel"]["id"] = CHANNEL
    click["response_url"] = slack.new_response_url(CHANNEL, "W111")
    slack.add_fault("chat.postMessage", Fault.delay(1.0))
    response = app.dispatch(BoltRequest(body=click, mode="socket_mode"))
    assert response.status == 200
    assert len(slack.replies(CHANNEL, parent["ts"])) == 1  # acked before the next page is posted
    second = _wait(lambda: slack.replies(CHANNEL, parent["ts"])[1:], "the second page")[0]
    assert second["text"].startswith("Results 11–14 of 14")
    assert len(slack.top_level(CHANNEL)) == 1


def test_help_is_answered_in_the_ack_itself(app: App, slack: FakeSlack, services: Services, fixtures_dir: Path) -> None:
    payload = _command(fixtures_dir, slack, "")
    response = app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
    body = json.loads(response.body)
    assert response.status == 200 and body["response_type"] == "ephemeral"
    assert "Paperboy help" in body["text"] and body["blocks"][0]["type"] == "header"
    _drain(services)
    assert slack.messages(CHANNEL) == [] and slack.responses(payload["response_url"]) == []


def test_syntax_errors_are_answered_in_the_ack(
    app: App, services: Services, slack: FakeSlack, fixtures_dir: Path
) -> None:
    response = app.dispatch(BoltRequest(body=_command(fixtures_dir, slack, "since someday"), mode="socket_mode"))
    assert "not a day I understand" in json.loads(response.body)["text"]


def test_mention_in_a_thread_is_answered_in_that_thread_once(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path
) -> None:
    top = slack.post_as_user(CHANNEL, "anyone read about proteins?")
    payload = _mention(fixtures_dir, f"<@{slack.bot_user_id}> protein folding", thread_ts=top)
    slack.add_fault("chat.postMessage", Fault.delay(1.0))
    assert app.dispatch(BoltRequest(body=payload, mode="socket_mode")).status == 200
    assert not any(c.answered for c in slack.calls("chat.postMessage"))
    retry = {"x-slack-retry-num": ["1"], "x-slack-retry-reason": ["timeout"]}  # same event_id, redelivered
    assert app.dispatch(BoltRequest(body=payload, mode="socket_mode", headers=retry)).status == 200
    _drain(services)
    (answer,) = slack.replies(CHANNEL, top)
    assert answer["text"] == "Result 1 of 1 for “protein folding”"
    assert slack.top_level(CHANNEL)[0]["ts"] == top and len(slack.top_level(CHANNEL)) == 1


def test_top_level_mention_is_answered_in_a_new_thread_under_it(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path
) -> None:
    ts = slack.post_as_user(CHANNEL, "@Paperboy graph neural network")
    payload = _mention(fixtures_dir, f"<@{slack.bot_user_id}> graph neural network")
    payload["event"].update(ts=ts, event_ts=ts)
    app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
    _drain(services)
    (answer,) = slack.replies(CHANNEL, ts)
    assert answer["text"].startswith("Results 1–10 of 14")


def test_the_bots_own_mentions_are_ignored(app: App, slack: FakeSlack, services: Services, fixtures_dir: Path) -> None:
    payload = _mention(fixtures_dir, f"<@{slack.bot_user_id}> graph", user=slack.bot_user_id)
    app.dispatch(BoltRequest(body=payload, mode="socket_mode"))
    _drain(services)
    assert slack.messages(CHANNEL) == []


def test_a_stopping_worker_still_acks_and_says_why_it_does_not_answer(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services.work.shutdown(wait=True)  # as after SIGTERM: submitting raises RuntimeError
    with caplog.at_level(logging.WARNING):
        response = app.dispatch(BoltRequest(body=_command(fixtures_dir, slack, "graph"), mode="socket_mode"))
        _wait(lambda: any("answer pool is shut down" in r.getMessage() for r in caplog.records), "the warning")
    assert response.status == 200  # an exception after the ack would have made Bolt answer 500 (no ack)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)
    services.work = Lanes(1, "answer")  # for the fixture's clean-up


def test_error_backstop_logs_the_traceback_and_apologises(
    app: App, slack: FakeSlack, services: Services, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = _command(fixtures_dir, slack, "graph")
    try:
        raise KeyError("a bug in a listener")
    except KeyError as exc:
        error = exc
    with caplog.at_level(logging.ERROR):
        make_error_backstop(services)(error=error, body=payload)
        _drain(services)
    record = next(r for r in caplog.records if "unhandled error in a Slack listener" in r.getMessage())
    assert record.exc_info is not None and record.exc_info[1] is error
    (apology,) = slack.responses(payload["response_url"])
    assert apology["response_type"] == "ephemeral" and apology["text"].startswith("Sorry, something went wrong")
    assert origin_from_body(_mention(fixtures_dir, "hi")) == Origin(CHANNEL, "U222", thread_ts="1610241741.000200")


def test_papers_callback_acks_before_submitting_work(services: Services) -> None:
    calls = Mock()
    ack = Mock(spec=Ack)
    calls.attach_mock(ack, "ack")
    services.work = Mock(spec=Lanes)
    calls.attach_mock(services.work.submit, "submit")
    body = {"text": "graph", "channel_id": "C1", "user_id": "U1", "command": "/papers", "trigger_id": "t1"}
    make_papers_command(services)(ack=ack, body=body)
    assert [c[0] for c in calls.mock_calls] == ["ack", "submit"]
    ack.assert_called_once_with()
    assert calls.mock_calls[1].args[-1] == command_key(body)
    assert command_key(body) != command_key({**body, "trigger_id": "t2"})  # the same text typed again is new


def test_strip_mention_and_own_messages() -> None:
    event = {"text": "<@U0BOT> graph <@U0BOT|paperboy>  networks <@U0OTHER>", "user": "U1"}
    assert strip_mention(event, "U0BOT") == "graph networks <@U0OTHER>"
    assert strip_mention({"text": "<@U0BOT> graph"}, "") == "graph"
    assert is_own({"user": "U0BOT"}, "U0BOT", None) and is_own({"bot_id": "B1"}, "U0BOT", "B1")
    assert not is_own(event, "U0BOT", "B1")
