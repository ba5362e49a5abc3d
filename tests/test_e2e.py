"""End to end: the real ``python -m bot`` process against the fake Slack (Web API + Socket Mode) and fake
arXiv/HF servers, over real sockets, with a real database.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.botproc import CHANNEL, BotProcess, channel_config, news, posted_paper_ids, serve_announcement, wait_for
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources

pytestmark = pytest.mark.slow


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "papers")
        fake.add_channel("C111", "random")
        yield fake


def _digest_parents(slack: FakeSlack, channel: str = CHANNEL) -> list[dict]:
    return [m for m in slack.top_level(channel) if (m.get("metadata") or {}).get("event_type") == "paperboy_digest"]


def test_slash_command_is_acked_fast_and_answered_in_a_thread(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    serve_announcement(sources, news(12))
    # A digest channel (due now) fills the archive; then /papers searches it.
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config()]).start()
    bots.append(bot)
    wait_for(lambda: _digest_parents(slack), 60, "the digest", bot)
    envelope = slack.send_slash_command("/papers", "graph neural network", channel_id="C111", user_id="U0ALICE")
    ack = slack.wait_ack(envelope, timeout=3.0)
    assert ack["envelope_id"] == envelope
    assert slack.envelope(envelope).ack_latency < 3.0
    wait_for(lambda: len(slack.messages("C111")) >= 2, 20, "parent and threaded reply", bot)
    parent, reply = slack.messages("C111")[:2]
    assert "U0ALICE" in parent["text"] and "graph neural network" in parent["text"]
    assert "thread_ts" not in parent or parent.get("thread_ts") in (None, parent["ts"])
    assert reply["thread_ts"] == parent["ts"]
    assert "arxiv.org/abs/2611." in str(reply["blocks"])


def test_due_digest_is_posted_exactly_once_across_restarts(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    papers = news(8) + news(3, topic="protein folding", start=100)
    serve_announcement(sources, papers)
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config(max_papers=5)]).start()
    bots.append(bot)
    wait_for(lambda: any("digest" in line and "posted" in line for line in bot.log.splitlines()), 60, "digest", bot)
    ids = posted_paper_ids(slack, CHANNEL)
    assert sorted(ids) == sorted(p.id for p in papers[:8])  # only the matching ones, each once
    (parent,) = _digest_parents(slack)
    assert len(slack.replies(CHANNEL, parent["ts"])) >= 1  # 8 matches, 5 in the parent, the rest in the thread
    assert all(not c.params.get("unfurl_links") for c in slack.calls("chat.postMessage"))

    bot.kill(signal.SIGTERM)
    assert bot.wait(25) == 0
    again = BotProcess(tmp_path, slack, sources, name="bot2").start()
    bots.append(again)
    again.wait_log("connected to Slack", 60)
    time.sleep(3)  # the start-up catch-up runs and must find today's digest done
    assert len(_digest_parents(slack)) == 1
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(ids)


def test_scheduled_time_produces_one_digest(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    serve_announcement(sources, news(3))
    now = datetime.now(UTC)
    if now.second > 50:  # keep the slot strictly in the future when the process starts
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    slot = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config(at=slot)]).start()
    bots.append(bot)
    bot.wait_log("connected to Slack", 60)
    assert _digest_parents(slack) == []  # not due yet
    assert "WARNING" not in bot.log, bot.log  # a clean start-up logs no warnings (Bolt's token one included)
    wait_for(lambda: _digest_parents(slack), 90, "the scheduled digest", bot)
    time.sleep(2)
    (parent,) = _digest_parents(slack)
    assert float(parent["ts"]) >= slot.timestamp() - 1


def test_kill_9_mid_digest_then_restart_posts_each_paper_once(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    papers = news(40)
    serve_announcement(sources, papers)
    lease = {"PAPERBOY_DIGEST_LEASE_S": "5", "PAPERBOY_SWEEP_S": "2"}
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config(max_papers=5)], extra_env=lease).start()
    bots.append(bot)
    wait_for(lambda: [c for c in slack.calls("chat.postMessage") if c.answered], 60, "the first post", bot)
    # The next post is accepted by Slack but its response is lost; the worker is killed right then.
    slack.add_fault("chat.postMessage", Fault.lost())
    wait_for(lambda: len(slack.calls("chat.postMessage")) >= 2, 30, "the second post", bot)
    bot.kill(signal.SIGKILL)
    bot.wait(10)
    again = BotProcess(tmp_path, slack, sources, name="bot2", extra_env=lease).start()
    bots.append(again)
    # The dead worker's lease must expire before the run is resumed; the lost post is found by its metadata.
    wait_for(lambda: "digest C0DIGEST1" in again.log and ": posted" in again.log, 120, "the resumed digest", again)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in papers)
    assert len(_digest_parents(slack)) == 1


def test_two_workers_on_postgresql_post_one_digest(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess], pg_url: str
) -> None:
    papers = news(12)
    serve_announcement(sources, papers)
    a = BotProcess(tmp_path, slack, sources, channels=[channel_config()], database_url=pg_url, name="a")
    b = BotProcess(tmp_path, slack, sources, database_url=pg_url, name="b")
    bots += [a.start(), b.start()]
    wait_for(lambda: _digest_parents(slack), 60, "a digest", a)
    time.sleep(5)
    assert len(_digest_parents(slack)) == 1
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in papers)


def test_429_retry_after_is_honoured(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    serve_announcement(sources, news(3))
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=2))
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config()]).start()
    bots.append(bot)
    wait_for(lambda: _digest_parents(slack), 60, "the digest", bot)
    first, second = slack.calls("chat.postMessage")[:2]
    assert first.status == 429
    assert second.at - first.at >= 2.0
    assert len(_digest_parents(slack)) == 1


def test_not_in_channel_falls_back_to_an_ephemeral_answer(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    slack.add_channel("C0PRIVATE", "secret", private=True)
    slack.set_channel_error("C0PRIVATE", "not_in_channel")
    bot = BotProcess(tmp_path, slack, sources).start()
    bots.append(bot)
    bot.wait_log("connected to Slack", 60)
    envelope = slack.send_slash_command("/papers", "transformers", channel_id="C0PRIVATE", user_id="U0BOB")
    slack.wait_ack(envelope, timeout=3.0)
    url = slack.envelope(envelope).frame["payload"]["response_url"]
    wait_for(lambda: slack.responses(url), 20, "the ephemeral answer", bot)
    text = str(slack.responses(url))
    assert "/invite" in text
    assert slack.top_level("C0PRIVATE") == []


def test_injection_in_titles_and_queries_is_inert(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    evil = news(1, topic="graph neural network <!channel> <@U0BOSS> <https://evil.example|arxiv.org>")
    serve_announcement(sources, evil)
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config()]).start()
    bots.append(bot)
    wait_for(lambda: _digest_parents(slack), 60, "the digest", bot)
    envelope = slack.send_slash_command("/papers", "graph <!here> <#C0OTHER>", channel_id="C111", user_id="U0EVE")
    slack.wait_ack(envelope, timeout=3.0)
    wait_for(lambda: len(slack.messages("C111")) >= 2, 20, "the search answer", bot)
    for m in slack.messages(CHANNEL) + slack.messages("C111"):
        payload = str(m.get("text")) + str(m.get("blocks"))
        for bad in ("<!channel>", "<!here>", "<@U0BOSS>", "<#C0OTHER>", "<https://evil.example"):
            assert bad not in payload
    assert all(token == "<@" for token in slack.mentions())  # only the requester, by validated id


def test_bad_tokens_exit_non_zero_with_one_clear_line(tmp_path: Path, slack: FakeSlack, sources: FakeSources) -> None:
    bot = BotProcess(tmp_path, slack, sources, extra_env={"SLACK_BOT_TOKEN": ""}).start()
    assert bot.wait(30) == 1
    assert "SLACK_BOT_TOKEN must be set" in bot.log
    assert "Traceback" not in bot.log

    revoked = BotProcess(tmp_path, slack, sources, extra_env={"SLACK_APP_TOKEN": "xapp-1-revoked"}, name="b2").start()
    assert revoked.wait(60) == 1
    assert "invalid_auth" in revoked.log and "SLACK_APP_TOKEN" in revoked.log


def test_paas_without_database_url_refuses_ephemeral_sqlite(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources
) -> None:
    bot = BotProcess(tmp_path, slack, sources, extra_env={"DYNO": "worker.1"})
    del bot.env["DATABASE_URL"]
    bot.start()
    assert bot.wait(30) == 1
    assert "DATABASE_URL" in bot.log and "ephemeral" in bot.log


def test_sigterm_exits_zero_quickly(tmp_path: Path, slack: FakeSlack, sources: FakeSources) -> None:
    bot = BotProcess(tmp_path, slack, sources).start()
    bot.wait_log("connected to Slack", 60)
    started = time.monotonic()
    bot.kill(signal.SIGTERM)
    assert bot.wait(30) == 0
    assert time.monotonic() - started < 25
    wait_for(lambda: slack.connection_count == 0, 10, "the socket to close")
