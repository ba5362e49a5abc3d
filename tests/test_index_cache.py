"""The saved search index: a restart loads it instead of re-tokenizing, and anything stale is rebuilt."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import sqlalchemy as sa

import bot.cli
import bot.index_io
import bot.postings
import bot.search
from bot.cli import build_index, open_index
from bot.errors import StoreError
from bot.models import Paper
from bot.search import SearchIndex
from bot.store import Store
from bot.store.schema import index_cache
from tests.conftest import corpus_papers

QUERIES = [
    "graph neural network",
    "diffusion",
    '"large language models" reasoning',
    "retrieval -survey",
    "agents cat:cs.CL",
    "author:wang learning",
    'author:"y li"',
    "since:2025-06-01 transformer",
    "cat:cs.CV",
]


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return corpus_papers(300)


def results(index: SearchIndex) -> list[list[tuple[str, float, tuple[str, ...]]]]:
    """The first page of every query, in order, with its total."""
    pages = [index.search(q, limit=20) for q in QUERIES]
    return [[(h.paper.id, h.score, h.matched_terms) for h in p.hits] + [(str(p.total), 0.0, ())] for p in pages]


def every_hit(index: SearchIndex) -> list[dict[str, float]]:
    """All hits of every query as {id: score}: equal ties may rank in another order after an incremental add."""
    return [{h.paper.id: h.score for h in index.search(q, limit=1000).hits} for q in QUERIES]


@pytest.fixture(params=[bot.postings.SEGMENT_DOCS, 64], ids=["one-segment", "small-segments"])
def segment_docs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(bot.postings, "SEGMENT_DOCS", request.param)
    monkeypatch.setattr(bot.search, "SEGMENT_DOCS", request.param)
    return int(request.param)


def test_a_restart_loads_the_saved_index_and_catches_up(
    store: Store, papers: list[Paper], segment_docs: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.cli")
    store.upsert_papers(papers[:250])
    built = build_index(store, quiet=True)
    assert "building the search index (no saved index)" in caplog.text
    assert "saved the search index" in caplog.text
    caplog.clear()

    loaded = build_index(store, quiet=True)
    assert "search index loaded: 250 papers, 0 of them indexed since it was saved" in caplog.text
    assert results(loaded) == results(built) and all(results(built))

    # the store moves on: new papers and a changed one are indexed on top of the loaded copy
    changed = dataclasses.replace(papers[0], abstract="Now about quokkas and graph neural networks.")
    store.upsert_papers([*papers[250:], changed])
    caplog.clear()
    resumed = build_index(store, quiet=True)
    assert "300 papers, 51 of them indexed since it was saved" in caplog.text
    fresh = SearchIndex.from_store(store)
    assert every_hit(resumed) == every_hit(fresh)
    assert [h.paper.id for h in resumed.search("quokkas").hits] == [papers[0].id]


def test_a_running_worker_saves_again_once_far_enough_ahead_of_the_saved_copy(
    store: Store, papers: list[Paper], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.cli, "RESAVE_AFTER", 40)
    store.upsert_papers(papers[:200])
    saved = open_index(store, quiet=True)
    assert bot.index_io.describe(store.load_index_cache())["last_seq"] == 200

    store.upsert_papers(papers[200:230])  # what the morning fetches add while the worker runs
    saved.index.refresh(store)
    assert not saved.resave_if_behind()  # 30 changes behind: not yet
    store.upsert_papers(papers[230:260])
    saved.index.refresh(store)
    assert saved.resave_if_behind()
    assert bot.index_io.describe(store.load_index_cache())["last_seq"] == 260
    assert not saved.resave_if_behind()  # up to date again

    restarted = open_index(store, quiet=True)
    assert len(restarted.index) == 260 and restarted.saved_seq == 260
    assert results(restarted.index) == results(saved.index)


def test_an_index_saved_by_other_code_is_rebuilt_and_replaced(
    store: Store, papers: list[Paper], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.cli")
    store.upsert_papers(papers[:50])
    build_index(store, quiet=True)
    monkeypatch.setattr(bot.index_io, "fingerprint", lambda: "another version")
    caplog.clear()
    index = build_index(store, quiet=True)
    assert "building the search index (saved by another version of Paperboy)" in caplog.text
    assert len(index) == 50
    assert bot.index_io.describe(store.load_index_cache())["fingerprint"] == "another version"


@pytest.mark.parametrize(
    "damage",
    ["truncate", "garbage", "drop-part", "bad-meta", "out-of-range"],
)
def test_a_damaged_saved_index_is_rebuilt(
    store: Store, papers: list[Paper], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.cli")
    store.upsert_papers(papers[:80])
    expected = results(build_index(store, quiet=True))
    parts = store.load_index_cache()
    name = "seg0.terms.docs@0"
    if damage == "truncate":
        parts[name] = parts[name][: len(parts[name]) // 2]
    elif damage == "garbage":
        parts[name] += b"more bytes than the array has"
    elif damage == "drop-part":
        del parts[name]
    elif damage == "bad-meta":
        parts["meta"] = b"{not json"
    else:  # well-formed arrays naming terms the vocabulary does not have
        keys = np.frombuffer(parts["seg0.terms.keys@0"], np.int32)
        parts["seg0.terms.keys@0"] = (keys + 10**6).astype(np.int32).tobytes()
    store.save_index_cache(lambda: parts.items())
    caplog.clear()
    index = build_index(store, quiet=True)
    assert "building the search index (" in caplog.text
    assert results(index) == expected


def test_a_failed_save_only_costs_the_next_start_a_rebuild(
    store: Store, papers: list[Paper], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.upsert_papers(papers[:20])

    def broken(_make_parts: object) -> int:
        raise StoreError("database is read-only")

    monkeypatch.setattr(store, "save_index_cache", broken)
    index = build_index(store, quiet=True)
    assert len(index) == 20
    assert "could not save the search index (the next start rebuilds it): database is read-only" in caplog.text


def test_saving_replaces_every_part_in_one_transaction(store: Store, papers: list[Paper]) -> None:
    store.upsert_papers(papers[:30])
    build_index(store, quiet=True)
    store.save_index_cache(lambda: [("meta", b"{}")])
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(index_cache.c.name)).scalars().all() == ["meta"]

    def failing() -> list[tuple[str, bytes]]:
        return [("meta", b"{}"), ("meta", b"duplicate name")]  # the second insert fails: nothing changes

    with pytest.raises(sa.exc.IntegrityError):
        store.save_index_cache(failing)
    assert store.load_index_cache() == {"meta": b"{}"}


def test_arrays_larger_than_a_part_are_split_and_joined_again(
    store: Store, papers: list[Paper], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.cli")
    monkeypatch.setattr(bot.index_io, "CHUNK", 1000)
    store.upsert_papers(papers[:120])
    built = build_index(store, quiet=True)
    parts = store.load_index_cache()
    assert max(len(p) for p in parts.values() if p is not parts["meta"]) == 1000
    assert "seg0.terms.docs@5" in parts
    loaded = bot.index_io.load(parts, store.get_papers)
    assert parts == {"meta": parts["meta"]}  # consumed as it was read
    assert results(loaded) == results(built)


def test_the_fingerprint_ignores_comments_docstrings_and_layout_but_not_code() -> None:
    from pathlib import Path

    source = Path(bot.text.__file__).read_text("utf-8")
    base = bot.index_io.code_of(source)
    reworded = source.replace('"""', '"""Reworded. ', 1) + "\n# a comment at the end\n"
    assert bot.index_io.code_of(reworded) == base
    relaid = "def f(a,b):\n    '''Doc.'''\n    return (a +\n            b)\n"
    assert bot.index_io.code_of(relaid) == bot.index_io.code_of("def f(a, b):\n    return a + b  # sum\n")
    assert bot.index_io.code_of("def f(a, b):\n    return a - b\n") != bot.index_io.code_of(relaid)
    assert bot.index_io.code_of(source.replace("lower()", "upper()", 1)) != base  # the tokenizer changed
