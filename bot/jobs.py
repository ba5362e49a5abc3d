"""Use-cases that compose the stages: refresh the archive, and run each channel's morning digest exactly once.

The scheduler only wakes these up; the database decides. ``run_due_digests(now)`` is idempotent and
is called by the cron trigger, by a periodic sweep, and at start-up. A digest run follows
claim -> plan (outbox) -> post -> record, so a crash at any point resumes without a duplicate.
``crash_point(...)`` calls name those points for the fault-injection tests (``bot/faults.py``; inert
unless a test sets ``PAPERBOY_CRASH_AT`` or installs a hook).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import digest as render
from bot.errors import AuthError, DeliveryError, PlanConflict
from bot.faults import crash_point
from bot.matching import match_papers
from bot.models import FetchResult, Match, Paper, SourceState
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import fetch_announcements
from bot.store import Store
from bot.store import digests as dg
from bot.window import candidates, next_window

log = logging.getLogger(__name__)

EVENT_TYPE = "paperboy_digest"
LEASE = timedelta(minutes=2)
FETCH_CACHE = timedelta(minutes=10)
RETRY_EVERY = timedelta(minutes=10)
ARXIV_TZ = ZoneInfo("America/New_York")

Fetcher = Callable[[date], list[FetchResult]]


@dataclass
class Core:
    """The bot's services, as built by the composition root (``bot/__main__.py``)."""

    settings: Settings
    store: Store
    index: SearchIndex
    delivery: object | None = None  # bot.delivery.SlackDelivery; typed loosely so the CLI needs no Slack
    owner: str = "worker"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    fetcher: Fetcher | None = None
    lease: timedelta = LEASE  # how long a dead worker's claim blocks others
    stopping: threading.Event = field(default_factory=threading.Event)
    # One digest at a time per process: the cron wake-up, the sweep and `/papers digest` share an owner.
    digest_lock: Any = field(default_factory=threading.RLock)
    _fetched: tuple[datetime, list[FetchResult]] | None = None
    _fetch_lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, today: date) -> list[FetchResult]:
        if self.fetcher is not None:
            return self.fetcher(today)
        s = self.settings
        return fetch_announcements(
            categories=s.categories,
            cross_lists=s.cross_lists,
            replacements=s.replacements,
            huggingface=s.huggingface,
            today=today,
            rss_url=s.arxiv_rss_url,
            hf_url=s.hf_api_url,
        )


@dataclass(frozen=True)
class DigestOutcome:
    channel: str
    day: date
    state: str  # a digests state, or "busy" (another worker holds it) / "done" (already finished)
    posted: int = 0
    note: str | None = None


def refresh(core: Core, *, force: bool = False) -> list[FetchResult]:
    """Fetch every source, store what came back, and update the search index (cached for a few minutes)."""
    with core._fetch_lock:
        now = core.clock()
        if not force and core._fetched and now - core._fetched[0] < FETCH_CACHE:
            return core._fetched[1]
        results = core.fetch(now.date())
        for result in results:
            if result.papers:
                counts = core.store.upsert_papers(result.papers, now=now)
                log.info("%s: %s (%s)", result.source, result.state, counts)
            elif result.state is SourceState.FAILED:
                log.warning("%s: fetch failed: %s", result.source, result.error)
        core.index.refresh(core.store)
        core._fetched = (now, results)
        return results


def due_day(ch: ChannelConfig, now: datetime) -> date | None:
    """The channel's local date when its digest is due at ``now`` (slot passed today), else None."""
    local = now.astimezone(ch.tz)
    if local.weekday() not in ch.weekday_numbers or local.time() < ch.time:
        return None
    return local.date()


def run_due_digests(core: Core, now: datetime | None = None) -> list[DigestOutcome]:
    """Run every channel's digest that is due and not finished. Safe to call any number of times."""
    now = now or core.clock()
    outcomes = []
    configured = {ch.channel: ch for ch in core.settings.channels}
    # A run left open on an earlier day (crash, outage, a source retry past midnight) is finished late,
    # planned or not: otherwise it stays open forever and that day never gets its digest.
    for run in dg.open_runs(core.store.engine):
        ch = configured.get(run.channel)
        if ch and run.day < now.astimezone(ch.tz).date() and not core.stopping.is_set():
            try:
                outcomes.append(run_digest(core, ch, run.day))
            except Exception:  # one broken run must not block every other channel's digest
                log.exception("digest for %s on %s failed unexpectedly", ch.channel, run.day)
    for ch in configured.values():
        if core.stopping.is_set():
            break
        day = due_day(ch, now)
        if day is None:
            continue
        existing = dg.get_run(core.store.engine, ch.channel, day)
        if existing and existing.finished:
            continue
        try:
            outcomes.append(run_digest(core, ch, day))
        except Exception:
            log.exception("digest for %s on %s failed unexpectedly", ch.channel, day)
    return outcomes


def channel_keywords(core: Core, ch: ChannelConfig) -> tuple[list[str], list[str]]:
    keywords, excludes = core.store.effective_keywords(ch.channel, list(ch.keywords), list(ch.exclude))
    return [k.keyword for k in keywords], [k.keyword for k in excludes]


