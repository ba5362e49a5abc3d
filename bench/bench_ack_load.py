"""Ack and answer latency of the real ``python -m bot`` under load: a digest running, slow searches in flight,
and a burst of concurrent ``/papers`` commands. Prints figures against the goals; asserts nothing.

Usage (from the repository root)::

    python bench/bench_ack_load.py                    # the whole shared corpus (74,728 abstracts)
    python bench/bench_ack_load.py --papers 2000      # a quick run on the corpus's first 2,000 lines
    options: --corpus PATH  --commands 20  --slow 5  --channels N  --digest-papers 300  --seed N

Setup: the corpus (or its first ``--papers`` lines) is imported with ``bot.importer.import_file`` into a
temporary SQLite file. FakeSlack and FakeSources (``tests/fakes``) run in this process on 127.0.0.1;
the bot is the real ``python -m bot`` (``tests/botproc.BotProcess``), with one digest channel due at
start-up whose keyword matches all ``--digest-papers`` papers of today's fake arXiv announcement, so
the start-up catch-up runs a long digest (one post per second in that channel, Slack's pacing).

Load: as soon as the digest has started (its arXiv RSS request arrived), ``--slow`` @-mention searches
with many common terms and phrases are sent, then ``--commands`` ``/papers <query>`` slash commands
are sent at once from as many threads (released together by a barrier), in ``--channels`` channels
(default: one channel per command; answers in one channel are paced at one post per second), and
right after them one "bystander" ``/papers`` in a quiet channel (does a busy channel delay others?).

Measured: ack latency = FakeSlack's ``envelope(id).ack_latency`` (Socket Mode frame sent -> ack frame
received); answer latency = command sent -> the threaded reply with the results arrives at FakeSlack;
and the bot log's ``didn't call ack()`` warnings (slack_bolt's wording). Goals: ack p99 < 1 s,
answer p95 < 5 s, zero warnings. The exit status is 1 only when the bot died or a command was not
answered; missed goals are printed, not failed.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.importer import import_file  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.text import STOPWORDS  # noqa: E402
from tests.botproc import BotProcess, channel_config, news, serve_announcement, serve_hf, wait_for  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.sources import FakeSources  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOY_SHARED", "/work/shared"))
CORPUS = SHARED / "data" / "arxiv-cs-daily-2025-2026" / "arxiv_abstracts.jsonl.gz"
DIGEST_CHANNEL = "C0DIGEST1"
QUIET_CHANNEL = "C0QUIET01"
ACK_WARNINGS = ("didn't call ack()", "did not call ack")
COMMON_PHRASES = ('"in this paper we propose"', '"experimental results show"', '"the proposed method"')
_WORD = re.compile(r"[a-z]{3,}")
# /papers text starting with one of these is a subcommand (help, keywords …), not a search.
COMMAND_WORDS = frozenset(
    {"help", "usage", "keywords", "keyword", "exclude", "excludes", "exclusions", "digest", "since", "search"}
)


# ---- corpus and store ----------------------------------------------------------------------------------


def _open_text(path: Path) -> Iterator[str]:
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8") as fh:
        yield from fh


def read_records(path: Path, limit: int | None = None) -> list[dict]:
    """The first ``limit`` JSON records of a JSONL(.gz) corpus file (all of them when None)."""
    out: list[dict] = []
    for line in _open_text(path):
        if limit is not None and len(out) >= limit:
            break
        if line.strip():
            out.append(json.loads(line))
    return out


def import_corpus(tmp: Path, corpus: Path, papers: int | None, extra: Sequence[dict] = ()) -> tuple[str, int, float]:
    """Import ``corpus`` (its first ``papers`` lines) plus ``extra`` records into a new SQLite file.

    Returns (database URL, records stored, seconds)."""
    url = f"sqlite:///{tmp / 'paperboy.db'}"
    store = Store.open(url)
    store.migrate()
    started = time.monotonic()
    files = [corpus]
    if papers is not None:
        files = [tmp / "corpus.jsonl"]
        with open(files[0], "w", encoding="utf-8") as out:
            for i, line in enumerate(_open_text(corpus)):
                if i >= papers:
                    break
                out.write(line)
    if extra:
        files.append(tmp / "extra.jsonl")
        with open(files[-1], "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in extra)
    stored = sum(import_file(f, store).records for f in files)
    store.close()
    return url, stored, time.monotonic() - started


# ---- queries -------------------------------------------------------------------------------------------


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def title_queries(records: Sequence[dict], n: int, rng: random.Random) -> list[str]:
    """``n`` queries of 2-3 consecutive content words from random real titles (never a subcommand word first)."""
    out: list[str] = []
    while len(out) < n:
        words = _content_words(rng.choice(records)["title"])
        if len(words) >= 2:
            k = min(len(words), rng.choice((2, 2, 3)))
            start = rng.randrange(len(words) - k + 1)
            if words[start] not in COMMAND_WORDS:
                out.append(" ".join(words[start : start + k]))
    return out


def broad_queries(records: Sequence[dict], n: int) -> list[str]:
    """``n`` deliberately expensive queries: dozens of the corpus's most common words, plus common phrases."""
    counts: Counter[str] = Counter()
    for r in records[:5000]:
        counts.update(set(_content_words(r["abstract"])))
    common = [w for w, _ in counts.most_common(200)]
    out = []
    for i in range(n):
        words = common[i * 7 : i * 7 + 60]
        phrase = " ".join(COMMON_PHRASES[: i % (len(COMMON_PHRASES) + 1)])
        out.append((phrase + " " + " ".join(words)).strip()[:990])
    return out


