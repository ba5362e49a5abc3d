"""Digest jobs: exactly-once posting under crashes, lost responses, overlap, source failures and DST.

Each test runs the real jobs code against a real database (SQLite and PostgreSQL), the fake Slack
and fake arXiv/HF servers over sockets. Crashes are simulated by abandoning a run at a named point
and resuming it with a second worker (a new owner) once the first one's lease has expired.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot import jobs
from bot.delivery import SlackDelivery
from bot.jobs import Core, due_day, run_due_digests
from bot.models import FetchResult
from bot.scheduler import next_fire_times
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import fetch_announcements
from bot.store import Store
from bot.store import digests as dg
from tests.botproc import CHANNEL, news, posted_paper_ids, serve_announcement, serve_hf
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources, Reply, fast_client

EMPTY_RSS = "reconstructed_rss_cs.AI_empty_no_announcement.xml"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "papers")
        fake.add_channel("C0OTHER", "other")
        yield fake


def channel(
    cid: str = CHANNEL, max_papers: int = 5, keywords: tuple[str, ...] = ("graph neural network",)
) -> ChannelConfig:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return ChannelConfig(
        channel=cid, time=time(0, 0), days=days, timezone="UTC", keywords=keywords, max_papers=max_papers
    )


def make_core(
    store: Store, slack: FakeSlack, sources: FakeSources, *, owner: str = "w1", channels: tuple[ChannelConfig, ...] = ()
) -> Core:
    settings = Settings(categories=("cs.LG",), channels=channels or (channel(),), fetch_retry_minutes=60)

    def fetcher(today: date) -> list[FetchResult]:
        return fetch_announcements(
            categories=settings.categories,
            today=today,
            rss_url=sources.rss_url,
            hf_url=sources.hf_url,
            client=fast_client(),
        )

    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    index = SearchIndex.from_store(store)
    return Core(settings=settings, store=store, index=index, delivery=delivery, owner=owner, fetcher=fetcher)


def digests(slack: FakeSlack, cid: str = CHANNEL) -> list[dict]:
    return [m for m in slack.top_level(cid) if (m.get("metadata") or {}).get("event_type") == jobs.EVENT_TYPE]


def test_due_digest_posts_once_and_only_matches(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    papers = news(12) + news(4, topic="protein folding", start=200)
    serve_announcement(sources, papers)
    core = make_core(store, slack, sources)
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED
    assert run_due_digests(core) == []  # done for today: nothing runs again
    assert sorted(posted_paper_ids(slack, CHANNEL)) == sorted(p.id for p in papers[:12])
    (parent,) = digests(slack)
    assert "12 match" in parent["text"] or "12 match" in str(parent["blocks"])
    assert slack.replies(CHANNEL, parent["ts"])  # 12 matches, 5 in the parent, the rest in its thread


def test_crash_after_claim_is_resumed_by_another_worker(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    serve_announcement(sources, news(9))
    dead = make_core(store, slack, sources, owner="dead")
    day = datetime.now(UTC).date()
    assert dg.claim(store.engine, CHANNEL, day, "dead", datetime.now(UTC) - timedelta(minutes=5), dead.lease)
    alive = make_core(store, slack, sources, owner="alive")
    (outcome,) = run_due_digests(alive)
    assert outcome.state == dg.POSTED
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(9))


def test_crash_after_outbox_written_posts_every_planned_paper_once(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(9))
    dead = make_core(store, slack, sources, owner="dead")
    dead.lease = timedelta(0)  # its lease is over as soon as it is taken
    day = datetime.now(UTC).date()
    run = dg.claim(store.engine, CHANNEL, day, "dead", datetime.now(UTC), dead.lease)
    assert run is not None
    assert jobs._plan(dead, channel(), run, jobs.refresh(dead), datetime.now(UTC))  # planned, nothing posted
    assert slack.calls("chat.postMessage") == []
    alive = make_core(store, slack, sources, owner="alive")
    (outcome,) = run_due_digests(alive)
    assert outcome.state == dg.POSTED
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(9))


def test_post_accepted_but_response_lost_is_reconciled_not_reposted(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(14))
    core = make_core(store, slack, sources)
    core.lease = timedelta(0)
    slack.add_fault("chat.postMessage", Fault.lost())  # the parent reaches Slack, its response does not
    (first,) = run_due_digests(core)
    assert first.state == dg.WAITING
    assert len(slack.top_level(CHANNEL)) == 1
    later = make_core(store, slack, sources, owner="w2")
    run = dg.get_run(store.engine, CHANNEL, first.day)
    assert run is not None and run.lease_until is not None
    resume_at = run.lease_until + timedelta(seconds=1)
    later.clock = lambda: resume_at
    (second,) = run_due_digests(later, now=resume_at)
    assert second.state == dg.POSTED
    assert len(digests(slack)) == 1
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(14))


def test_permanent_error_in_one_channel_leaves_the_others_alone(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(3))
    slack.set_channel_error("C0OTHER", "is_archived")
    core = make_core(store, slack, sources, channels=(channel("C0OTHER"), channel()))
    outcomes = {o.channel: o for o in run_due_digests(core)}
    assert outcomes["C0OTHER"].state == dg.SLACK_FAILED and outcomes["C0OTHER"].note == "is_archived"
    assert outcomes[CHANNEL].state == dg.POSTED
    assert run_due_digests(core) == []  # no retry storm: the failed channel is finished for today
    assert len([c for c in slack.calls("chat.postMessage") if c.params.get("channel") == "C0OTHER"]) == 1


def test_failed_arxiv_waits_then_says_so_never_no_matches(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    sources.queue("rss", Reply.html(200), Reply.html(200))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if now.hour == 0 and now.minute < 2:
        pytest.skip("the slot would fall on the previous day")
    slot = replace(channel(), time=(now - timedelta(minutes=1)).time())
    core = make_core(store, slack, sources, channels=(slot,))  # fetch_retry_minutes=60
    (waiting,) = run_due_digests(core)
    assert waiting.state == dg.WAITING and slack.calls("chat.postMessage") == []
    assert run_due_digests(core) == [jobs.DigestOutcome(CHANNEL, waiting.day, "busy")]  # not before its retry time
    late = now + timedelta(minutes=61)  # past the retry window: say the fetch failed
    core._fetched = None
    core.clock = lambda: late
    (failed,) = run_due_digests(core, now=late)
    assert failed.state == dg.SOURCE_FAILED
    (parent,) = digests(slack)
    text = parent["text"] + str(parent["blocks"])
    assert "arXiv" in text and "could not be fetched" in text
    assert "No new papers match" not in text


def test_no_announcement_day_is_said_in_one_line(
    store: Store, slack: FakeSlack, sources: FakeSources, fixtures_dir: Path
) -> None:
    sources.rss["cs.LG"] = (fixtures_dir / "arxiv_rss" / EMPTY_RSS).read_bytes()
    core = make_core(store, slack, sources)
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.NO_ANNOUNCEMENT
    (parent,) = digests(slack)
    assert "No arXiv announcement" in parent["text"] + str(parent["blocks"])


def test_hf_failure_still_posts_arxiv_and_names_hf(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    serve_announcement(sources, news(3))
    sources.queue("hf", *[Reply(500, "oops")] * 6)
    core = make_core(store, slack, sources)
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED
    (parent,) = digests(slack)
    assert "Hugging Face" in parent["text"] + str(parent["blocks"])
    assert len(posted_paper_ids(slack, CHANNEL)) == 3


def test_paper_on_arxiv_and_hf_appears_once(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    papers = news(3)
    serve_announcement(sources, papers)
    serve_hf(sources, papers[:2])
    core = make_core(store, slack, sources)
    run_due_digests(core)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in papers)


def test_late_paper_is_posted_the_next_day_once(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    first, late = news(3), news(1, start=50)
    serve_announcement(sources, first)
    core = make_core(store, slack, sources)
    today = datetime.now(UTC)
    run_due_digests(core, now=today)
    serve_announcement(sources, first + late)  # the late paper shows up in the next day's feed
    core._fetched = None
    tomorrow = today + timedelta(days=1)
    core.clock = lambda: tomorrow
    run_due_digests(core, now=tomorrow)
    ids = posted_paper_ids(slack, CHANNEL)
    assert Counter(ids) == Counter(p.id for p in first + late)
    assert len(digests(slack)) == 2


def test_paper_committed_after_a_plan_but_stamped_before_it_goes_in_the_next_digest(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    """Found by the soak (seed 437024796): a worker stamps ``first_seen`` when its fetch starts and
    commits later; meanwhile another worker plans a digest whose window ends after that stamp. A
    time window then lost the paper for good; a commit-ordered one puts it in the next digest."""
    first, slow = news(3), news(2, start=60)
    serve_announcement(sources, first)
    core = make_core(store, slack, sources)
    today = datetime.now(UTC)
    fetch_started = today - timedelta(seconds=5)  # the other worker took its stamp before this plan
    run_due_digests(core, now=today)
    store.upsert_papers(slow, now=fetch_started)  # ... and commits after it
    core.index.refresh(store)
    core._fetched = None
    tomorrow = today + timedelta(days=1)
    core.clock = lambda: tomorrow
    run_due_digests(core, now=tomorrow)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in first + slow)
    day_two = digests(slack)[-1]
    assert "2 match" in day_two["text"]  # and only the new ones count as new: yesterday's are not again


def test_an_imported_archive_never_floods_the_next_digest(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    """Imports keep their listing day as ``first_seen``: though committed after the last plan, a
    recent paper listed days before that plan's window is archive, not news."""
    serve_announcement(sources, news(2))
    core = make_core(store, slack, sources)
    today = datetime.now(UTC)
    run_due_digests(core, now=today)
    listed = today - timedelta(days=3)
    old = [replace(p, first_seen=listed, announced=listed.date()) for p in news(4, start=80)]
    store.upsert_papers(old, now=today + timedelta(hours=1))
    core.index.refresh(store)
    core._fetched = None
    tomorrow = today + timedelta(days=1)
    core.clock = lambda: tomorrow
    run_due_digests(core, now=tomorrow)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(2))
    assert len(digests(slack)) == 2


