"""Database faults at the level of the whole bot (reliability.md T-35, T-36, T-38).

* PostgreSQL backends killed (``pg_terminate_backend``) again and again while a digest posts slowly;
* a 30 s PostgreSQL outage in the middle of a digest, made with a small TCP proxy between the bot
  and the server that is stopped (every connection reset, new ones refused) and restarted on the
  same port. The real scheduler (``bot.scheduler.build_scheduler``) drives ``run_due_digests`` with a
  fast sweep; the work resumes without a restart, nothing is posted twice and the scheduler keeps
  firing (a second channel that falls due during the outage is posted after it);
* SQLite contention: 1,000 abstracts written while 10 threads refresh the index, search, read and
  write small rows: no "database is locked";
* a schema older than the code: ``python -m bot`` and the CLI exit 1 with one line naming the
  versions and ``python -m bot migrate``, which fixes it.

``PAPERBOY_DB_OUTAGE_S`` sets the outage length (default 30).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot import jobs
from bot.delivery import SlackDelivery
from bot.errors import StoreError
from bot.jobs import Core, run_due_digests
from bot.models import FetchResult, Paper
from bot.scheduler import build_scheduler
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import fetch_announcements
from bot.store import Store
from bot.store import digests as dg
from bot.store.migrations import MIGRATIONS, migrate
from tests.botproc import CHANNEL, REPO, news, posted_paper_ids
from tests.fakes.slack import FakeSlack, Fault
from tests.fakes.sources import FakeSources, fast_client, render_rss_feed

OUTAGE_S = float(os.environ.get("PAPERBOY_DB_OUTAGE_S", "30"))
OTHER = "C0DIGEST2"
DAY = date(2026, 6, 17)  # a Wednesday; the feed is dated that day
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TcpProxy:
    """A TCP relay on 127.0.0.1 to ``target``; ``stop()`` resets every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._running = threading.Event()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._running.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()
        return self

    def stop(self) -> None:
        self._running.clear()
        time.sleep(0.3)  # the accept loop closes its listener
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    self._conns += [client, upstream]
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "papers")
        fake.add_channel(OTHER, "more-papers")
        yield fake