# ---- watching the fake ---------------------------------------------------------------------------------

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)")


class Watcher:
    """Records when each message arrives at FakeSlack: parents by (channel, mentioned user), and the first
    reply of each thread by (channel, thread_ts). Hooks the fake workspace's ``add_message``."""

    def __init__(self, slack: FakeSlack) -> None:
        self.cond = threading.Condition()
        self.parents: dict[tuple[str, str], tuple[str, float]] = {}
        self.replies: dict[tuple[str, str], float] = {}
        self.posts: dict[str, list[float]] = {}
        original = slack.workspace.add_message

        def add_message(channel: str, fields: dict) -> dict:
            msg = original(channel, fields)
            self._seen(channel, msg)
            return msg

        slack.workspace.add_message = add_message  # type: ignore[method-assign]

    def _seen(self, channel: str, msg: dict) -> None:
        now = time.monotonic()
        with self.cond:
            self.posts.setdefault(channel, []).append(now)
            if msg.get("thread_ts"):
                self.replies.setdefault((channel, str(msg["thread_ts"])), now)
            else:
                for user in _MENTION.findall(str(msg.get("text") or ""))[:1]:
                    self.parents.setdefault((channel, user), (str(msg["ts"]), now))
            self.cond.notify_all()

    def slash_answered(self, channel: str, user: str) -> float | None:
        """When the threaded reply under the search parent that mentions ``user`` arrived."""
        parent = self.parents.get((channel, user))
        return self.replies.get((channel, parent[0])) if parent else None

    def wait(self, pending: dict[int, tuple[str, str, bool]], timeout: float) -> dict[int, float]:
        """Wait for answers to ``pending`` (id -> (channel, user or thread ts, is_slash)); their arrival times."""
        done: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for key, (channel, who, slash) in pending.items():
                    if key not in done:
                        at = self.slash_answered(channel, who) if slash else self.replies.get((channel, who))
                        if at is not None:
                            done[key] = at
                left = deadline - time.monotonic()
                if len(done) == len(pending) or left <= 0:
                    return done
                self.cond.wait(min(left, 0.5))


# ---- figures -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def ack_warning_count(log: str) -> int:
    return sum(1 for line in log.splitlines() if any(w in line for w in ACK_WARNINGS))


