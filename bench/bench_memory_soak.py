"""Memory soak of the real ``python -m bot``: 100k stored abstracts, 10,000 searches through Slack and a
week of daily digests in one process, sampling its resident memory. Prints figures; asserts nothing.

Usage (from the repository root)::

    python bench/bench_memory_soak.py                                  # 100k papers, 10,000 searches, 7 days
    python bench/bench_memory_soak.py --papers 2000 --total 3000 --searches 300 --days 2   # a short run
    options: --corpus PATH  --concurrency 32  --slash-share 0.3  --new-per-day 300  --sample-every 0.5

Store: the shared corpus (or its first ``--papers`` lines) plus synthetic abstracts up to ``--total``,
imported with ``bot.importer.import_file`` into a temporary SQLite file. A synthetic abstract is made
of sentences of three random real abstracts, a title spliced from two real titles, real author names
and categories, a random corpus date, and an unused 2024 arXiv id; so the vocabulary stays real.

Process: the real composition root (``bot.__main__.main``) against FakeSlack and FakeSources. The bot
has no clock knob, so to get seven digest *days* without a restart it is started through a few-line
shim (``SHIM`` below) that gives ``bot.jobs.Core`` a clock = real time + an offset read from a file;
everything else (Socket Mode, Bolt, answer pool, scheduler sweep, delivery, store, index) is the
unmodified worker. Each simulated day starts at 12:00 UTC; the fake arXiv RSS and HF Daily Papers
serve ``--new-per-day`` new papers announced that day (three topics, one per digest channel, plus
unrelated ones), and the sweep (every 2 s) runs the three channels' digests.

Load: ``--searches`` searches, ``--slash-share`` of them ``/papers <query>`` and the rest @-mentions,
from ``--concurrency`` closed-loop senders (each in its own channel: send, wait for the threaded
answer, send the next). Queries are 2-3 consecutive content words of random real titles, with 2%
broad ones (dozens of common words). The days advance every ``searches / days`` answered searches,
so digests run while searches do. Memory: ``VmRSS`` (and ``VmHWM``, the kernel's peak) of the bot
process from ``/proc/<pid>/status``, sampled every ``--sample-every`` s and at each checkpoint.
Goals: RSS < 300 MB throughout, growth < 10% (end vs. right after the index build and day-0 digest).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_ack_load import (  # noqa: E402
    CORPUS,
    Sent,
    Watcher,
    broad_queries,
    import_corpus,
    percentile,
    read_records,
    send_mention,
    send_slash,
    title_queries,
    verdict,
)

from bot.models import Paper  # noqa: E402
from tests.botproc import BotProcess, news  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.sources import FakeSources, render_hf_daily, render_rss_feed  # noqa: E402

MB = 1024 * 1024
TOPICS = ("graph neural network", "diffusion model", "reinforcement learning")
SHIM = """
import functools, os, sys
from datetime import UTC, datetime, timedelta
import bot.__main__ as entry
from bot.jobs import Core
path = os.environ["PAPERBOY_BENCH_CLOCK_FILE"]
def clock():
    with open(path) as fh:
        return datetime.now(UTC) + timedelta(seconds=float(fh.read()))
