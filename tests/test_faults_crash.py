"""Crash consistency of the morning digest: kill -9 at named crash points, SIGTERM mid-digest, restart times.

The crash tests run the real ``python -m bot`` (``tests/botproc.py``) with ``PAPERBOY_CRASH_AT`` naming
a crash point of ``bot/jobs.py`` (``bot/faults.py``: the process SIGKILLs itself there), check that the
crash left the state that point stands for, restart the bot without it, and check every invariant of
``tests/invariants.py`` once the digest is finished. Restarts around the scheduled time run real
processes for 1 s before/after the slot and in-process jobs with an injected clock for an hour after.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import faults
from bot.delivery import SlackDelivery
from bot.errors import ConfigError
from bot.jobs import Core, DigestOutcome, run_due_digests
from bot.models import FetchResult
from bot.scheduler import next_fire_times
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import fetch_announcements
from bot.store import Store
from bot.store import digests as dg
from bot.store.schema import digest_messages, digest_runs
from tests.botproc import CHANNEL, BotProcess, channel_config, news, serve_announcement, wait_for
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources, fast_client, render_rss_feed
from tests.invariants import check_invariants

pytestmark = pytest.mark.slow
FAST = {"PAPERBOY_DIGEST_LEASE_S": "2", "PAPERBOY_SWEEP_S": "1"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "papers")
        yield fake


def _runs(store: Store, channel_id: str = CHANNEL) -> list[sa.Row]:
    q = sa.select(digest_runs).where(digest_runs.c.channel == channel_id)
    return store.run(lambda conn: list(conn.execute(q)), write=False)


def _posted_in_db(store: Store, channel_id: str = CHANNEL) -> int:
    q = (
        sa.select(sa.func.count())
        .select_from(digest_messages.join(digest_runs))
        .where(digest_runs.c.channel == channel_id, digest_messages.c.state == "posted")
    )
    return int(store.run(lambda conn: conn.scalar(q), write=False) or 0)


def _finished(store: Store, channel_id: str = CHANNEL) -> bool:
    runs = _runs(store, channel_id)
    return bool(runs) and all(r.state in dg.FINAL_STATES for r in runs)


def _digest_parents(slack: FakeSlack, channel_id: str = CHANNEL) -> list[dict]:
    return [m for m in slack.top_level(channel_id) if (m.get("metadata") or {}).get("event_type") == "paperboy_digest"]


# 60 matches with max_papers=5: the parent and three thread chunks (four posts), plus 5 that do not match.
MATCHING, OTHER = news(60), news(5, topic="protein folding", start=500)


@pytest.mark.parametrize(
    ("point", "in_slack", "recorded", "planned"),
    [
        ("after_claim", 0, 0, False),
        ("after_plan", 0, 0, True),
        ("after_post", 1, 0, True),  # the parent is in Slack, the database does not know
        ("after_post:2", 2, 1, True),  # the first thread chunk likewise
        ("after_post:4", 4, 3, True),  # the last chunk: every message posted, the run not finished
        ("mid_thread", 2, 2, True),  # parent and one chunk posted and recorded, the rest not yet
    ],
)
def test_kill_9_at_crash_point_then_restart_posts_each_match_once(
    point: str,
    in_slack: int,
    recorded: int,
    planned: bool,
    tmp_path: Path,
    slack: FakeSlack,
    sources: FakeSources,
    bots: list[BotProcess],
) -> None:
    serve_announcement(sources, MATCHING + OTHER)
    crashing = {**FAST, "PAPERBOY_CRASH_AT": point}
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config(max_papers=5)], extra_env=crashing).start()
    bots.append(bot)
    assert bot.wait(60) == -signal.SIGKILL, bot.log
    store = Store.open(f"sqlite:///{tmp_path / 'paperboy.db'}")
    try:
        # The crash left exactly the state its point stands for.
        (run,) = _runs(store)
        assert run.state == dg.CLAIMED and (run.window_end is not None) == planned
        assert len(slack.messages(CHANNEL)) == in_slack
        assert _posted_in_db(store) == recorded

        again = BotProcess(tmp_path, slack, sources, extra_env=FAST, name="bot2").start()
        bots.append(again)
        wait_for(lambda: _finished(store), 60, "the resumed digest to finish", again)
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in MATCHING}}) == []
        assert len(slack.messages(CHANNEL)) == 4
        again.kill(signal.SIGTERM)
        assert again.wait(25) == 0
    finally:
        store.close()


def test_sigterm_mid_digest_exits_zero_and_the_restart_posts_the_rest_once(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    serve_announcement(sources, MATCHING + OTHER)
    slack.every_nth("chat.postMessage", 1, Fault.delay(1.5))  # slow posts, so SIGTERM lands mid-digest
    bot = BotProcess(tmp_path, slack, sources, channels=[channel_config(max_papers=5)], extra_env=FAST).start()
    bots.append(bot)
    wait_for(lambda: slack.messages(CHANNEL), 60, "the first post", bot)
    started = time.monotonic()
    bot.kill(signal.SIGTERM)
    assert bot.wait(25) == 0
    assert time.monotonic() - started < 25
    assert "Traceback" not in bot.log
    store = Store.open(f"sqlite:///{tmp_path / 'paperboy.db'}")
    try:
        (run,) = _runs(store)
        assert run.state == dg.WAITING and run.note == "stopped by SIGTERM"  # handed back, not abandoned
        posted_before = len(slack.messages(CHANNEL))
        assert 1 <= posted_before < 4 and _posted_in_db(store) == posted_before  # the post in flight finished

        slack.clear_faults()
        again = BotProcess(tmp_path, slack, sources, extra_env=FAST, name="bot2").start()
        bots.append(again)
        wait_for(lambda: _finished(store), 60, "the rest of the digest", again)
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in MATCHING}}) == []
        assert len(slack.messages(CHANNEL)) == 4
    finally:
        store.close()


def _sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def test_restart_one_second_before_and_after_the_slot_posts_once_on_time(
    tmp_path: Path, slack: FakeSlack, sources: FakeSources, bots: list[BotProcess]
) -> None:
    """Two bots (own databases, own channels, one scheduled minute): one restarts 1 s before it, one 1 s after."""
    serve_announcement(sources, MATCHING)
    now = datetime.now(UTC)
    slot = (now + timedelta(seconds=80 if now.second > 40 else 60)).replace(second=0, microsecond=0)
    if slot.date() != (slot - timedelta(minutes=2)).date():
        pytest.skip("the slot would be right after midnight UTC")
    lives = {"before": -1.0, "after": 1.0}
    dirs = {name: tmp_path / name for name in lives}
    for name, d in dirs.items():
        d.mkdir()
        slack.add_channel(f"C0{name.upper()}")
        cfg = channel_config(channel=f"C0{name.upper()}", at=slot)
        bots.append(BotProcess(d, slack, sources, channels=[cfg], name=f"{name}-1", extra_env=FAST).start())
    for first in bots:
        first.wait_log("connected to Slack", 60)
    for first in bots:  # the first lives end cleanly before the slot, having posted nothing
        first.kill(signal.SIGTERM)
        assert first.wait(25) == 0
    assert slack.calls("chat.postMessage") == []
    for name, offset in lives.items():
        _sleep_until(slot + timedelta(seconds=offset))
        bots.append(BotProcess(dirs[name], slack, sources, name=f"{name}-2", extra_env=FAST).start())
    for name, bot in zip(lives, bots[-2:], strict=True):
        wait_for(partial(_digest_parents, slack, f"C0{name.upper()}"), 90, f"the {name} digest", bot)
    time.sleep(2)  # a sweep or two more: still one digest each
    for name, bot in zip(lives, bots[-2:], strict=True):
        cid = f"C0{name.upper()}"
        (parent,) = _digest_parents(slack, cid)
        assert slot.timestamp() <= float(parent["ts"]) < slot.timestamp() + 180  # on time, at most minutes late
        store = Store.open(f"sqlite:///{dirs[name] / 'paperboy.db'}")
        try:
            wait_for(partial(_finished, store, cid), 30, f"the {name} digest to finish", bot)
            assert check_invariants(slack, store, [cid], {cid: {p.id for p in MATCHING}}) == []
        finally:
            store.close()


def _core(store: Store, slack: FakeSlack, sources: FakeSources, ch: ChannelConfig) -> Core:
    settings = Settings(categories=("cs.LG",), channels=(ch,), fetch_retry_minutes=60)

    def fetcher(today: date) -> list[FetchResult]:
        return fetch_announcements(
            categories=settings.categories,
            today=today,
            rss_url=sources.rss_url,
            hf_url=sources.hf_url,
            client=fast_client(),
        )

    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    return Core(
        settings=settings, store=store, index=SearchIndex(), delivery=delivery, owner="restarted", fetcher=fetcher
    )


@pytest.mark.parametrize("late", [timedelta(seconds=-1), timedelta(seconds=1), timedelta(hours=1)])
def test_restart_around_the_slot_in_process_posts_once_within_minutes(
    late: timedelta, db_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    """In-process, injected clock: the start-up catch-up, the cron wake-up and later sweeps post once."""
    day = datetime.now(UTC).date()
    papers = news(12, day=day)
    sources.rss["cs.LG"] = render_rss_feed(papers, announced=day, cats="cs.LG")
    ch = ChannelConfig(channel=CHANNEL, time=dtime(9, 0), timezone="UTC", keywords=("graph neural network",))
    slot = datetime.combine(day, ch.time, tzinfo=UTC)
    restart = slot + late
    store = Store.open(db_url)
    store.migrate()
    try:
        core = _core(store, slack, sources, ch)
        clock = [restart]
        core.clock = lambda: clock[0]
        # After a restart the worker catches up at once, then wakes at the next cron time and every sweep.
        cron = next_fire_times(ch, restart, 1)[0]
        assert cron == slot if late < timedelta(0) else cron > slot  # before the slot, cron still fires today
        sweeps = [restart + timedelta(minutes=m) for m in (1, 2, 90)]
        posted_at = None
        wakes = [restart, *sweeps] + ([cron] if cron.date() == day else [])  # tomorrow's cron is another day
        for wake in sorted(wakes):
            clock[0] = wake
            for outcome in run_due_digests(core, now=wake):
                assert outcome.state == dg.POSTED and posted_at is None, outcome
                posted_at = wake
        assert posted_at == max(slot, restart)  # at the slot, or at once when the restart came after it
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in papers}}) == []
        assert len(_digest_parents(slack)) == 1
    finally:
        store.close()


def test_a_post_stuck_in_429_waits_longer_than_the_lease_is_not_taken_over(
    db_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    """Two workers: while A waits out 429s for longer than its lease, B must not take the run and repost."""
    day = datetime.now(UTC).date()
    papers = news(12, day=day)
    sources.rss["cs.LG"] = render_rss_feed(papers, announced=day, cats="cs.LG")
    ch = ChannelConfig(channel=CHANNEL, time=dtime(0, 0), timezone="UTC", keywords=("graph neural network",))
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=1), times=3)  # A's first post: 3 s of waits
    store = Store.open(db_url)
    store.migrate()
    try:
        a, b = (_core(store, slack, sources, ch) for _ in range(2))
        a.owner, b.owner = "a", "b"
        a.lease = b.lease = timedelta(seconds=1)
        stop = threading.Event()
        b_outcomes: list[DigestOutcome] = []

        def worker_b() -> None:  # the second worker's sweep, every 100 ms once A has planned (A is posting)
            while not stop.wait(0.1):
                run = dg.get_run(store.engine, CHANNEL, day)
                if run and run.planned:
                    b_outcomes.extend(run_due_digests(b))

        thread = threading.Thread(target=worker_b)
        thread.start()
        try:
            (outcome,) = run_due_digests(a)
        finally:
            stop.set()
            thread.join(30)
        assert outcome.state == dg.POSTED
        assert {o.state for o in b_outcomes} <= {"busy", "done"}, b_outcomes  # B never took the run over
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in papers}}) == []
    finally:
        store.close()


def test_crash_point_is_inert_unless_named_and_calls_an_installed_hook() -> None:
    assert faults._parse(None) is None
    assert faults._parse("after_post:3") == ("after_post", 3)
    assert faults._parse("mid_thread") == ("mid_thread", 1)
    for bad in ("after_lunch", "after_post:0", "after_post:x"):
        with pytest.raises(ConfigError, match="PAPERBOY_CRASH_AT"):
            faults._parse(bad)
    faults.crash_point("after_claim")  # no variable, no hook: nothing happens (we are still here)
    seen: list[str] = []
    faults.set_hook(seen.append)
    try:
        faults.crash_point("after_plan")
    finally:
        faults.set_hook(None)
    faults.crash_point("after_post")
    assert seen == ["after_plan"]


def test_a_run_left_unplanned_on_an_earlier_day_is_finished_late_not_left_open(
    db_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    """A worker died right after claiming yesterday's digest; today's start-up finishes it, then today's."""
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    papers = news(8, day=today)
    sources.rss["cs.LG"] = render_rss_feed(papers, announced=today, cats="cs.LG")
    ch = ChannelConfig(channel=CHANNEL, time=dtime(9, 0), timezone="UTC", keywords=("graph neural network",))
    store = Store.open(db_url)
    store.migrate()
    try:
        claimed_at = datetime.combine(yesterday, dtime(9, 0), tzinfo=UTC)
        assert dg.claim(store.engine, CHANNEL, yesterday, "dead", claimed_at, timedelta(minutes=2))
        core = _core(store, slack, sources, ch)
        now = datetime.combine(today, dtime(9, 30), tzinfo=UTC)
        core.clock = lambda: now
        outcomes = run_due_digests(core, now=now)
        assert [(o.day, o.state) for o in outcomes] == [(yesterday, dg.POSTED), (today, dg.POSTED)]
        days = {CHANNEL: [yesterday, today]}
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in papers}}, days=days) == []
        assert run_due_digests(core, now=now + timedelta(minutes=1)) == []
    finally:
        store.close()