@pytest.fixture
def sources(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as fake:
        fake.rss["cs.LG"] = render_rss_feed(news(14, day=DAY), announced=DAY, cats="cs.LG")
        yield fake


def channel(cid: str, at: dtime) -> ChannelConfig:
    return ChannelConfig(
        channel=cid, time=at, days=EVERY_DAY, timezone="UTC", keywords=("graph neural network",), max_papers=3
    )


class Clock:
    """Real time running from a fixed Wednesday morning; ``jump`` moves it forward."""

    def __init__(self, start: datetime) -> None:
        self.start, self.t0, self.offset = start, time.monotonic(), timedelta(0)

    def __call__(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=time.monotonic() - self.t0)

    def jump(self, delta: timedelta) -> None:
        self.offset += delta


def make_core(store: Store, slack: FakeSlack, sources: FakeSources, channels: tuple[ChannelConfig, ...]) -> Core:
    settings = Settings(categories=("cs.LG",), channels=channels, fetch_retry_minutes=60, huggingface=False)

    def fetcher(today: date) -> list[FetchResult]:
        return fetch_announcements(
            categories=settings.categories,
            huggingface=False,
            today=today,
            rss_url=sources.rss_url,
            client=fast_client(),
        )

    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    core = Core(settings=settings, store=store, index=SearchIndex.from_store(store), delivery=delivery, fetcher=fetcher)
    core.clock = Clock(datetime.combine(DAY, dtime(10, 0), UTC))
    return core


def digest_parents(slack: FakeSlack, cid: str) -> list[dict]:
    return [m for m in slack.top_level(cid) if (m.get("metadata") or {}).get("event_type") == jobs.EVENT_TYPE]


def wait_until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finished(engine: sa.Engine, cid: str) -> bool:
    run = dg.get_run(engine, cid, DAY)
    return run is not None and run.finished


# ------------------------------------------------------------------ 7a. killed backends


@pytest.mark.timeout(120)
def test_killed_backends_while_a_digest_posts_resume_without_duplicates(
    pg_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    app = f"pbkill_{uuid.uuid4().hex[:8]}"
    store = Store.open(f"{pg_url}&application_name={app}")
    store.migrate()
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    slack.every_nth("chat.postMessage", 1, Fault.delay(0.3))  # slow posts: the run lasts a few seconds
    core = make_core(store, slack, sources, (channel(CHANNEL, dtime(9, 0)),))
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        kill = sa.text("select pg_terminate_backend(pid) from pg_stat_activity where application_name = :app")
        while not stop.wait(0.05):
            with admin.connect() as conn:
                killed.extend(1 for ok in conn.scalars(kill, {"app": app}) if ok)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while not finished(store.engine, CHANNEL) and time.monotonic() < deadline:
            with contextlib.suppress(StoreError):  # what the sweep does: call again until the day is done
                run_due_digests(core)
            if len(slack.calls("chat.postMessage")) >= 3:
                stop.set()  # killed all through the first posts; let it finish
    finally:
        stop.set()
        thread.join(5)
    try:
        assert finished(store.engine, CHANNEL)
        assert killed, "no backend was terminated: the test did not exercise anything"
        assert len(digest_parents(slack, CHANNEL)) == 1
        assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(14, day=DAY))
    finally:
        store.close()
        admin.dispose()


def test_run_tx_rides_out_a_short_outage_and_reports_a_long_one(pg_url: str) -> None:
    target = make_url(pg_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432)).start()
    store = Store.open(target.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        store.migrate()
        proxy.stop()
        threading.Timer(1.0, proxy.start).start()  # back within run_tx's retry budget
        assert store.remember_event("during-a-blip") is True
        proxy.stop()  # down for good
        started = time.monotonic()
        with pytest.raises(StoreError, match="database error after"):
            store.count_papers()
        assert time.monotonic() - started < 30  # bounded: a StoreError, not a hang
    finally:
        proxy.stop()
        store.close()


# ------------------------------------------------------------------ 7b. a 30 s outage mid-digest


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_S + 120)
def test_database_outage_mid_digest_resumes_without_restart_and_the_scheduler_keeps_firing(
    pg_url: str, slack: FakeSlack, sources: FakeSources
) -> None:
    target = make_url(pg_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432)).start()
    store = Store.open(target.set(port=proxy.port).render_as_string(hide_password=False))
    store.migrate()
    check = Store.open(pg_url)  # the test's own view, not through the proxy
    # CHANNEL is due at start; OTHER only once the clock has jumped past 11:00 (during the outage).
    core = make_core(store, slack, sources, (channel(CHANNEL, dtime(9, 0)), channel(OTHER, dtime(11, 0))))
    slack.every_nth("chat.postMessage", 1, Fault.delay(1.0))
    wakes: list[tuple[float, str]] = []

    def wake() -> None:
        try:
            run_due_digests(core)
        except Exception:
            wakes.append((time.monotonic(), "error"))
            raise
        wakes.append((time.monotonic(), "ok"))

    scheduler = build_scheduler(core.settings, wake, sweep_seconds=0.5)
    scheduler.start()
    try:
        wait_until(lambda: slack.calls("chat.postMessage"), 30, "the first digest post")
        proxy.stop()  # the post reaches Slack; recording it in the database fails
        outage_started = time.monotonic()
        core.clock.jump(timedelta(minutes=65))  # type: ignore[attr-defined]
        time.sleep(OUTAGE_S)
        assert not finished(check.engine, CHANNEL)
        proxy.start()
        restored = time.monotonic()
        wait_until(lambda: finished(check.engine, CHANNEL), 60, "the interrupted digest to finish")
        wait_until(lambda: finished(check.engine, OTHER), 60, "the digest that fell due in the outage")
    finally:
        scheduler.shutdown(wait=False)
        proxy.stop()
    try:
        during = [kind for t, kind in wakes if outage_started < t < restored]
        after = [kind for t, kind in wakes if t > restored]
        assert during.count("error") >= 2, wakes  # the sweep kept firing through the outage
        assert "ok" in after  # ... and after it, without a restart
        assert slack.calls("conversations.history")  # the post whose record was lost was looked up, not redone
        for cid in (CHANNEL, OTHER):
            assert len(digest_parents(slack, cid)) == 1
            assert Counter(posted_paper_ids(slack, cid)) == Counter(p.id for p in news(14, day=DAY))
            assert dg.get_run(check.engine, cid, DAY).state == dg.POSTED  # type: ignore[union-attr]
    finally:
        store.close()
        check.close()