entry.Core = functools.partial(Core, clock=clock)
sys.exit(entry.main([]))
"""


# ---- corpus --------------------------------------------------------------------------------------------


def synthetic_records(real: Sequence[dict], n: int, rng: random.Random, taken: set[str]) -> list[dict]:
    """``n`` abstracts recombined from real ones (see the module docstring), with unused arXiv ids."""
    sentences = [s for r in real[:20000] for s in re.split(r"(?<=\.)\s+", " ".join(r["abstract"].split())) if s]
    authors = [a for r in real[:5000] for a in r["authors"]]
    dates = sorted({r["date"] for r in real})
    out: list[dict] = []
    number = 0
    while len(out) < n:
        number += 1
        pid = f"24{1 + number % 12:02d}.{number // 12 + 1:05d}"
        if pid in taken:
            continue
        a, b = rng.choice(real)["title"].split(), rng.choice(real)["title"].split()
        out.append(
            {
                "id": pid,
                "title": " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :]),
                "abstract": " ".join(rng.choice(sentences) for _ in range(rng.randint(4, 9))),
                "authors": rng.sample(authors, k=min(len(authors), rng.randint(1, 6))),
                "categories": list(rng.choice(real)["categories"]),
                "date": rng.choice(dates),
            }
        )
    return out


# ---- the clocked worker and its memory ------------------------------------------------------------------


class ClockedBot(BotProcess):
    """The real worker, started through ``SHIM`` so digests see a clock we can move a day at a time."""

    def start(self) -> ClockedBot:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SHIM], cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes from ``/proc/<pid>/status``; (0, 0) once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    found = {k: int(v) * 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


class Sampler(threading.Thread):
    """Samples the bot's RSS every ``every`` seconds; ``mark(label)`` records a named checkpoint."""

    def __init__(self, pid: int, every: float, t0: float) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.every, self.t0 = pid, every, t0
        self.samples: list[tuple[float, int]] = []
        self.marks: list[tuple[float, str, int]] = []
        self.hwm = 0
        self.stop = threading.Event()

    def sample(self) -> int:
        rss, hwm = proc_memory(self.pid)
        if rss:
            self.samples.append((time.monotonic() - self.t0, rss))
            self.hwm = max(self.hwm, hwm)
        return rss

    def mark(self, label: str) -> int:
        """Sample now and record (and print) a named checkpoint."""
        rss = self.sample()
        at = time.monotonic() - self.t0
        self.marks.append((at, label, rss))
        print(f"  {at:8.1f} s  {rss / MB:7.1f} MB  {label}", flush=True)
        return rss

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


# ---- days ----------------------------------------------------------------------------------------------


