"""Speed and memory of SearchIndex against stock rank_bm25.BM25Okapi, on real and synthetic corpora.

Usage::

    python bench/bench_search.py                      # the shared 75k arXiv corpus
    python bench/bench_search.py --synthetic 1000000  # 1M synthetic documents
    options: --corpus PATH  --queries N (300)  --stock-queries N  --no-stock  --seed N

Real corpus: ``$PAPERBOY_SHARED/data/arxiv-cs-daily-2025-2026/arxiv_abstracts.jsonl.gz`` read
directly and tokenized by ``bot.text``; the index is built from all but the newest 2,000 papers,
which are then added as one day's batch (and 500 papers re-added as updates).

Synthetic corpus: documents whose lengths follow the real corpus's and whose terms are drawn
independently from the real corpus's term distribution (Zipfian; the vocabulary is the real one,
about 230k terms, so a real 1M-paper corpus would have a larger vocabulary). Each has 1-3 real
categories, 3 real author names and a date. It is fed pre-tokenized (``add_tokens``), in chunks.

Queries: bigrams and trigrams of consecutive non-stopword words from random real titles. Search
time is ``SearchIndex.search(q, limit=10)`` end to end (parse, rank, fetch from a dict, snippets).
Stock rank_bm25 is timed as ``get_scores`` + top-10 on the same tokens; on the synthetic corpus
only ``--stock-queries`` (default 20) of them, as it takes about a second per query there.
Memory: "accounted" is the index's numpy arrays plus ``sys.getsizeof`` of its dicts, keys and ints
(for stock: its per-document dicts, IDF dict and length list; the term strings are shared with the
tokenizer in both); "RSS delta" is the growth of resident memory across the build, which also
counts the tokenizer memo and allocator slack; on the real corpus the index is also measured with
tracemalloc (a second build, tokenizer memo cleared).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import re
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rank_bm25 import BM25Okapi  # noqa: E402

from bot import text  # noqa: E402
from bot.models import Paper  # noqa: E402
from bot.ranking import _scores  # noqa: E402
from bot.search import SearchIndex  # noqa: E402
from bot.text import STOPWORDS, document_text, tokenize  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOY_SHARED", "/work/shared"))
CORPUS = SHARED / "data" / "arxiv-cs-daily-2025-2026" / "arxiv_abstracts.jsonl.gz"
DAY = 2000


def load_corpus(path: Path) -> list[Paper]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [
            Paper(
                id=d["id"],
                title=d["title"],
                abstract=d["abstract"],
                authors=tuple(d["authors"]),
                categories=tuple(d["categories"]),
                announced=date.fromisoformat(d["date"]),
            )
            for d in map(json.loads, f)
        ]


def sample_queries(papers: Sequence[Paper], n: int, rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]+", papers[rng.integers(len(papers))].title)]
        words = [w for w in words if w.lower() not in STOPWORDS]
        size = int(rng.integers(2, 4))
        if len(words) >= size:
            start = int(rng.integers(len(words) - size + 1))
            out.append(" ".join(words[start : start + size]))
    return out


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def accounted_bytes(index: SearchIndex) -> int:
    """The index's arrays and compact vocabularies, plus the dict entries of terms not yet compacted."""
    total = index.memory_bytes()
    for vocab in (index._vocab, index._author_vocab, index._cat_vocab):
        total += sum(sys.getsizeof(t) + 32 for t in vocab._recent)
    return total


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def search_times(index: SearchIndex, queries: Sequence[str]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``index.search(q, limit=10)`` per query (after 20 warm-ups)."""
    for q in queries[:20]:
        index.search(q)
    wall, cpu = [], []
    for q in queries:
        started, started_cpu = time.perf_counter(), time.process_time()
        index.search(q, limit=10)
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return wall, cpu


def stock_run(
    corpus: Callable[[], Iterator[list[str]]], queries: Sequence[str], limit: int, index: SearchIndex
) -> dict[str, float]:
    """Build stock BM25Okapi, time get_scores + top-10, compare every score with ours."""
    gc.collect()
    before = rss()
    started = time.perf_counter()
    bm25 = BM25Okapi(corpus())
    build_s = time.perf_counter() - started
    grown = rss() - before
    times, worst, worst_rel = [], 0.0, 0.0
    snap = index._snap
    for q in queries[:limit]:
        tokens = tokenize(q)
        started = time.perf_counter()
        scores = bm25.get_scores(tokens)
        top = np.argpartition(-scores, 10)[:10]
        top = top[np.argsort(-scores[top])]
        times.append((time.perf_counter() - started) * 1000)
        ours = _scores(snap, tokens)[0][snap.alive]  # slot order == corpus order (no updates yet)
        worst = max(worst, float(np.max(np.abs(ours - scores))))
        worst_rel = max(worst_rel, float(np.max(np.abs(ours - scores) / np.maximum(np.abs(scores), 1e-300))))
    accounted = sum(map(sys.getsizeof, bm25.doc_freqs)) + sys.getsizeof(bm25.doc_freqs) + sys.getsizeof(bm25.idf)
    accounted += sys.getsizeof(bm25.doc_len) + sum(sys.getsizeof(k) for k in bm25.idf)
    del bm25
    gc.collect()
    return {
        "build_s": build_s,
        "accounted_mb": accounted / 2**20,
        "rss_mb": grown / 2**20,
        "p50": pct(times, 50),
        "p95": pct(times, 95),
        "n": len(times),
        "diff": worst,
        "rel": worst_rel,
    }


def clear_tokenizer_memo() -> None:
    text._TERMS.clear()
    text._SEQ.clear()
    text._analyze_run.cache_clear()


def report(name: str, ours: dict[str, float], stock: dict[str, float] | None, how: str, stock_how: str) -> None:
    print(f"\n=== {name} ===")
    print(f"docs indexed            : {ours['docs']:,}")
    print(f"build                   : {ours['build_s']:.1f} s ({how})")
    print(f"add {DAY:,} new papers     : {ours['add_s'] * 1000:.0f} ms")
    print(f"re-add 500 (updates)    : {ours['update_s'] * 1000:.0f} ms")
    print(f"index memory, accounted : {ours['accounted_mb']:.0f} MB (numpy arrays + dicts/keys via sys.getsizeof)")
    print(f"index memory, RSS delta : {ours['rss_mb']:.0f} MB (resident memory growth across the build)")
    if "tracemalloc_mb" in ours:
        print(f"index memory, tracemalloc: {ours['tracemalloc_mb']:.0f} MB (separate build, tokenizer memo cleared)")
    print(f"search p50 / p95        : {ours['p50']:.2f} / {ours['p95']:.2f} ms over {ours['n']} queries (limit=10)")
    print(f"  same, CPU time        : {ours['cpu50']:.2f} / {ours['cpu95']:.2f} ms (process time; less load-sensitive)")
    print(f"load average (1 min)    : {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
    if stock is None:
        return
    print(f"stock rank_bm25 build   : {stock['build_s']:.1f} s ({stock_how})")
    print(f"stock memory            : {stock['accounted_mb']:.0f} MB accounted, RSS delta {stock['rss_mb']:.0f} MB")
    print(f"stock p50 / p95         : {stock['p50']:.1f} / {stock['p95']:.1f} ms over {stock['n']} queries")
    print(
        f"ratios (stock / ours)   : build {stock['build_s'] / ours['build_s']:.1f}x, memory "
        f"{stock['accounted_mb'] / ours['accounted_mb']:.1f}x (accounted), p50 {stock['p50'] / ours['p50']:.0f}x, "
        f"p95 {stock['p95'] / ours['p95']:.0f}x"
    )
    print(f"score equality          : max |ours - stock| = {stock['diff']:.2e} (max relative {stock['rel']:.1e})")


def bench_real(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    papers = load_corpus(args.corpus)
    load_s = time.perf_counter() - started
    print(f"loaded {len(papers):,} papers in {load_s:.1f} s")
    by_id = {p.id: p for p in papers}
    fetch = lambda ids: {i: by_id[i] for i in ids if i in by_id}  # noqa: E731
    queries = sample_queries(papers, args.queries, rng)
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = SearchIndex.build(papers[:-DAY], fetch)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    index.add(papers[-DAY:])
    ours: dict[str, float] = {"docs": len(index), "build_s": build_s, "add_s": time.perf_counter() - started}
    clear_tokenizer_memo()
    gc.collect()
    ours["rss_mb"] = (rss() - before) / 2**20
    ours["accounted_mb"] = accounted_bytes(index) / 2**20
    times, cpu = search_times(index, queries)
    ours.update(p50=pct(times, 50), p95=pct(times, 95), n=len(times), cpu50=pct(cpu, 50), cpu95=pct(cpu, 95))
    stock = None
    if not args.no_stock:
        corpus = lambda: (tokenize(document_text(p.title, p.abstract)) for p in papers)  # noqa: E731
        stock = stock_run(corpus, queries, args.stock_queries or len(queries), index)
    started = time.perf_counter()
    index.add(papers[:500])
    ours["update_s"] = time.perf_counter() - started
    index = SearchIndex()
    clear_tokenizer_memo()
    gc.collect()
    tracemalloc.start()
    start_mem = tracemalloc.get_traced_memory()[0]
    index = SearchIndex.build(papers, fetch)
    clear_tokenizer_memo()
    gc.collect()
    ours["tracemalloc_mb"] = (tracemalloc.get_traced_memory()[0] - start_mem) / 2**20
    tracemalloc.stop()
    how = "from Paper objects, tokenizing, cold tokenizer memo"
    report(f"real corpus ({args.corpus.name})", ours, stock, how, "the same token lists, tokenized as it reads them")


def synthetic_docs(
    n: int, seed: int, terms: np.ndarray, probs: np.ndarray, lengths: np.ndarray, chunk: int = 50_000
) -> Iterator[list[list[str]]]:
    """Token lists of ``n`` synthetic documents, chunk by chunk (the same for the same seed)."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(probs)
    for start in range(0, n, chunk):
        sizes = rng.choice(lengths, min(chunk, n - start))
        ids = np.minimum(np.searchsorted(cdf, rng.random(int(sizes.sum())) * cdf[-1]), len(terms) - 1)
        flat = terms[ids].tolist()
        bounds = np.concatenate(([0], np.cumsum(sizes))).tolist()
        yield [flat[bounds[i] : bounds[i + 1]] for i in range(len(sizes))]


def bench_synthetic(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    papers = load_corpus(args.corpus)
    token_lists = [tokenize(document_text(p.title, p.abstract)) for p in papers]
    counts = Counter(t for tokens in token_lists for t in tokens)
    terms = np.array(list(counts), dtype=object)
    probs = np.array([counts[t] for t in terms], dtype=np.float64)
    lengths = np.array([len(t) for t in token_lists])
    del token_lists
    cats = [p.categories for p in papers]
    authors = [a for p in papers[:20000] for a in p.authors]
    queries = sample_queries(papers, args.queries, rng)
    n = args.synthetic
    first = date(2024, 1, 1)

    def meta(i: int) -> Paper:
        return Paper(
            id=f"syn:{i}",
            title="",
            abstract="",
            authors=tuple(authors[(i * 7 + k) % len(authors)] for k in range(3)),
            categories=cats[i % len(cats)],
            announced=first + timedelta(days=i % 900),
        )

    def fetch(ids: Sequence[str]) -> dict[str, Paper]:  # a real paper's text, for a realistic snippet cost
        return {i: replace(papers[int(i[4:]) % len(papers)], id=i) for i in ids}

    gc.collect()
    before = rss()
    index = SearchIndex(fetch)
    build_s, done = 0.0, 0
    for docs in synthetic_docs(n, args.seed, terms, probs, lengths):  # generating them is not timed
        keep = max(0, min(len(docs), n - DAY - done))
        batch = [(meta(done + j), d) for j, d in enumerate(docs[:keep])]
        started = time.perf_counter()
        index.add_tokens(batch)
        build_s += time.perf_counter() - started
        if keep < len(docs):
            last = [(meta(done + keep + j), d) for j, d in enumerate(docs[keep:])]
        done += len(docs)
    started = time.perf_counter()
    index.add_tokens(last)
    add_s = time.perf_counter() - started
    gc.collect()
    ours: dict[str, float] = {"docs": len(index), "build_s": build_s, "add_s": add_s}
    ours["rss_mb"] = (rss() - before) / 2**20
    ours["accounted_mb"] = accounted_bytes(index) / 2**20
    times, cpu = search_times(index, queries)
    ours.update(p50=pct(times, 50), p95=pct(times, 95), n=len(times), cpu50=pct(cpu, 50), cpu95=pct(cpu, 95))
    stock = None
    if not args.no_stock:
        corpus = lambda: (d for docs in synthetic_docs(n, args.seed, terms, probs, lengths) for d in docs)  # noqa: E731
        stock = stock_run(corpus, queries, args.stock_queries or 20, index)
    started = time.perf_counter()
    index.add_tokens([(meta(i), ["updat", "paper"]) for i in range(500)])
    ours["update_s"] = time.perf_counter() - started
    how = "pre-tokenized documents via add_tokens in chunks of 50,000; generating them is not counted"
    report(f"synthetic corpus ({n:,} documents)", ours, stock, how, "the same documents, generated as it reads them")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--synthetic", type=int, default=0, help="number of synthetic documents (0: real corpus)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--stock-queries", type=int, default=0, help="queries timed on stock rank_bm25 (0: default)")
    parser.add_argument("--no-stock", action="store_true", help="skip stock rank_bm25")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.synthetic:
        bench_synthetic(args)
    else:
        bench_real(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
