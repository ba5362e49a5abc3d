"""Slack faults end to end: the real ``python -m bot`` against FakeSlack over real sockets.

Each test injects one kind of Slack failure (429s, per-channel permanent errors, Socket Mode
disconnects and redeliveries, a half-open socket, revoked tokens) and asserts what the worker does,
from the fake's own records (call times, stored messages, acks) and the worker's log and exit status.
Env knobs (``PAPERBOY_SOCKET_*``, ``PAPERBOY_AUTH_CHECK_S``, ``PAPERBOY_SWEEP_S``) keep each one to
seconds; the defaults they stand in for are checked separately.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.botproc import BotProcess, channel_config, news, posted_paper_ids, serve_announcement, wait_for
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources

FAST_SOCKET = {
    "PAPERBOY_SOCKET_PING_S": "1",
    "PAPERBOY_SOCKET_STALE_S": "2.5",
    "PAPERBOY_SOCKET_CHECK_S": "0.25",
    "PAPERBOY_SOCKET_GIVE_UP_S": "4",
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _start(bots: list[BotProcess], tmp: Path, slack: FakeSlack, sources: FakeSources, **kw: Any) -> BotProcess:
    """Start a worker that the ``bots`` fixture kills after the test, whatever happened."""
    bot = BotProcess(tmp, slack, sources, **kw).start()
    bots.append(bot)
    return bot


def _outcome(bot: BotProcess, channel: str) -> str | None:
    """The state the worker logged for ``channel``'s digest (``posted``, ``slack_failed`` …), if it did."""
    m = re.search(rf"digest {channel} \S+: (\w+) \(\d+ papers posted", bot.log)
    if m:
        return m.group(1)
    return "slack_failed" if re.search(rf"digest {channel} \S+: Slack refused the post", bot.log) else None


def _posts_to(slack: FakeSlack, channel: str) -> list:
    return [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == channel]


