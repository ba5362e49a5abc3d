"""Search quality: nDCG@10 on BEIR SciFact (train qrels) with our tokenizer and BM25 is at least 0.66.

SciFact is read in place from the shared data folder (CC BY-NC: evaluation only, never copied here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import eval_scifact  # noqa: E402


def test_ndcg_formula() -> None:
    assert eval_scifact.ndcg_at_k(["a", "b"], {"a"}, 10) == 1.0
    assert eval_scifact.ndcg_at_k(["x", "a"], {"a"}, 10) == pytest.approx(1 / 1.584962500721156)
    assert eval_scifact.ndcg_at_k(["x"] * 10 + ["a"], {"a"}, 10) == 0.0


@pytest.mark.slow
def test_scifact_ndcg_at_10() -> None:
    root = eval_scifact.scifact_dir()
    if not (root / "corpus.jsonl").is_file():
        pytest.fail(f"BEIR SciFact not found at {root}; set PAPERBOY_SHARED")
    result = eval_scifact.evaluate("train", 10, root)
    assert result["queries"] == 809 and result["docs"] == 5183
    assert result["ndcg@10"] >= 0.66, result