def log_levels(log: str) -> Counter[str]:
    return Counter(m.group(1) for m in re.finditer(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", log, re.M))


# ---- the run -------------------------------------------------------------------------------------------


@dataclass
class Sent:
    key: int
    channel: str
    who: str  # the user (slash commands) or the mention's ts (its thread)
    slash: bool
    envelope: str = ""
    at: float = 0.0
    ack: float | None = None
    answer: float | None = None
    extra: dict = field(default_factory=dict)


def send_mention(slack: FakeSlack, sent: Sent, text: str, user: str = "U0SLOW") -> None:
    """A human's message mentioning the bot (put in the channel first, as Slack does), then its event."""
    body = f"<@{slack.bot_user_id}> {text}"
    sent.who = slack.post_as_user(sent.channel, body, user=user)
    event = {"type": "app_mention", "text": body, "user": user, "channel": sent.channel, "ts": sent.who}
    sent.at = time.monotonic()
    sent.envelope = slack.send_event(event)


def send_slash(slack: FakeSlack, sent: Sent, text: str) -> None:
    sent.at = time.monotonic()
    sent.envelope = slack.send_slash_command("/papers", text, channel_id=sent.channel, user_id=sent.who)


def burst(slack: FakeSlack, sends: Sequence[Sent], texts: Sequence[str]) -> None:
    """Send every slash command at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(sends))

    def go(s: Sent, text: str) -> None:
        barrier.wait()
        send_slash(slack, s, text)

    threads = [threading.Thread(target=go, args=(s, t)) for s, t in zip(sends, texts, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    records = read_records(args.corpus, min(args.papers or 5000, 5000))
    with tempfile.TemporaryDirectory(prefix="paperboy-ack-") as tmpdir, FakeSlack() as slack, FakeSources() as sources:
        tmp = Path(tmpdir)
        db_url, stored, import_s = import_corpus(tmp, args.corpus, args.papers)
        print(f"imported {stored} papers into SQLite in {import_s:.1f} s")
        channels = [f"C0LOAD{i:03d}" for i in range(max(1, min(args.channels or args.commands, args.commands)))]
        for ch in [DIGEST_CHANNEL, QUIET_CHANNEL, *channels, *(f"C0SLOW{i:03d}" for i in range(args.slow))]:
            slack.add_channel(ch)
        todays = news(args.digest_papers)
        serve_announcement(sources, todays)
        serve_hf(sources, todays[:20])
        watcher = Watcher(slack)
        bot = BotProcess(tmp, slack, sources, channels=[channel_config(max_papers=5)], database_url=db_url)
        try:
            launched = time.monotonic()
            bot.start()
            bot.wait_log("connected to Slack", timeout=900)
            ready = time.monotonic()
            wait_for(lambda: sources.requests_for("rss"), 60, "the start-up digest to fetch", bot)
            digest_started = time.monotonic()
            slow = [Sent(i, f"C0SLOW{i:03d}", "", slash=False) for i in range(args.slow)]
            for s, q in zip(slow, broad_queries(records, args.slow), strict=True):
                send_mention(slack, s, q)
            cmds = [
                Sent(100 + i, channels[i % len(channels)], f"U0LOAD{i:03d}", slash=True) for i in range(args.commands)
            ]
            burst(slack, cmds, title_queries(records, args.commands, rng))
            quiet = Sent(99, QUIET_CHANNEL, "U0QUIET", slash=True)
            send_slash(slack, quiet, title_queries(records, 1, rng)[0])
            everything = [*slow, *cmds, quiet]
            for s in everything:
                with contextlib.suppress(TimeoutError):
                    slack.wait_ack(s.envelope, timeout=30)
                s.ack = slack.envelope(s.envelope).ack_latency
            pending = {s.key: (s.channel, s.who, s.slash) for s in everything}
            answered = watcher.wait(pending, timeout=args.answer_timeout)
            for s in everything:
                s.answer = answered[s.key] - s.at if s.key in answered else None
            wait_for(lambda: ": posted" in bot.log or ": no_announcement" in bot.log, 600, "the digest to finish", bot)
            time.sleep(0.5)
            log = bot.log
            alive = bot.proc is not None and bot.proc.poll() is None
        finally:
            bot.stop()
        digest_posts = watcher.posts.get(DIGEST_CHANNEL, [])
    burst_at = min(s.at for s in cmds)
    print(
        f"bot start-up (index of {stored} papers built, Socket Mode connected): {ready - launched:.1f} s; "
        f"digest started {digest_started - launched:.1f} s after launch"
    )
    if digest_posts:
        print(
            f"digest: {len(digest_posts)} posts in {DIGEST_CHANNEL}, from {digest_posts[0] - burst_at:+.1f} s to "
            f"{digest_posts[-1] - burst_at:+.1f} s relative to the burst (burst sent "
            f"{'while the digest ran' if digest_posts[-1] > burst_at else 'AFTER the digest ended'})"
        )
    return report(args, slow, cmds, quiet, log, alive, time.monotonic() - t_start)


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):.3f} s  p95 {percentile(values, 95):.3f} s  "
        f"p99 {percentile(values, 99):.3f} s  max {max(values):.3f} s  (n={len(values)})"
    )


def report(
    args: argparse.Namespace, slow: list[Sent], cmds: list[Sent], quiet: Sent, log: str, alive: bool, took: float
) -> int:
    acks = [s.ack for s in cmds if s.ack is not None]
    answers = [s.answer for s in cmds if s.answer is not None]
    slow_answers = [s.answer for s in slow if s.answer is not None]
    warnings = ack_warning_count(log)
    unacked = sum(s.ack is None for s in [*cmds, *slow, quiet])
    unanswered = sum(s.answer is None for s in [*cmds, *slow, quiet])
    chans = len({s.channel for s in cmds})
    print(
        f"\n{args.commands} concurrent /papers searches in {chans} channel(s), during the digest and {len(slow)} slow"
    )
    print("@-mention searches sent just before (each: up to 60 of the corpus's most common words, some phrases)")
    print(f"ack latency     /papers   : {_fmt(acks)}")
    print(f"ack latency     mentions  : {_fmt([s.ack for s in slow if s.ack is not None])}")
    print(f"answer latency  /papers   : {_fmt(answers)}")
    print(f"answer latency  mentions  : {_fmt(slow_answers)}")
    bystander = "n/a" if quiet.answer is None else f"{quiet.answer:.3f} s"
    print(f"answer latency  bystander : {bystander}  (one /papers in a quiet channel, sent right after the burst)")
    print(f"not acked: {unacked}   not answered within {args.answer_timeout:.0f} s: {unanswered}")
    print(
        f'"didn\'t call ack()" warnings in the bot log: {warnings}   (log WARNING/ERROR lines: {dict(log_levels(log))})'
    )
    for line in [ln for ln in log.splitlines() if re.match(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", ln)][:5]:
        print(f"  bot log: {line[:200]}")
    p99, p95 = percentile(acks, 99), percentile(answers, 95)
    print("\ngoals:")
    print(f"  ack p99 < 1 s       : {p99:.3f} s  {verdict(len(acks) == len(cmds) and p99 < 1.0)}")
    print(f"  answer p95 < 5 s    : {p95:.3f} s  {verdict(len(answers) == len(cmds) and p95 < 5.0)}")
    print(f"  zero ack warnings   : {warnings}  {verdict(warnings == 0)}")
    print(f"\ntotal bench time {took:.1f} s")
    if not alive:
        print("the bot process exited during the bench", file=sys.stderr)
    return 0 if alive and not unanswered else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", type=Path, default=CORPUS, help="JSONL(.gz) corpus (default: the shared arXiv corpus)")
    p.add_argument("--papers", type=int, default=None, help="import only the corpus's first N lines (default: all)")
    p.add_argument("--commands", type=int, default=20, help="concurrent /papers searches (default 20)")
    p.add_argument("--slow", type=int, default=5, help="broad @-mention searches sent just before (default 5)")
    p.add_argument(
        "--channels", type=int, default=None, help="channels the commands are spread over (default: one each)"
    )
    p.add_argument("--digest-papers", type=int, default=300, help="papers today's digest posts (default 300)")
    p.add_argument("--answer-timeout", type=float, default=180.0, help="seconds to wait for every answer")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.commands < 1 or args.slow < 0 or (args.papers is not None and args.papers < 1):
        p.error("--commands and --papers must be at least 1, --slow at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