def _log_time(line: str) -> float:
    """The timestamp that starts a worker log line, in seconds."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _error_lines(bot: BotProcess) -> list[str]:
    return [line for line in bot.log.splitlines() if " ERROR " in line]


# ---- 1. 429s during a digest ---------------------------------------------------------------------


@pytest.mark.slow
def test_429_on_every_fifth_post_is_waited_out_and_every_paper_is_posted_once(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    matching = news(30)
    serve_announcement(sources, matching + news(5, topic="protein folding", start=500))
    channels = [f"C0RATE{i}" for i in range(4)]
    slack.every_nth("chat.postMessage", 5, Fault.ratelimited(retry_after=2))
    bot = _start(bots, tmp_path, slack, sources, channels=[channel_config(channel=c, max_papers=3) for c in channels])
    wait_for(lambda: all(_outcome(bot, c) for c in channels), 90, "every digest", bot)

    calls = slack.calls("chat.postMessage")
    limited = [c for c in calls if c.status == 429]
    assert len(limited) >= 2, f"expected several 429s among {len(calls)} posts"
    for c in limited:
        later = [d.at for d in calls if d.at > c.at]
        assert later, "a 429'd post was never retried"
        assert min(later) - c.at >= 2.0  # Retry-After: 2, for every channel (the limit is per method)
    assert [_outcome(bot, c) for c in channels] == ["posted"] * 4
    for c in channels:
        assert Counter(posted_paper_ids(slack, c)) == Counter(p.id for p in matching)


# ---- 2. pacing across many channels --------------------------------------------------------------


@pytest.mark.slow
def test_ten_channels_are_paced_to_one_post_per_second_each_and_all_complete(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    papers = news(30)
    serve_announcement(sources, papers)
    channels = [f"C0PACE{i:02d}" for i in range(10)]
    bot = _start(bots, tmp_path, slack, sources, channels=[channel_config(channel=c, max_papers=3) for c in channels])
    wait_for(lambda: all(_outcome(bot, c) for c in channels), 150, "every digest", bot)

    for c in channels:
        assert _outcome(bot, c) == "posted"
        times = [call.at for call in _posts_to(slack, c)]
        assert len(times) >= 3, f"{c}: expected a parent and several thread replies"
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 1.0, f"{c}: two posts {min(gaps):.3f} s apart"
        assert Counter(posted_paper_ids(slack, c)) == Counter(p.id for p in papers)


# ---- 3. a permanent error in one channel ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "is_archived", "invalid_blocks"])
def test_a_permanent_error_in_one_channel_is_reported_once_and_never_retried(
    code: str, tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    papers = news(8)
    serve_announcement(sources, papers)
    channels = ["C0GOOD1", "C0BROKEN", "C0GOOD2"]  # the broken one in the middle
    slack.set_channel_error("C0BROKEN", code)
    cfg = [channel_config(channel=c, max_papers=5) for c in channels]
    bot = _start(bots, tmp_path, slack, sources, channels=cfg, extra_env={"PAPERBOY_SWEEP_S": "1"})
    wait_for(lambda: all(_outcome(bot, c) for c in channels), 60, "every digest", bot)
    time.sleep(3.5)  # several sweeps later: still a single attempt

    assert [_outcome(bot, c) for c in channels] == ["posted", "slack_failed", "posted"]
    for c in ("C0GOOD1", "C0GOOD2"):
        assert Counter(posted_paper_ids(slack, c)) == Counter(p.id for p in papers)
    assert len(_posts_to(slack, "C0BROKEN")) == 1
    assert slack.messages("C0BROKEN") == []
    (line,) = _error_lines(bot)
    assert "C0BROKEN" in line and code in line and "not retrying" in line
    assert bot.proc is not None and bot.proc.poll() is None  # one bad channel does not stop the worker


# ---- 4. Socket Mode disconnects and redeliveries ---------------------------------------------------


def test_a_repeated_disconnect_from_a_replaced_socket_does_not_drop_the_new_one(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    """Slack may send an old socket a second ``disconnect`` (``warning``, then ``refresh_requested``).
    slack_sdk reconnected on each: the second replaced the brand-new socket and dropped the commands
    already sent to it (15 of 40 here). Only a disconnect from the socket in use counts now."""
    serve_announcement(sources, news(5))
    bot = _start(bots, tmp_path, slack, sources, channels=[channel_config(channel="C0DIGEST1")])
    wait_for(lambda: _outcome(bot, "C0DIGEST1"), 60, "the digest that fills the archive", bot)
    envelopes = []
    for i in range(40):
        envelopes.append(slack.send_slash_command("/papers", "graph neural network", channel_id=f"C0CMD{i:03d}"))
        if i in (10, 25):
            assert slack.disconnect("warning") >= 1
            time.sleep(0.05)
            slack.disconnect("refresh_requested")  # the warned socket again, if it is still open
    unanswered = []
    for envelope in envelopes:
        try:
            slack.wait_ack(envelope, timeout=5)
        except TimeoutError:
            unanswered.append(envelope)
    assert unanswered == []
    late = [lat for e in envelopes if (lat := slack.envelope(e).ack_latency or 0.0) >= 3.0]
    assert not late, f"{len(late)} envelopes acked after Slack's 3 s deadline"
    assert "ignoring a disconnect frame from a socket that was already replaced" in bot.log


@pytest.mark.slow
def test_disconnects_and_redeliveries_lose_nothing_and_answer_each_request_once(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    serve_announcement(sources, news(20))
    bot = _start(bots, tmp_path, slack, sources, channels=[channel_config(channel="C0DIGEST1")])
    wait_for(lambda: _outcome(bot, "C0DIGEST1"), 60, "the digest that fills the archive", bot)

    commands: dict[str, str] = {}  # channel -> envelope id
    redelivered: list[str] = []
    for i in range(50):
        channel = f"C0CMD{i:03d}"
        commands[channel] = slack.send_slash_command("/papers", "graph neural network", channel_id=channel)
        if i % 7 == 3:  # Slack retries a command whose ack it did not see
            redelivered.append(slack.redeliver(commands[channel], "timeout"))
        if i == 10:
            assert slack.disconnect("refresh_requested") >= 1
        if i == 30:  # Slack warns each socket once: wait until the warned one is gone
            slack.wait_open_count(1, timeout=10)
            assert slack.disconnect("too_many_websockets") == 1
    mentions: dict[str, tuple[str, str]] = {}  # channel -> (mention ts, envelope id)
    for i in range(10):
        channel = f"C0MEN{i:02d}"
        ts = slack.post_as_user(channel, f"<@{slack.bot_user_id}> graph neural network")
        text = f"<@{slack.bot_user_id}> graph neural network"
        event = {"type": "app_mention", "text": text, "user": "U0ASKER", "channel": channel, "ts": ts}
        envelope = slack.send_event(event)
        mentions[channel] = (ts, envelope)
        if i == 4:
            slack.wait_open_count(1, timeout=10)
            assert slack.disconnect("refresh_requested") == 1
        redelivered.append(slack.redeliver(envelope, "timeout"))
        redelivered.append(slack.redeliver(redelivered[-1], "timeout"))  # retry_attempt 2, same event_id

    every = [*commands.values(), *(e for _, e in mentions.values()), *redelivered]
    for envelope in every:
        slack.wait_ack(envelope, timeout=15)

    def answered() -> bool:
        cmd_done = all(len(slack.messages(c)) >= 2 for c in commands)
        return cmd_done and all(len(slack.messages(c)) >= 2 for c in mentions)

    wait_for(answered, 60, "an answer to every command and mention", bot)
    time.sleep(2)  # redeliveries are answered by now if they were going to be
    for channel in commands:
        (parent,) = slack.top_level(channel)
        assert len(slack.replies(channel, parent["ts"])) == 1
        assert "graph neural network" in parent["text"]
    for channel, (ts, _) in mentions.items():
        assert len(slack.messages(channel)) == 2  # the mention, and one answer in its thread
        assert len(slack.replies(channel, ts)) == 1
    assert all(slack.envelope(e).ack_count == 1 for e in every)
    late = [lat for e in every if (lat := slack.envelope(e).ack_latency or 0.0) >= 3.0]
    assert not late, f"{len(late)} envelopes acked after Slack's 3 s deadline (worst {max(late):.2f} s)"
    assert bot.log.count("ignoring a redelivery") == len(redelivered)
    assert len(slack.connections) >= 3 and len(slack.calls("apps.connections.open")) >= 3
    assert slack.connection_count == 1  # the old sockets were closed, one is left


# ---- 5. a half-open socket ---------------------------------------------------------------------------


def test_default_socket_thresholds_notice_a_dead_socket_within_a_minute() -> None:
    from bot.__main__ import AUTH_CHECK_S
    from handlers import socket as sm

    assert sm.STALE_AFTER_S + sm.CHECK_EVERY_S <= 60
    assert sm.STALE_AFTER_S > 2 * sm.PING_INTERVAL_S  # a quiet but healthy socket still pongs in time
    assert AUTH_CHECK_S <= 60  # a revoked bot token is noticed well within 2 minutes


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["connections_open_fails", "upgrade_refused"])
def test_half_open_socket_is_replaced_and_an_unrestorable_one_exits_non_zero(
    outage: str, tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    bot = _start(bots, tmp_path, slack, sources, extra_env=FAST_SOCKET)
    bot.wait_log("connected to Slack", 60)
    assert len(slack.calls("apps.connections.open")) == 1

    slack.go_silent()  # no pongs, no envelopes; TCP stays up
    wait_for(lambda: len(slack.calls("apps.connections.open")) >= 2 and slack.connection_count >= 1, 60, "a new socket")
    slack.wait_connects(2, timeout=10)
    assert "Socket Mode connection silent" in bot.log  # the watchdog noticed (before the SDK's own 4-ping check)
    envelope = slack.send_slash_command("/papers", "help", channel_id="C111")
    assert slack.wait_ack(envelope, timeout=5)["envelope_id"] == envelope  # the new socket works

    if outage == "connections_open_fails":
        slack.add_fault("apps.connections.open", Fault.slack_error("internal_error"), times=1000)
    else:
        slack.socket.refuse_upgrades = True
    slack.go_silent()
    assert bot.wait(2.5 + 4 + 30) == 3  # silence noticed, give-up, then the bounded shutdown
    (exit_line,) = [line for line in bot.log.splitlines() if "exiting with status 3" in line]
    assert "ERROR paperboy: exiting with status 3: Socket Mode connection unhealthy for" in exit_line
    noticed = [line for line in bot.log.splitlines() if "Socket Mode connection silent" in line][-1]
    assert _log_time(exit_line) - _log_time(noticed) <= 4 + 2 * 0.25 + 1.0  # PAPERBOY_SOCKET_GIVE_UP_S, checks


def test_socket_knobs_that_would_flap_are_refused(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    env = {"PAPERBOY_SOCKET_PING_S": "5", "PAPERBOY_SOCKET_STALE_S": "6"}
    bot = _start(bots, tmp_path, slack, sources, extra_env=env)
    assert bot.wait(30) == 1
    assert "PAPERBOY_SOCKET_STALE_S (6) must be more than twice PAPERBOY_SOCKET_PING_S (5)" in bot.log
    assert "Traceback" not in bot.log


# ---- 6. revoked tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["bot", "app"])
def test_a_token_revoked_before_start_exits_non_zero_with_one_clear_line(
    which: str, tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    slack.revoke(slack.bot_token if which == "bot" else slack.app_token, "token_revoked")
    bot = _start(bots, tmp_path, slack, sources)
    assert bot.wait(60) == 1
    line = _error_lines(bot)[-1]  # for the app token slack_bolt first logs its own "Failed to retrieve WSS URL"
    assert line == bot.log.splitlines()[-1]  # ours is the last word
    assert "token_revoked" in line and ("SLACK_BOT_TOKEN" if which == "bot" else "SLACK_APP_TOKEN") in line
    assert "Traceback" not in bot.log
    assert slack.connection_count == 0


@pytest.mark.slow
def test_a_bot_token_revoked_while_idle_is_noticed_by_the_keepalive(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    bot = _start(bots, tmp_path, slack, sources, extra_env={"PAPERBOY_AUTH_CHECK_S": "1"})
    bot.wait_log("connected to Slack", 60)
    time.sleep(2.5)  # keepalives pass while the token is good
    assert bot.proc is not None and bot.proc.poll() is None
    slack.revoke(slack.bot_token, "token_revoked")
    assert bot.wait(120) == 4
    assert re.search(r"ERROR paperboy: exiting with status 4: auth\.test: .*token_revoked.*SLACK_BOT_TOKEN", bot.log)
    assert "Traceback" not in bot.log


@pytest.mark.slow
def test_an_app_token_revoked_while_running_fails_the_reconnect_at_once(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    env = {**FAST_SOCKET, "PAPERBOY_SOCKET_GIVE_UP_S": "600"}  # the exit must not wait for the give-up
    bot = _start(bots, tmp_path, slack, sources, extra_env=env)
    bot.wait_log("connected to Slack", 60)
    slack.revoke(slack.app_token, "token_revoked")
    slack.drop_connections()
    assert bot.wait(60) == 3
    assert re.search(r"exiting with status 3: apps\.connections\.open failed: token_revoked .*SLACK_APP_TOKEN", bot.log)


@pytest.mark.slow
def test_a_bot_token_revoked_mid_digest_exits_and_the_digest_resumes_after_restart(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    papers = news(12)
    serve_announcement(sources, papers)
    cfg = channel_config(channel="C0DIGEST1", max_papers=5)
    cfg["days"] = [d for d in cfg["days"] if d != f"{datetime.now(UTC):%a}".lower()]  # not due today by itself
    slow_keepalive = {"PAPERBOY_AUTH_CHECK_S": "3600"}  # so the digest path has to surface the error itself
    bot = _start(bots, tmp_path, slack, sources, channels=[cfg], extra_env=slow_keepalive)
    bot.wait_log("connected to Slack", 60)
    slack.revoke(slack.bot_token, "token_revoked")
    slack.send_slash_command("/papers", "digest", channel_id="C0DIGEST1")
    assert bot.wait(60) == 4
    assert len(_posts_to(slack, "C0DIGEST1")) == 1 and slack.messages("C0DIGEST1") == []
    assert "exiting with status 4" in bot.log and "rejected the bot token (token_revoked)" in bot.log

    slack.workspace.revoked.pop(slack.bot_token)  # the operator installs a good token and restarts
    again = _start(bots, tmp_path, slack, sources, extra_env=slow_keepalive, name="bot2")
    again.wait_log("connected to Slack", 60)
    slack.send_slash_command("/papers", "digest", channel_id="C0DIGEST1")
    wait_for(lambda: _outcome(again, "C0DIGEST1") == "posted", 60, "the resumed digest", again)
    assert Counter(posted_paper_ids(slack, "C0DIGEST1")) == Counter(p.id for p in papers)
