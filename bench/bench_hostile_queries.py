"""Latency of hostile queries (reliability.md T-44: "under a second for <= 500 characters").

Usage::

    python bench/bench_hostile_queries.py                 # 20,000 papers of the shared arXiv corpus
    options: --papers N (20000)  --queries N (500)  --corpus PATH  --seed N

Builds a ``SearchIndex`` from the first ``--papers`` papers of the shared corpus (or, when it is
missing, from synthetic abstracts), then times, end to end, ``parse_command`` + ``SearchIndex.search``
(limit 10) for random hostile queries: mixes of SQL and query-syntax fragments, control characters,
NUL, lone surrogates, CJK, emoji and real words. Queries of at most 500 characters and queries of
up to 10,000 characters are reported separately (max, p95, p50 in ms); a ``QueryError`` (e.g. "query
too long") counts as an answer, its time included. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.commands import parse_command  # noqa: E402
from bot.errors import QueryError  # noqa: E402
from bot.models import Paper  # noqa: E402
from bot.search import SearchIndex  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOY_SHARED", "/work/shared"))
CORPUS = SHARED / "data" / "arxiv-cs-daily-2025-2026" / "arxiv_abstracts.jsonl.gz"
FRAGMENTS = [
    '" OR 1=1 --', "'; DROP TABLE papers; --", "%", "*", "NEAR/3", '"', '"unclosed', "-", "--", 'author:"',
    "author:*", "cat:*", "cat:cs.", "since:2026-13-45", "until:9999-12-31", "AND", "OR", "(", ")", "\\",
    "\x00", "\x1b[31m", "\u202e", "\u200b", "\ufeff", "\ud800", "\udfff", "😀", "👨‍👩‍👧", "深層学習",
    "グラフ", "трансформер", "<!channel>", "&amp;", "x" * 200,
]  # fmt: skip
WORDS = [
    "graph",
    "neural",
    "network",
    "retrieval",
    "diffusion",
    "language",
    "model",
    "transformer",
    "agent",
    "learning",
    "the",
    "of",
    "a",
]


def load(path: Path, limit: int) -> list[Paper]:
    papers = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            papers.append(Paper(id=rec["id"], title=rec["title"], abstract=rec["abstract"]))
            if len(papers) >= limit:
                break
    return papers


def synthetic(n: int, rng: random.Random) -> list[Paper]:
    return [
        Paper(id=f"2601.{i:05d}", title=" ".join(rng.choices(WORDS, k=8)), abstract=" ".join(rng.choices(WORDS, k=120)))
        for i in range(n)
    ]


def hostile(rng: random.Random, max_chars: int) -> str:
    parts = []
    while sum(map(len, parts)) < rng.randint(1, max_chars):
        roll = rng.random()
        if roll < 0.4:
            parts.append(rng.choice(FRAGMENTS))
        elif roll < 0.7:
            parts.append(rng.choice(WORDS))
        else:
            parts.append("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 6))))
    return " ".join(parts)[:max_chars]


def timed(index: SearchIndex, query: str) -> float:
    started = time.perf_counter()
    try:
        cmd = parse_command(query)
        if cmd.kind == "search":
            index.search(cmd.query, limit=10)
    except QueryError:
        pass
    return (time.perf_counter() - started) * 1000


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    if args.corpus.exists():
        papers, what = load(args.corpus, args.papers), f"{args.corpus.name}"
    else:
        papers, what = synthetic(args.papers, rng), "synthetic abstracts"
    index = SearchIndex.build(papers)
    print(f"index: {len(index)} papers from {what}, built in {time.perf_counter() - started:.1f} s")
    print(f"{'queries':28} {'n':>5} {'max ms':>9} {'p95 ms':>9} {'p50 ms':>9}")
    for label, max_chars in (("hostile, <= 500 chars", 500), ("hostile, <= 10,000 chars", 10_000)):
        times = [timed(index, hostile(rng, max_chars)) for _ in range(args.queries)]
        print(f"{label:28} {len(times):5} {max(times):9.1f} {pct(times, 0.95):9.1f} {pct(times, 0.5):9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