def test_a_failed_reconciliation_read_releases_the_run_and_a_retry_posts_once(
    db_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    day = datetime.now(UTC).date()
    papers = news(3, day=day)
    sources.rss["cs.LG"] = render_rss_feed(papers, announced=day, cats="cs.LG")
    ch = ChannelConfig(channel=CHANNEL, time=dtime(0, 0), timezone="UTC", keywords=("graph neural network",))
    store = Store.open(db_url)
    store.migrate()
    try:
        core = _core(store, slack, sources, ch)
        slack.add_fault("chat.postMessage", Fault.lost())  # in Slack, but we do not know
        (first,) = run_due_digests(core)
        assert first.state == dg.WAITING
        slack.add_fault("conversations.history", Fault.http(500))  # and the look-up fails too
        later = datetime.now(UTC) + timedelta(minutes=5)
        core.clock = lambda: later
        (second,) = run_due_digests(core, now=later)
        assert (second.state, second.note) == (dg.WAITING, "http_500")  # handed back, not an unexpected crash
        latest = later + timedelta(minutes=5)
        core.clock = lambda: latest
        (third,) = run_due_digests(core, now=latest)
        assert third.state == dg.POSTED
        assert check_invariants(slack, store, [CHANNEL], {CHANNEL: {p.id for p in papers}}) == []
    finally:
        store.close()
