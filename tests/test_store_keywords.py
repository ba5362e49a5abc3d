"""Keyword edits from Slack and the effective keyword lists, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.store import KeywordSource, Store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_effective_lists_apply_adds_and_removes_latest_wins(store: Store) -> None:
    edits = [
        ("keyword", "RAG", "add", "U1"),
        ("keyword", "diffusion", "remove", "U2"),  # a config keyword removed
        ("keyword", "rag", "remove", "U2"),  # case-insensitive: removes RAG
        ("keyword", "Mixture of  Experts", "add", "U3"),
        ("keyword", "rag", "add", "U4"),  # re-added: latest wins, as written in this edit
        ("exclude", "survey", "add", "U1"),
        ("keyword", "LLM", "add", "U5"),  # already in config: stays a config entry
    ]
    for i, (kind, word, action, user) in enumerate(edits):
        store.record_keyword_edit("C1", kind, word, action, user, T0 + timedelta(minutes=i))
    store.record_keyword_edit("C2", "keyword", "robotics", "add", "U9", T0)  # another channel

    keywords, excludes = store.effective_keywords("C1", ["llm", "Diffusion"], ["benchmark"])
    assert keywords == [
        KeywordSource("llm", "config"),
        KeywordSource("Mixture of Experts", "slack", "U3", T0 + timedelta(minutes=3)),
        KeywordSource("rag", "slack", "U4", T0 + timedelta(minutes=4)),
    ]
    assert excludes == [
        KeywordSource("benchmark", "config"),
        KeywordSource("survey", "slack", "U1", T0 + timedelta(minutes=5)),
    ]
    assert [k.keyword for k in store.effective_keywords("C2", [], [])[0]] == ["robotics"]


def test_keyword_edits_log_is_kept_in_order(store: Store) -> None:
    a = store.record_keyword_edit("C1", "keyword", "rag", "add", "U1", T0)
    b = store.record_keyword_edit("C1", "keyword", "rag", "remove", None, T0 + timedelta(seconds=1))
    assert store.keyword_edits("C1") == [a, b]
    assert b.id > a.id and b.user_id is None and b.at == T0 + timedelta(seconds=1)
    assert store.keyword_edits("C-none") == []


@pytest.mark.parametrize(
    ("kind", "word", "action"), [("tag", "x", "add"), ("keyword", "x", "delete"), ("keyword", "   ", "add")]
)
def test_invalid_edits_are_refused(store: Store, kind: str, word: str, action: str) -> None:
    with pytest.raises(ValueError):
        store.record_keyword_edit("C1", kind, word, action, "U1", T0)
    assert store.keyword_edits("C1") == []
