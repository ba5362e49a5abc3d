"""Smoke test of the load and memory benchmarks: each runs end to end at tiny sizes (real ``python -m bot``
against the fakes) and prints its figures. Speed is never asserted; only that the figures are there and sane.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
WORDS = (
    "graph", "neural", "network", "diffusion", "model", "language", "retrieval", "protein", "folding",
    "robot", "control", "vision", "transformer", "benchmark", "dataset", "training", "inference", "sparse",
    "attention", "reinforcement", "learning", "agent", "planning", "speech", "audio", "quantum", "circuit",
    "optimization", "federated", "privacy", "causal", "estimation", "tabular", "forecasting", "segmentation",
)  # fmt: skip


def tiny_corpus(path: Path, n: int = 400) -> Path:
    """``n`` records in the shared corpus's JSONL format, made of a small research vocabulary."""
    rng = random.Random(3)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            sentences = [" ".join(rng.choices(WORDS, k=12)).capitalize() + "." for _ in range(5)]
            record = {
                "id": f"2501.{i + 1:05d}",
                "title": " ".join(rng.choices(WORDS, k=7)).title(),
                "abstract": " ".join(sentences),
                "authors": [f"Author {rng.randrange(50)}", f"Writer {rng.randrange(50)}"],
                "categories": ["cs.LG", "cs.AI"],
                "date": f"2025-0{1 + i % 9}-1{i % 10}",
            }
            out.write(json.dumps(record) + "\n")
    return path


def run_bench(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def seconds(out: str, label: str, stat: str) -> float:
    match = re.search(rf"{re.escape(label)}\s*: .*?{stat} (\d+\.\d+) s", out)
    assert match, f"no {stat} for {label!r} in:\n{out}"
    return float(match.group(1))


def test_ack_load_bench_prints_its_figures(tmp_path: Path) -> None:
    corpus = tiny_corpus(tmp_path / "corpus.jsonl")
    out = run_bench(
        "bench_ack_load.py", "--corpus", str(corpus), "--commands", "4", "--slow", "2", "--digest-papers", "12"
    )
    assert "imported 400 papers" in out
    for label in ("ack latency     /papers", "answer latency  /papers", "answer latency  mentions"):
        for stat in ("p50", "p95", "p99"):
            assert seconds(out, label, stat) >= 0
    assert "(n=4)" in out and "(n=2)" in out  # every command and mention was acked and answered
    assert "not acked: 0   not answered within" in out and re.search(r"not answered within \d+ s: 0", out)
    assert re.search(r"didn't call ack\(\)\" warnings in the bot log: \d+", out)
    for goal in ("ack p99 < 1 s", "answer p95 < 5 s", "zero ack warnings"):
        assert re.search(rf"{re.escape(goal)}\s*: .* (MET|MISSED)", out), goal
    assert "burst sent while the digest ran" in out


def test_memory_soak_bench_prints_its_figures(tmp_path: Path) -> None:
    corpus = tiny_corpus(tmp_path / "corpus.jsonl", 300)
    out = run_bench(
        "bench_memory_soak.py",
        *("--corpus", str(corpus), "--total", "500", "--searches", "40", "--days", "2"),
        *("--concurrency", "4", "--new-per-day", "8", "--sample-every", "0.2"),
    )
    assert "stored 500 papers (300 real + 200 synthetic)" in out
    rss = {m.group(1): float(m.group(2)) for m in re.finditer(r"RSS (start|peak) ([\d.]+) MB", out)}
    end = re.search(r"end ([\d.]+) MB", out)
    assert end and set(rss) == {"start", "peak"}
    assert 10 < rss["start"] <= rss["peak"] and 10 < float(end.group(1)) <= rss["peak"]  # a real process was sampled
    assert re.search(r"growth: [+-]\d+\.\d% vs after index build", out)
    assert "searches: 40 sent, 40 answered, 0 unanswered" in out
    assert "digest days: 2" in out and "day 1 digests posted" in out
    for goal in ("RSS < 300 MB", "growth < 10%"):
        assert re.search(rf"{re.escape(goal)}\s*: .* (MET|MISSED)", out), goal
