"""Seeded random soak of the morning digest: crashes and Slack faults, then every invariant checked.

Each iteration draws, from its own seeded RNG, one or two fresh channels (keywords, ``max_papers``),
one or two announcement days of fresh papers (some on Hugging Face too, some announced late, some
with hostile titles), a sequence of fake-Slack faults on posts and on the reconciliation reads (429
with ``Retry-After`` 0 or 1, HTTP 500, connection reset, accepted-but-response-lost), sometimes a
failed arXiv fetch, and crashes at named crash points (``bot.faults``; here an in-process hook
abandons the run by raising ``SimulatedCrash``). After a crash a new ``Core`` with another owner
takes over once the dead worker's lease has expired, sometimes only the next day. A "stall" instead
freezes the worker at the point past its lease while another one takes over, then lets it carry on
as a zombie. Some wake-ups run a second worker at the same moment, in a thread (no stalls during
those; see ``_wake``). Every fifth iteration forces one (point, crash|stall) pair so each happens in a short
run. Time is simulated (jobs, delivery waits and Slack timestamps share one clock): waits cost nothing.

After each iteration ``tests.invariants.check_invariants`` must find nothing, and every stored paper
that matched a channel must be in it exactly once. Every failure names ``seed=…``; replay with
``PAPERBOY_SOAK_SEED=<seed>`` (same ``PAPERBOY_SOAK_RUNS`` or more). Knobs:

* ``PAPERBOY_SOAK_RUNS`` iterations on SQLite (default 200), ``PAPERBOY_SOAK_PG_RUNS`` on PostgreSQL
  (default 40); the long run: ``PAPERBOY_SOAK_RUNS=5000 PAPERBOY_SOAK_PG_RUNS=1000 pytest tests/test_soak.py``.
* ``PAPERBOY_SOAK_SEED`` (default: a fresh random seed, shown in every failure).
* ``PAPERBOY_SOAK_PARALLEL`` (default 0.25): the chance that a wake-up runs a second worker in a
  thread at the same time (real concurrency, so a failure may not replay exactly from its seed).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot import faults
from bot.delivery import SlackDelivery
from bot.faults import SimulatedCrash
from bot.jobs import LEASE, Core, run_due_digests
from bot.models import FetchResult, Message, Paper
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import HttpClient, fetch_announcements
from bot.store import Store
from bot.store import digests as dg
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources, Reply, fast_client, render_hf_daily, render_rss_feed
from tests.invariants import check_invariants, markup_problems

pytestmark = pytest.mark.slow

SOAK_RUNS = int(os.environ.get("PAPERBOY_SOAK_RUNS", "200"))
SOAK_PG_RUNS = int(os.environ.get("PAPERBOY_SOAK_PG_RUNS", "40"))
SOAK_SEED = int(os.environ.get("PAPERBOY_SOAK_SEED") or random.SystemRandom().randrange(10**9))
# The chance that a wake-up also runs a second worker at the same time, in a thread. Real
# concurrency: a failure it finds may not replay exactly from its seed (then set it to 0 to check).
SOAK_PARALLEL = float(os.environ.get("PAPERBOY_SOAK_PARALLEL", "0.25"))
TOPICS = ("graph neural network", "protein folding", "speech recognition", "reinforcement learning")
HOSTILE = " <!channel> <@U0BOSS> <https://evil.example|arxiv.org> & <b>|"
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FIRST_DAY = date(2026, 1, 5)
MAX_STEPS = 80  # wake-ups per day before an iteration counts as stuck
FORCED = [(point, action) for point in faults.POINTS for action in ("crash", "stall")]
FORCE_EVERY = 5


class SimClock:
    """One simulated clock for the jobs (``datetime``), delivery waits and Slack timestamps (floats)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def jump(self, to: datetime) -> None:
        self.now = max(self.now, to)