class Days:
    """The simulated calendar: day ``k`` is 12:00 UTC on the start date + k; feeds and clock offset per day."""

    def __init__(self, clock_file: Path, slack: FakeSlack, sources: FakeSources, channels: Sequence[str], n: int):
        self.clock_file, self.slack, self.sources, self.channels, self.per_day = clock_file, slack, sources, channels, n
        self.first = datetime.now(UTC).date()
        self.next_id = 1

    def day(self, k: int) -> date:
        return self.first + timedelta(days=k)

    def begin(self, k: int) -> None:
        """Serve day ``k``'s announcement and move the bot's clock to 12:00 UTC that day."""
        day = self.day(k)
        per_topic = max(1, self.per_day // (len(TOPICS) + 1))
        papers: list[Paper] = []
        for topic in TOPICS:
            papers += news(per_topic, topic=topic, start=self.next_id, day=day)
            self.next_id += per_topic
        other = self.per_day - len(papers)
        papers += news(other, topic="unrelated measurement study", start=self.next_id, day=day)
        self.next_id += other
        self.sources.rss["cs.LG"] = render_rss_feed(papers, announced=day, cats="cs.LG")
        hf_only = news(10, topic=TOPICS[k % len(TOPICS)], start=60000 + self.next_id, day=day)
        self.next_id += 10
        self.sources.hf_days[day.isoformat()] = render_hf_daily(papers[:10] + hf_only, day=day)
        noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
        self.clock_file.write_text(f"{(noon - datetime.now(UTC)).total_seconds():.3f}")

    def posted(self, k: int) -> int:
        """How many digest channels have a digest parent for day ``k``."""
        iso = self.day(k).isoformat()

        def day_of(m: dict) -> str | None:
            return ((m.get("metadata") or {}).get("event_payload") or {}).get("day")

        return sum(any(day_of(m) == iso for m in self.slack.top_level(ch)) for ch in self.channels)

    def wait_posted(self, k: int, bot: BotProcess, timeout: float = 600) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while self.posted(k) < len(self.channels):
            if time.monotonic() > deadline:
                raise TimeoutError(f"day {k} digests not posted within {timeout:.0f} s")
            if bot.proc is not None and bot.proc.poll() is not None:
                raise RuntimeError(f"the bot exited ({bot.proc.returncode}):\n{bot.log[-3000:]}")
            time.sleep(0.2)
        return time.monotonic() - started


# ---- load ----------------------------------------------------------------------------------------------


class Load:
    """Closed-loop senders: ``concurrency`` channels, each sending its next search once the last one is answered."""

    def __init__(self, slack: FakeSlack, watcher: Watcher, queries: Sequence[str], args: argparse.Namespace) -> None:
        self.slack, self.watcher, self.queries, self.args = slack, watcher, queries, args
        self.lock = threading.Lock()
        self.next = 0
        self.done = 0
        self.latencies: list[float] = []
        self.failed = 0
        self.progress = threading.Condition(self.lock)
        self.rng = random.Random(args.seed + 1)

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= len(self.queries):
                return None
            self.next += 1
            return self.next - 1

    def _finish(self, latency: float | None) -> None:
        with self.progress:
            self.done += 1
            if latency is None:
                self.failed += 1
            else:
                self.latencies.append(latency)
            self.progress.notify_all()

    def sender(self, slot: int) -> None:
        channel = f"C0SOAK{slot:03d}"
        while (n := self._take()) is not None:
            with self.lock:
                slash = self.rng.random() < self.args.slash_share
            sent = Sent(n, channel, f"U0Q{n:06d}", slash=slash)
            try:
                if slash:
                    send_slash(self.slack, sent, self.queries[n])
                else:
                    send_mention(self.slack, sent, self.queries[n], user=f"U0Q{n:06d}")
            except TimeoutError:
                self._finish(None)
                continue
            got = self.watcher.wait({n: (channel, sent.who, slash)}, timeout=60)
            self._finish(got[n] - sent.at if n in got else None)

    def wait_done(self, count: int) -> None:
        with self.progress:
            self.progress.wait_for(lambda: self.done >= count)


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    real = read_records(args.corpus, args.papers)
    extra = synthetic_records(real, max(0, args.total - len(real)), rng, {r["id"] for r in real})
    queries = title_queries(real, args.searches, rng)
    broad = broad_queries(real, 5)
    queries = [broad[i % 5] if rng.random() < 0.02 else q for i, q in enumerate(queries)]
    digest_channels = [f"C0DIGEST{i}" for i in range(1, len(TOPICS) + 1)]
    with tempfile.TemporaryDirectory(prefix="paperboy-soak-") as tmpdir, FakeSlack() as slack, FakeSources() as sources:
        tmp = Path(tmpdir)
        db_url, stored, import_s = import_corpus(tmp, args.corpus, args.papers, extra)
        print(f"stored {stored} papers ({len(real)} real + {len(extra)} synthetic) in SQLite in {import_s:.1f} s")
        print("checkpoints (seconds since the bot was launched, its VmRSS):", flush=True)
        del real, extra
        for ch in digest_channels + [f"C0SOAK{i:03d}" for i in range(args.concurrency)]:
            slack.add_channel(ch)
        clock_file = tmp / "clock-offset"
        days = Days(clock_file, slack, sources, digest_channels, args.new_per_day)
        days.begin(0)
        channels = [
            {"channel": ch, "time": "00:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
             "timezone": "UTC", "keywords": [topic], "max_papers": 5}
            for ch, topic in zip(digest_channels, TOPICS, strict=True)
        ]  # fmt: skip
        env = {"PAPERBOY_BENCH_CLOCK_FILE": str(clock_file), "PAPERBOY_SWEEP_S": "2", **dict(args.bot_env)}
        watcher = Watcher(slack)
        bot = ClockedBot(tmp, slack, sources, channels=channels, database_url=db_url, extra_env=env)
        load = Load(slack, watcher, queries, args)
        sampler: Sampler | None = None
        try:
            launched = time.monotonic()
            bot.start()
            assert bot.proc is not None
            sampler = Sampler(bot.proc.pid, args.sample_every, launched)
            sampler.start()
            time.sleep(0.5)
            sampler.mark("interpreter started")
            bot.wait_log("index ready", timeout=900)
            sampler.mark(f"index built ({stored} papers)")
            bot.wait_log("connected to Slack", timeout=120)
            sampler.mark("Socket Mode connected")
            days.wait_posted(0, bot)
            baseline = sampler.mark("day 0 digests posted (baseline)")
            digest_s = soak(args, bot, days, load, sampler)
            sampler.mark("end")
            log, alive = bot.log, bot.proc.poll() is None
            if args.log:
                args.log.write_text(log, encoding="utf-8")
        finally:
            bot.stop()
            if sampler is not None:
                sampler.stop.set()
    return report(args, sampler, baseline, load, digest_s, log, alive, launched - t_start, time.monotonic() - t_start)


def soak(args: argparse.Namespace, bot: BotProcess, days: Days, load: Load, sampler: Sampler) -> list[float]:
    """Run the searches; advance a day every ``searches / days`` answers and wait for its digests."""
    senders = [threading.Thread(target=load.sender, args=(i,), daemon=True) for i in range(args.concurrency)]
    for t in senders:
        t.start()
    digest_s: list[float] = []
    errors: list[BaseException] = []

    def calendar() -> None:  # day k begins once k/days of the searches are answered
        try:
            for k in range(1, args.days):
                load.wait_done(k * args.searches // args.days)
                days.begin(k)
                digest_s.append(days.wait_posted(k, bot))
                sampler.mark(f"day {k} digests posted")
        except BaseException as exc:
            errors.append(exc)

    days_thread = threading.Thread(target=calendar, daemon=True, name="calendar")
    days_thread.start()
    for point in sorted({i * args.searches // 10 for i in range(1, 11)} if args.searches else ()):
        load.wait_done(point)
        sampler.mark(f"{point} searches answered")
    for t in [*senders, days_thread]:
        t.join()
    if errors:
        raise errors[0]
    return digest_s


def report(
    args: argparse.Namespace,
    sampler: Sampler,
    baseline: int,
    load: Load,
    digest_s: list[float],
    log: str,
    alive: bool,
    setup_s: float,
    took: float,
) -> int:
    after_index = next(rss for _, label, rss in sampler.marks if label.startswith("index built"))
    start = sampler.marks[0][2]
    end = sampler.marks[-1][2]
    peak = max([rss for _, rss in sampler.samples] + [sampler.hwm])
    growth_index = (end - after_index) / after_index * 100
    growth_base = (end - baseline) / baseline * 100
    print(f"\nsamples: {len(sampler.samples)} every {args.sample_every} s")
    print(f"RSS start {start / MB:.1f} MB, after index build {after_index / MB:.1f} MB, baseline {baseline / MB:.1f}")
    print(f"RSS peak {peak / MB:.1f} MB (VmHWM {sampler.hwm / MB:.1f} MB), end {end / MB:.1f} MB")
    print(f"growth: {growth_index:+.1f}% vs after index build, {growth_base:+.1f}% vs baseline (day 0 digests posted)")
    lat = load.latencies
    print(
        f"searches: {load.done} sent, {len(lat)} answered, {load.failed} unanswered; answer latency "
        f"p50 {percentile(lat, 50):.2f} s p95 {percentile(lat, 95):.2f} s max {max(lat, default=math.nan):.2f} s"
    )
    per_day = [round(s, 1) for s in digest_s]
    print(f"digest days: {len(digest_s) + 1} (day 0 at start-up); seconds to post each later day: {per_day}")
    warned = Counter(
        re.sub(r"\d+", "N", line.split(" ", 2)[2])[:150]
        for line in log.splitlines()
        if " WARNING " in line or " ERROR " in line
    )
    print(f"bot log WARNING/ERROR lines: {sum(warned.values())}; bot alive at the end: {alive}")
    for text, count in warned.most_common(6):
        print(f"  {count:5d} x {text}")
    print("\ngoals:")
    print(f"  RSS < 300 MB        : peak {peak / MB:.1f} MB  {verdict(peak < 300 * MB)}")
    print(f"  growth < 10%        : {growth_index:+.1f}% (vs after index build)  {verdict(growth_index < 10)}")
    print(f"\nset-up (corpus, import) {setup_s:.1f} s; total bench time {took:.1f} s")
    return 0 if alive and not load.failed else 1


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", type=Path, default=CORPUS, help="JSONL(.gz) corpus (default: the shared arXiv corpus)")
    p.add_argument("--papers", type=int, default=None, help="real papers: the corpus's first N lines (default: all)")
    p.add_argument("--total", type=int, default=100_000, help="papers stored, synthetic ones fill up (default 100000)")
    p.add_argument("--searches", type=int, default=10_000, help="searches sent through Slack (default 10000)")
    p.add_argument("--days", type=int, default=7, help="digest days, the first at start-up (default 7)")
    p.add_argument("--concurrency", type=int, default=32, help="searches in flight, one channel each (default 32)")
    p.add_argument("--slash-share", type=float, default=0.3, help="share of /papers searches; rest @-mentions")
    p.add_argument("--new-per-day", type=int, default=300, help="papers announced each simulated day (default 300)")
    p.add_argument("--sample-every", type=float, default=0.5, help="seconds between RSS samples (default 0.5)")
    p.add_argument(
        "--bot-env",
        action="append",
        default=[],
        type=_env_pair,
        metavar="NAME=VALUE",
        help="extra environment for the bot process, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    p.add_argument("--log", type=Path, default=None, help="write the bot's whole log to this file at the end")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    if args.days < 1 or args.searches < 0 or args.concurrency < 1 or args.new_per_day < len(TOPICS) + 1:
        p.error("--days and --concurrency must be at least 1, --new-per-day at least 4, --searches at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