def test_two_workers_racing_post_one_digest(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    serve_announcement(sources, news(6))
    cores = [make_core(store, slack, sources, owner=f"w{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[jobs.DigestOutcome]] = []

    def go(core: Core) -> None:
        barrier.wait()
        results.append(run_due_digests(core))

    threads = [threading.Thread(target=go, args=(c,)) for c in cores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(digests(slack)) == 1
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(6))


def test_two_days_of_one_channel_planned_at_once_post_each_paper_once(
    store: Store, slack: FakeSlack, sources: FakeSources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker b plans today's digest while worker a plans the channel's late digest of yesterday:
    both see the same new papers. The one that plans second must plan again, not fail."""
    serve_announcement(sources, news(6))
    a, b = (make_core(store, slack, sources, owner=o) for o in ("a", "b"))
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    assert dg.claim(store.engine, CHANNEL, yesterday, "a", now, a.lease)  # left open yesterday
    real = jobs.find_matches
    interleaved: list[jobs.DigestOutcome] = []

    def find_matches(core: Core, ch: ChannelConfig, papers: list) -> list:
        if core is b and not interleaved:  # b has read its candidates; a plans and posts meanwhile
            interleaved.append(jobs.run_digest(a, ch, yesterday))
        return real(core, ch, papers)

    monkeypatch.setattr(jobs, "find_matches", find_matches)
    today = jobs.run_digest(b, channel(), now.date())
    assert [o.state for o in interleaved] == [dg.POSTED]
    assert today.state == dg.POSTED
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(6))
    assert len(digests(slack)) == 2


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/Los_Angeles"])
def test_dst_keeps_wall_clock_time_with_no_double_or_missing_morning(tz: str) -> None:
    ch = ChannelConfig(channel=CHANNEL, time=time(8, 30), timezone=tz)
    start = datetime(2026, 3, 1, tzinfo=UTC) if tz == "America/Los_Angeles" else datetime(2026, 3, 23, tzinfo=UTC)
    fires = next_fire_times(ch, start, 15)
    local = [f.astimezone(ch.tz) for f in fires]
    assert all((t.hour, t.minute) == (8, 30) for t in local)
    days = [t.date() for t in local]
    assert len(set(days)) == len(days)  # no double morning
    assert all(d.weekday() < 5 for d in days)
    assert (days[-1] - days[0]).days < 21  # no missing week
    offsets = {t.utcoffset() for t in local}
    assert len(offsets) == 2  # the range really crosses the switch
    # The DB-side due check agrees with the trigger on both sides of the switch.
    for fire in fires:
        assert due_day(ch, fire) == fire.astimezone(ch.tz).date()
        assert due_day(ch, fire - timedelta(minutes=1)) is None