def find_matches(core: Core, ch: ChannelConfig, papers: Sequence[Paper]) -> list[Match]:
    keywords, excludes = channel_keywords(core, ch)
    return match_papers(papers, keywords, excludes, core.index.stats())


def _arxiv_not_out_yet(results: Sequence[FetchResult], now: datetime) -> bool:
    """arXiv answered, but with an announcement older than today's expected one (before ~00:00 ET)."""
    arxiv = next((r for r in results if r.source == "arxiv"), None)
    if arxiv is None or arxiv.state is not SourceState.OK or arxiv.announced is None:
        return False
    expected = now.astimezone(ARXIV_TZ).date()
    return expected.weekday() < 5 and arxiv.announced < expected


def _stale_as_failed(results: Sequence[FetchResult]) -> list[FetchResult]:
    """A feed still showing an older announcement on a weekday is a failed fetch, never "no new papers"
    (reliability.md F-SRC3, for the RSS path: the digest never calls the API)."""
    return [
        replace(
            r,
            state=SourceState.FAILED,
            error=f"the feed still shows {r.announced}; today's announcement is not out yet",
        )
        if r.source == "arxiv"
        else r
        for r in results
    ]


def run_digest(core: Core, ch: ChannelConfig, day: date, *, force: bool = False) -> DigestOutcome:
    """Claim, plan and post one channel's digest for ``day``; resumes a half-done run."""
    with core.digest_lock:
        return _run_digest(core, ch, day, force=force)


def _run_digest(core: Core, ch: ChannelConfig, day: date, *, force: bool) -> DigestOutcome:
    engine, now = core.store.engine, core.clock()
    run = dg.claim(engine, ch.channel, day, core.owner, now, core.lease)
    if run is None:
        existing = dg.get_run(engine, ch.channel, day)
        return DigestOutcome(ch.channel, day, "done" if existing and existing.finished else "busy")
    crash_point("after_claim")
    if not run.planned:
        results = refresh(core)
        slot = datetime.combine(day, ch.time, tzinfo=ch.tz)
        retry_until = slot + timedelta(minutes=core.settings.fetch_retry_minutes)
        failed = [r for r in results if r.state is SourceState.FAILED]
        waiting = any(r.source == "arxiv" for r in failed) or _arxiv_not_out_yet(results, now)
        if waiting and not force and now < retry_until:
            note = "; ".join(f"{r.source}: {r.error}" for r in failed) or "arXiv announcement not out yet"
            dg.release(engine, run.id, core.owner, retry_at=now + RETRY_EVERY, note=note)
            log.info("digest %s %s: waiting (%s)", ch.channel, day, note)
            return DigestOutcome(ch.channel, day, dg.WAITING, note=note)
        if _arxiv_not_out_yet(results, now):  # still stale after the retry window (or forced)
            results = _stale_as_failed(results)
        if not _plan_again_on_conflict(core, ch, run, results):
            return DigestOutcome(ch.channel, day, "busy")
        crash_point("after_plan")  # the outbox is written, nothing is posted yet
    return _post(core, ch, run.id, day)


def _plan_again_on_conflict(core: Core, ch: ChannelConfig, run: dg.DigestRun, results: Sequence[FetchResult]) -> bool:
    """Plan; when another run of the channel planned some of the same papers meanwhile (another worker
    on another day's digest), plan again: the new window starts after that run's."""
    for attempt in range(1, 4):
        try:
            return _plan(core, ch, run, results, core.clock())
        except PlanConflict as exc:
            log.info("digest %s %s: planning again (attempt %d): %s", ch.channel, run.day, attempt + 1, exc)
    return _plan(core, ch, run, results, core.clock())


def _plan(core: Core, ch: ChannelConfig, run: dg.DigestRun, results: Sequence[FetchResult], now: datetime) -> bool:
    engine = core.store.engine
    window = next_window(core.store, ch.channel, now)
    papers = candidates(core.store, ch.channel, run.day, window)
    matches = find_matches(core, ch, papers)
    wanted = set(core.settings.categories)
    new_counts = Counter(c for p in papers for c in p.categories[:1] if c in wanted)
    plan = render.render_digest(
        day=run.day,
        channel=ch.channel,
        matches=matches,
        new_counts=dict(new_counts),
        results=results,
        max_papers=ch.max_papers,
        total_new=len(papers),
    )
    messages = [plan.parent, *plan.thread]
    final = _final_state(results, len(matches))
    return dg.plan(
        engine,
        run,
        core.owner,
        messages,
        window_start=window.start,
        window_end=window.end,
        seq_end=window.seq_end,
        final_state=final,
    )


def _final_state(results: Sequence[FetchResult], matched: int) -> str:
    states = {r.source: r.state for r in results}
    if states.get("arxiv") is SourceState.FAILED:
        return dg.SOURCE_FAILED
    if states.get("arxiv") is SourceState.NO_ANNOUNCEMENT and matched == 0:
        return dg.NO_ANNOUNCEMENT
    return dg.POSTED