# ------------------------------------------------------------------ 8. SQLite contention


@pytest.mark.timeout(180)
def test_sqlite_digest_writes_while_ten_threads_search_never_lock(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'contention.db'}")
    store.migrate()
    seed = [_paper(i) for i in range(50)]
    store.upsert_papers(seed)
    index = SearchIndex.from_store(store)
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()
    reads = Counter[str]()

    def writer() -> None:
        try:
            for start in range(1000, 2000, 20):  # the digest's refresh stores a batch at a time
                store.upsert_papers([_paper(i) for i in range(start, start + 20)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            writing.clear()

    def reader(n: int) -> None:
        try:
            i = 0
            while writing.is_set() or i < 3:
                index.refresh(store)
                page = index.search("graph neural retrieval", limit=5)
                store.get_papers([h.paper.id for h in page.hits])
                store.count_papers()
                store.remember_event(f"reader-{n}-{i}")  # a dedupe write, as every command does
                store.save_search_session("C1", "U1", "graph", 10)
                i += 1
            reads[f"r{n}"] = i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    try:
        assert not any(t.is_alive() for t in threads)
        assert errors == [], [repr(e) for e in errors[:3]]
        assert store.count_papers() == 1050
        index.refresh(store)
        assert len(index) == 1050 and index.search("paper 1999").total >= 1
        assert len(reads) == 10
    finally:
        store.close()


@pytest.mark.timeout(120)
def test_threads_opening_a_fresh_sqlite_file_together_never_see_locked(tmp_path: Path) -> None:
    """Switching a new file to WAL fails at once with "database is locked" (no busy timeout) when
    several connections open it together; it used to break about one start-up in eight."""
    errors: list[BaseException] = []
    for round_ in range(25):
        url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        barrier = threading.Barrier(4)

        def start(url: str = url, barrier: threading.Barrier = barrier) -> None:
            s = Store.open(url)
            try:
                barrier.wait(10)
                s.migrate()
                s.count_papers()
            except BaseException as exc:
                errors.append(exc)
            finally:
                s.close()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == [], [repr(e) for e in errors[:3]]


def _paper(i: int) -> Paper:
    return Paper(
        id=f"2611.{i:05d}",
        title=f"Graph neural retrieval paper {i}",
        abstract=f"Abstract {i} about graph neural networks and dense retrieval. " * 5,
        categories=("cs.LG",),
        announced=DAY,
    )


# ------------------------------------------------------------------ 9. schema older than the code


def _run_bot(tmp: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "paperboy.yaml"
    config.write_text("sources:\n  arxiv:\n    categories: [cs.LG]\nchannels: []\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "PYTHONPATH": str(REPO),
        "PAPERBOY_CONFIG": str(config),
        "DATABASE_URL": db,
        "SLACK_BOT_TOKEN": "xoxb-not-used",
        "SLACK_APP_TOKEN": "xapp-not-used",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # never reached: the schema check comes first
    }
    cmd = [sys.executable, "-m", "bot", *args]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [(), ("search", "graph")], ids=["worker", "cli"])
def test_schema_older_than_the_code_stops_start_up_with_one_line_saying_how_to_migrate(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store.open(db)
    migrate(old.engine, MIGRATIONS[:1])  # version 1: a database deployed before the index cache table
    old.close()

    proc = _run_bot(tmp_path, db, *args)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(lines) == 1, lines
    assert f"schema is at version 1, this code needs {MIGRATIONS[-1].version}" in lines[0]
    assert "python -m bot migrate" in lines[0]

    migrated = _run_bot(tmp_path, db, "migrate")
    assert migrated.returncode == 0 and "applied migrations: 2, 3" in migrated.stdout, migrated.stderr
    after = _run_bot(tmp_path, db, "search", "graph")
    assert after.returncode == 0, after.stderr