@dataclass
class Harness:
    """What every iteration shares: the fakes, the database, the search index and the clock."""

    slack: FakeSlack
    sources: FakeSources
    store: Store
    clock: SimClock
    index: SearchIndex = field(default_factory=SearchIndex)
    http: HttpClient = field(default_factory=fast_client)  # one client: building one costs an SSL context
    workers: int = 0
    stats: Counter[str] = field(default_factory=Counter)

    def new_core(self, settings: Settings) -> Core:
        """A freshly started worker: new owner, empty caches (what a restarted process has)."""
        self.workers += 1

        def fetcher(today: date) -> list[FetchResult]:
            return fetch_announcements(
                categories=settings.categories,
                today=today,
                rss_url=self.sources.rss_url,
                hf_url=self.sources.hf_url,
                client=self.http,
            )

        delivery = SlackDelivery(
            self.slack.bot_token,
            base_url=self.slack.api_url,
            min_interval=0.0,
            clock=self.clock.seconds,
            sleep=self.clock.sleep,
        )
        return Core(
            settings=settings,
            store=self.store,
            index=self.index,
            delivery=delivery,
            owner=f"worker-{self.workers}",
            clock=self.clock,
            fetcher=fetcher,
        )


class CrashPlan:
    """Act the n-th time a crash point is reached (counted over the iteration, every worker included).

    ``crash``: raise ``SimulatedCrash`` (the worker dies there). ``stall``: the worker freezes there for
    longer than its lease (a paused process: its lease heartbeat is frozen too) while ``takeover``
    runs another worker to completion; then the stalled one carries on as a zombie.
    """

    def __init__(self, actions: dict[tuple[str, int], str], takeover: Callable[[], None]) -> None:
        self.actions, self.takeover = actions, takeover
        self.hits: Counter[str] = Counter()
        self.fired: list[str] = []
        self.paused = False
        self.no_stalls = False  # while two workers run at once (see _wake)

    def __call__(self, name: str) -> None:
        if self.paused:
            return
        self.hits[name] += 1
        action = self.actions.get((name, self.hits[name]))
        if action is None or (action == "stall" and self.no_stalls):
            return
        self.fired.append(f"{action} {name}:{self.hits[name]}")
        if action == "crash":
            raise SimulatedCrash(name)
        self.paused = True  # the worker taking over does not crash
        try:
            self.takeover()
        finally:
            self.paused = False


def _papers(it: int, day: date, rng: random.Random, start: int, n: int) -> dict[str, tuple[Paper, str]]:
    out = {}
    for k in range(start, start + n):
        pid = f"{1000 + it // 100:04d}.{(it % 100) * 1000 + k:05d}"
        topic = rng.choice(TOPICS)
        title = f"A study {k} of {topic} methods" + (HOSTILE if rng.random() < 0.1 else "")
        paper = Paper(
            id=pid,
            title=title,
            abstract=f"We propose a new {topic} approach number {k} and evaluate it on benchmarks.",
            authors=(f"Author {k}",),
            categories=("cs.LG",),
            version=1,
            announced=day,
            announce_type="new",
            sources=("arxiv",),
        )
        out[pid] = (paper, topic)
    return out


_POST_FAULTS = (
    Fault.ratelimited(retry_after=0),
    Fault.ratelimited(retry_after=1),
    Fault.http(500),
    Fault.reset(),
    Fault.lost(),
)
_READ_FAULTS = (Fault.ratelimited(retry_after=0), Fault.ratelimited(retry_after=1), Fault.http(500), Fault.reset())


def _queue_faults(slack: FakeSlack, rng: random.Random, story: list[str]) -> None:
    """A random sequence of faults for the next posts and reconciliation reads (no fault = zero delay)."""
    rate = rng.choice([0.0, 0.15, 0.3, 0.5])
    for method, kinds, n in (
        ("chat.postMessage", _POST_FAULTS, 12),
        ("conversations.history", _READ_FAULTS, 4),
        ("conversations.replies", _READ_FAULTS, 4),
    ):
        for k in range(n):
            fault = rng.choice(kinds) if rng.random() < rate else Fault.delay(0)
            slack.add_fault(method, fault)
            if fault.kind != "delay":
                story.append(f"{method}#{k + 1}:{fault.kind}{'' if fault.retry_after is None else fault.retry_after}")


def _wake(h: Harness, core: Core, settings: Settings, rng: random.Random, plan: CrashPlan | None) -> None:
    """One wake-up of the day's worker; sometimes (``SOAK_PARALLEL``, and ``plan`` given) another worker
    wakes up alongside, in a thread.

    No stalls then: a stall moves the one simulated clock past the lease while the other worker may
    be in the middle of a post, whose lease heartbeat runs on real time. That models a pause of the
    posting worker between its lease check and its request, which leases cannot guard against (see
    the README's exactly-once notes); crashes still happen.
    """
    if plan is None or not SOAK_PARALLEL or rng.random() >= SOAK_PARALLEL:
        run_due_digests(core)
        return
    other = h.new_core(settings)
    h.stats["parallel wake-ups"] += 1
    plan.no_stalls = True

    def run_other() -> None:
        with contextlib.suppress(SimulatedCrash):  # that worker dies; the day's worker carries on
            run_due_digests(other)

    thread = threading.Thread(target=run_other, name="other-worker")
    thread.start()
    try:
        run_due_digests(core)
    finally:
        thread.join()
        plan.no_stalls = False