def _post(core: Core, ch: ChannelConfig, run_id: int, day: date) -> DigestOutcome:
    from bot.delivery import SlackDelivery  # the CLI's preview path never needs slack_sdk

    delivery = core.delivery
    assert isinstance(delivery, SlackDelivery), "posting needs a Slack delivery"
    engine = core.store.engine
    parent_ts: str | None = None
    posted = 0
    planned = dg.planned_messages(engine, run_id)
    for pm in planned:
        if pm.state == "posted":
            parent_ts = pm.ts if pm.chunk == 0 else parent_ts
            continue
        if pm.chunk >= 2:
            crash_point("mid_thread")  # the parent and at least one thread chunk are in Slack
        if core.stopping.is_set():
            dg.release(engine, run_id, core.owner, retry_at=core.clock(), note="stopped by SIGTERM")
            return DigestOutcome(ch.channel, day, dg.WAITING, posted, "stopped")
        if not dg.renew(engine, run_id, core.owner, core.clock(), core.lease):
            return DigestOutcome(ch.channel, day, "busy", posted, "lease lost")
        meta = {"run_id": run_id, "chunk": pm.chunk, "channel": ch.channel, "day": day.isoformat()}
        try:  # a failed reconciliation read is handled like a failed post: release and retry later
            with _lease_kept(core, run_id):
                ts = _reconcile(delivery, ch.channel, run_id, pm.chunk, parent_ts, day) if pm.attempts else None
                if ts is None:
                    dg.begin_attempt(engine, run_id, pm.chunk)
                    ts = delivery.post(
                        ch.channel,
                        pm.message,
                        thread_ts=parent_ts if pm.chunk else None,
                        metadata={"event_type": EVENT_TYPE, "event_payload": meta},
                    )
                    crash_point("after_post")  # Slack has the message, the database does not know yet
                    posted += len(pm.message.paper_ids)
        except DeliveryError as exc:
            return _delivery_failed(core, ch, run_id, day, exc, posted)
        dg.mark_posted(engine, run_id, pm.chunk, ts, core.clock())
        parent_ts = ts if pm.chunk == 0 else parent_ts
    state = planned[0].final_state if planned else dg.POSTED
    dg.finish(engine, run_id, core.owner, state, core.clock())
    log.info("digest %s %s: %s (%d papers posted this run)", ch.channel, day, state, posted)
    return DigestOutcome(ch.channel, day, state, posted)


@contextmanager
def _lease_kept(core: Core, run_id: int) -> Iterator[None]:
    """Renew the lease in the background while one Slack call blocks.

    A post may wait out several 429s (up to 3 x 120 s in ``SlackDelivery``), longer than the lease;
    without this, another worker would take the run over meanwhile and post the same message again.
    A killed process stops renewing, so crash recovery still waits one lease at most.
    """
    done = threading.Event()
    every = max(core.lease.total_seconds() / 3, 0.05)

    def beat() -> None:
        while not done.wait(every):
            if not dg.renew(core.store.engine, run_id, core.owner, core.clock(), core.lease):
                return

    thread = threading.Thread(target=beat, name=f"lease-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _reconcile(delivery: object, channel: str, run_id: int, chunk: int, parent_ts: str | None, day: date) -> str | None:
    """After an ambiguous post, look for the message in Slack by its metadata; its ts if it is there."""
    from bot.delivery import SlackDelivery

    assert isinstance(delivery, SlackDelivery)
    if chunk == 0:
        oldest = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC).timestamp()
        found = delivery.find_posted(channel, oldest=oldest, event_type=EVENT_TYPE)
    else:
        found = delivery.find_replies(channel, parent_ts or "", EVENT_TYPE) if parent_ts else []
    for item in found:
        payload = item.get("event_payload") or {}
        if payload.get("run_id") == run_id and payload.get("chunk") == chunk:
            return str(item["ts"])
    return None


def _delivery_failed(
    core: Core, ch: ChannelConfig, run_id: int, day: date, exc: DeliveryError, posted: int
) -> DigestOutcome:
    engine, now = core.store.engine, core.clock()
    if isinstance(exc, AuthError):  # the token is bad, not the channel: a worker with a good token resumes it
        log.error("digest %s %s: Slack rejected the bot token (%s); left to resume: %s", ch.channel, day, exc.code, exc)
        dg.release(engine, run_id, core.owner, retry_at=now, note=exc.code)
        return DigestOutcome(ch.channel, day, dg.WAITING, posted, exc.code)
    if exc.permanent:
        log.error("digest %s %s: Slack refused the post (%s); not retrying: %s", ch.channel, day, exc.code, exc)
        dg.finish(engine, run_id, core.owner, dg.SLACK_FAILED, now, note=exc.code)
        return DigestOutcome(ch.channel, day, dg.SLACK_FAILED, posted, exc.code)
    log.warning("digest %s %s: post failed (%s), will retry: %s", ch.channel, day, exc.code, exc)
    retry_at = now + timedelta(seconds=30 if exc.ambiguous else 60)
    dg.release(engine, run_id, core.owner, retry_at=retry_at, note=exc.code)
    return DigestOutcome(ch.channel, day, dg.WAITING, posted, exc.code)
