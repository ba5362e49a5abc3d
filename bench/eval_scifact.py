"""Search quality on BEIR SciFact: nDCG@10 of SearchIndex (our tokenizer + BM25Okapi scoring).

Usage: ``python bench/eval_scifact.py [--split train] [--k 10]``

Reads ``$PAPERBOY_SHARED/data/beir-scifact`` (default ``/work/shared``): the corpus (title + text as
the paper's title and abstract), the claims of ``queries.jsonl`` that appear in ``qrels/<split>.tsv``,
and binary relevance. Each claim is searched as plain words (no query syntax) and scored with the
standard trec_eval nDCG@k: DCG of the ranked list over the ideal DCG of the judged relevant
documents. Only the train split is shipped; the test qrels are held out elsewhere.

SciFact is CC BY-NC: it is read in place for evaluation and never copied into this repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.models import Paper  # noqa: E402
from bot.query import plain_query  # noqa: E402
from bot.search import SearchIndex  # noqa: E402


def scifact_dir() -> Path:
    return Path(os.environ.get("PAPERBOY_SHARED", "/work/shared")) / "data" / "beir-scifact"


def load(root: Path, split: str) -> tuple[list[Paper], dict[str, str], dict[str, set[str]]]:
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        papers = [Paper(id=d["_id"], title=d["title"], abstract=d["text"]) for d in map(json.loads, f)]
    qrels: dict[str, set[str]] = defaultdict(set)
    with (root / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels[row["query-id"]].add(row["corpus-id"])
    with (root / "queries.jsonl").open(encoding="utf-8") as f:
        queries = {d["_id"]: d["text"] for d in map(json.loads, f) if d["_id"] in qrels}
    return papers, queries, dict(qrels)


def ndcg_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def evaluate(split: str = "train", k: int = 10, root: Path | None = None) -> dict[str, float]:
    papers, queries, qrels = load(root or scifact_dir(), split)
    started = time.perf_counter()
    index = SearchIndex.build(papers)
    built = time.perf_counter() - started
    scores, recall = [], []
    started = time.perf_counter()
    for qid, text in queries.items():
        query = plain_query(text)
        ranked = [h.paper.id for h in index.search(query, limit=k).hits] if query.tokens else []
        scores.append(ndcg_at_k(ranked, qrels[qid], k))
        recall.append(len(set(ranked) & qrels[qid]) / len(qrels[qid]))
    searched = time.perf_counter() - started
    return {
        f"ndcg@{k}": sum(scores) / len(scores),
        f"recall@{k}": sum(recall) / len(recall),
        "queries": len(queries),
        "docs": len(papers),
        "build_s": built,
        "search_ms_per_query": searched / len(queries) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    result = evaluate(args.split, args.k)
    for name, value in result.items():
        print(f"{name:>22}: {value:.4f}" if isinstance(value, float) else f"{name:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