def _open_runs(store: Store, channels: list[str]) -> list[dg.DigestRun]:
    return [r for r in dg.open_runs(store.engine) if r.channel in channels]


def run_iteration(h: Harness, seed: int, it: int) -> tuple[list[str], str, int]:
    """One soak iteration; returns (violations, a description to replay it by, digest runs done)."""
    rng = random.Random(f"{seed}:{it}")
    # Every FORCE_EVERY-th iteration forces one (point, action) on a big first day, so each happens.
    forced = FORCED[(it // FORCE_EVERY) % len(FORCED)] if it % FORCE_EVERY == 0 else None
    channels = [
        ChannelConfig(
            channel=f"C{it:07d}{c}",
            time=time(14, rng.choice([0, 15, 30])),
            days=ALL_DAYS,
            timezone="UTC",
            keywords=tuple(rng.sample(TOPICS, rng.choice([1, 1, 2]))),
            max_papers=rng.choice([1, 3, 5, 10]),
        )
        for c in range(rng.choice([1, 1, 2]))
    ]
    if forced:  # 90 matches, one in the parent: several thread chunks, so mid_thread is reached
        channels[0] = replace(channels[0], keywords=TOPICS, max_papers=1)
    ids = [ch.channel for ch in channels]
    for cid in ids:
        h.slack.add_channel(cid)
    settings = Settings(categories=("cs.LG",), channels=tuple(channels), fetch_retry_minutes=60)
    days = [FIRST_DAY + timedelta(days=3 * it + d) for d in range(rng.choice([1, 2]))]
    crashes = {
        (rng.choice(faults.POINTS), rng.randint(1, 4)): rng.choice(["crash", "crash", "stall"])
        for _ in range(rng.choice([0, 1, 1, 2, 3]))
    }
    if forced:  # this action alone, so nothing else can keep it from happening
        crashes = {(forced[0], 1): forced[1]}

    def takeover() -> None:
        h.clock.sleep(LEASE.total_seconds() + rng.choice([1, 30]))
        run_due_digests(h.new_core(settings))

    plan = CrashPlan(crashes, takeover)
    story: list[str] = [f"channels={[(c.channel, c.keywords, c.max_papers) for c in channels]}", f"crashes={crashes}"]
    topic: dict[str, str] = {}
    late: dict[str, tuple[Paper, str]] = {}
    skipped: set[date] = set()
    served: dict[date, set[str]] = {}
    stuck: list[str] = []
    faults.set_hook(plan)
    try:
        for n_day, day in enumerate(days):
            count = 90 if forced and n_day == 0 else rng.choice([0, 3, 8, 20, 40, 90])
            papers = _papers(it, day, rng, 400 * n_day, count)
            papers |= late  # announced yesterday, first listed today
            late = _papers(it, day, rng, 400 * n_day + 300, rng.choice([0, 0, 2])) if n_day + 1 < len(days) else {}
            on_hf = [p for p, _ in papers.values() if rng.random() < 0.3]
            hf_only = _papers(it, day, rng, 400 * n_day + 200, rng.choice([0, 0, 2]))
            topic |= {pid: t for pid, (_, t) in (papers | hf_only | late).items()}
            h.sources.rss["cs.LG"] = render_rss_feed([p for p, _ in papers.values()], announced=day, cats="cs.LG")
            hf = on_hf + [p for p, _ in hf_only.values()]
            served[day] = set(papers) | set(hf_only)
            h.sources.hf_days[day.isoformat()] = render_hf_daily(hf, day=day)
            if rng.random() < 0.15:
                h.sources.queue("rss", Reply.html(200))  # arXiv fails once: the digest waits and retries
                story.append(f"{day}: arXiv fails once")
            _queue_faults(h.slack, rng, story)
            h.clock.jump(datetime.combine(day, time(14, 30), UTC) + timedelta(seconds=rng.randint(0, 600)))
            core = h.new_core(settings)  # the worker of the day (yesterday's may have crashed)
            for _ in range(MAX_STEPS):
                try:
                    _wake(h, core, settings, rng, None if forced else plan)
                except SimulatedCrash:
                    core = h.new_core(settings)
                    if n_day + 1 < len(days) and rng.random() < 0.3:
                        story.append(f"{day}: {plan.fired[-1]}, down until the next day")
                        skipped.add(day)  # a channel not claimed before the crash folds into tomorrow
                        break
                open_runs = _open_runs(h.store, ids)
                if not open_runs and all(dg.get_run(h.store.engine, c, day) for c in ids):
                    break
                wake = min((r.lease_until for r in open_runs if r.lease_until), default=None)
                h.clock.sleep(rng.choice([1, 20, 70]))
                if wake and rng.random() < 0.7:
                    h.clock.jump(wake + timedelta(seconds=1))  # the next sweep after the lease/retry time
            else:
                stuck.append(f"{day}: digests still open after {MAX_STEPS} wake-ups: {_open_runs(h.store, ids)}")
            h.slack.clear_faults()
        leftover = run_due_digests(core)
    finally:
        faults.set_hook(None)
        h.slack.clear_faults()
        h.sources._queues["rss"].clear()  # an unused arXiv failure must not leak into the next iteration
    story.append(f"fired={plan.fired}")
    h.stats.update(name.split(":")[0] for name in plan.fired)
    h.stats["rollover"] += len(skipped)
    stored = set(h.store.get_papers(list(topic)))
    matching = {c.channel: {pid for pid in stored if topic[pid] in c.keywords} for c in channels}
    problems = check_invariants(h.slack, h.store, channels, matching, days={c: set(days) - skipped for c in ids})
    if leftover:
        problems.append(f"a wake-up after the last day still ran digests: {leftover}")
    problems += stuck
    for day, ids_served in served.items():
        if day not in skipped and ids_served - stored:
            problems.append(f"{day}: papers served but never stored: {sorted(ids_served - stored)}")
    h.stats["papers posted"] += sum(len(m) for m in matching.values())
    return problems, "; ".join(story), len(ids) * len(days)


@pytest.fixture
def slack_and_sources(fixtures_dir: Path) -> Iterator[tuple[FakeSlack, FakeSources, SimClock]]:
    clock = SimClock(datetime.combine(FIRST_DAY, time(0), UTC))
    with FakeSlack(clock=clock.seconds) as slack, FakeSources(fixtures_dir) as sources:
        sources.hf_days.clear()  # only the papers an iteration serves (the fixture's day is in range)
        yield slack, sources, clock


def _soak(url: str, fakes: tuple[FakeSlack, FakeSources, SimClock], runs: int) -> None:
    slack, sources, clock = fakes
    store = Store.open(url)
    store.migrate()
    h = Harness(slack, sources, store, clock)
    try:
        for it in range(runs):
            problems, story, n = run_iteration(h, SOAK_SEED, it)
            h.stats["digest runs"] += n
            assert not problems, (
                f"seed={SOAK_SEED} iteration={it} (replay: PAPERBOY_SOAK_SEED={SOAK_SEED}):\n  "
                + "\n  ".join(problems)
                + f"\nscenario: {story}"
            )
    finally:
        store.close()
    h.stats.update(f"slack {c.method} {c.fault}" for c in slack.calls() if c.fault and c.fault != "delay")
    print(f"soak seed={SOAK_SEED}: {runs} iterations, " + ", ".join(f"{k}: {v}" for k, v in sorted(h.stats.items())))
    assert h.stats["digest runs"] >= runs
    if runs >= FORCE_EVERY * len(FORCED):  # not vacuous: every crash point was crashed at and stalled at
        for point, action in FORCED:
            assert h.stats[f"{action} {point}"] > 0, f"seed={SOAK_SEED}: no {action} at {point} in {runs} runs"
    if runs >= 100 and SOAK_PARALLEL > 0:  # two workers really did run at once
        assert h.stats["parallel wake-ups"] > 0, f"seed={SOAK_SEED}: no parallel wake-up in {runs} runs"
    if runs >= 100:  # and every kind of Slack fault happened
        for kind in ("ratelimited", "http", "reset", "lost"):
            assert h.stats[f"slack chat.postMessage {kind}"] > 0, f"seed={SOAK_SEED}: no {kind} fault"


@pytest.mark.timeout(120 + SOAK_RUNS)  # about 0.1 s an iteration: a long run must not hit the 300 s default
def test_soak_sqlite(tmp_path: Path, slack_and_sources: tuple[FakeSlack, FakeSources, SimClock]) -> None:
    _soak(f"sqlite:///{tmp_path / 'soak.db'}", slack_and_sources, SOAK_RUNS)


@pytest.mark.postgres
@pytest.mark.timeout(120 + SOAK_PG_RUNS)
def test_soak_postgresql(pg_url: str, slack_and_sources: tuple[FakeSlack, FakeSources, SimClock]) -> None:
    _soak(pg_url, slack_and_sources, SOAK_PG_RUNS)


# ---- the checker itself: it must see each kind of violation ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "requesters", "bad"),
    [
        ("*1. <https://arxiv.org/abs/2611.00001|A &lt;b&gt; title>*", (), False),
        ("<https://huggingface.co/papers/2611.00001|🤗 3 upvotes> · <https://github.com/o/r|o/r>", (), False),
        ("<@U0ALICE> searched for “x”", ("U0ALICE",), False),
        ("<@U0ALICE> searched for “x”", (), True),
        ("graph <!channel> networks", (), True),
        ("<https://evil.example|arxiv.org>", (), True),
        ("<https://arxiv.org/abs/2611.00001|ok> but a stray > here", (), True),
        ("<https://arxiv.org/abs/not-an-id|x>", (), True),
    ],
)
def test_markup_check_accepts_only_our_link_forms(text: str, requesters: tuple[str, ...], bad: bool) -> None:
    message = {"text": "", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    assert bool(markup_problems(message, requesters)) == bad


def test_checker_reports_duplicates_unfinished_runs_and_missing_matches(tmp_path: Path, fixtures_dir: Path) -> None:
    with FakeSlack() as slack, FakeSources(fixtures_dir) as sources:
        sources.hf_days.clear()
        clock = SimClock(datetime.combine(FIRST_DAY, time(15), UTC))
        store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
        store.migrate()
        try:
            h = Harness(slack, sources, store, clock)
            ch = ChannelConfig(channel="C0CHECK", time=time(14), timezone="UTC", keywords=TOPICS)
            settings = Settings(categories=("cs.LG",), channels=(ch,))
            papers = _papers(0, FIRST_DAY, random.Random(0), 0, 6)
            ids = set(papers)
            sources.rss["cs.LG"] = render_rss_feed([p for p, _ in papers.values()], announced=FIRST_DAY, cats="cs.LG")
            core = h.new_core(settings)
            (outcome,) = run_due_digests(core)
            assert outcome.state == dg.POSTED and ids
            assert check_invariants(slack, store, [ch], {"C0CHECK": ids}, days={"C0CHECK": [FIRST_DAY]}) == []

            assert any(
                "never posted" in p for p in check_invariants(slack, store, [ch], {"C0CHECK": ids | {"9999.99999"}})
            )
            assert any(
                "no finished digest" in p
                for p in check_invariants(slack, store, [ch], days={"C0CHECK": [date(2030, 1, 1)]})
            )
            parent = slack.top_level("C0CHECK")[0]
            delivery = core.delivery
            assert isinstance(delivery, SlackDelivery)
            message = dg.planned_messages(store.engine, 1)[0].message
            delivery.post("C0CHECK", message, metadata=parent["metadata"])  # the same digest message, again
            problems = check_invariants(slack, store, [ch])
            assert any("is in Slack 2 times" in p for p in problems)
            assert any("was posted 2 times" in p for p in problems)
            assert any("2 top-level digest messages" in p for p in problems)

            # A run left claimed with its outbox pending is reported as such.
            tomorrow = FIRST_DAY + timedelta(days=1)
            run = dg.claim(store.engine, "C0CHECK", tomorrow, "dead", clock(), LEASE)
            assert run is not None
            unsent = Message("tomorrow", paper_ids=("2699.00001",))
            assert dg.plan(store.engine, run, "dead", [unsent], window_start=clock(), window_end=clock())
            problems = check_invariants(slack, store, [ch])
            assert any(f"digest of {tomorrow}" in p and "still claimed" in p for p in problems)
            assert any("outbox row" in p and "still pending" in p for p in problems)
        finally:
            store.close()
