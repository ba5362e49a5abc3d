"""Paper upsert merge rules, change sequence and read queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.models import Paper
from bot.store import Store, UpsertCounts
from bot.store.papers import upsert_papers

T0 = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


def arxiv(pid: str = "2601.00001", **kw: object) -> Paper:
    base = Paper(
        id=pid,
        title="Sparse Attention for Long Contexts",
        abstract="We study sparse attention.",
        authors=("Ada Lovelace", "Alan Turing"),
        categories=("cs.CL", "cs.LG"),
        version=1,
        announced=date(2026, 1, 5),
        published=datetime(2026, 1, 2, 18, 0, tzinfo=UTC),
        updated=datetime(2026, 1, 2, 18, 0, tzinfo=UTC),
        comment="12 pages",
        sources=("arxiv",),
    )
    return replace(base, **kw)


def hf(pid: str = "2601.00001", **kw: object) -> Paper:
    base = Paper(
        id=pid,
        title="sparse attention for long contexts (HF title)",
        abstract="HF summary.",
        authors=("A. Lovelace",),
        hf_upvotes=12,
        hf_repo="https://github.com/org/repo",
        hf_keywords=("attention",),
        hf_date=date(2026, 1, 6),
        sources=("huggingface",),
    )
    return replace(base, **kw)


def test_upsert_is_idempotent(store: Store) -> None:
    batch = [arxiv("2601.00001"), arxiv("2601.00002", title="Other")]
    assert store.upsert_papers(batch, now=T0) == UpsertCounts(inserted=2)
    before = store.changes_since(0)
    assert store.upsert_papers(batch, now=T0 + timedelta(hours=1)) == UpsertCounts(unchanged=2)
    assert store.changes_since(0) == before
    assert store.max_seq() == 2
    got = store.get_papers(["2601.00001"])["2601.00001"]
    assert got == replace(arxiv(), first_seen=T0)


def test_newer_version_replaces_fields_but_never_erases_them(store: Store) -> None:
    store.upsert_papers([arxiv(doi="10.1/x")], now=T0)
    v2 = arxiv(
        version=2,
        title="Sparse Attention, Revisited",
        comment=None,
        doi=None,
        announced=date(2026, 1, 9),
        updated=datetime(2026, 1, 8, 12, tzinfo=UTC),
        authors=(),
    )
    assert store.upsert_papers([v2], now=T0 + timedelta(days=3)) == UpsertCounts(updated=1)
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert (p.version, p.title, p.updated) == (2, "Sparse Attention, Revisited", datetime(2026, 1, 8, 12, tzinfo=UTC))
    assert p.comment == "12 pages" and p.doi == "10.1/x"  # null new values keep the old ones
    assert p.authors == ("Ada Lovelace", "Alan Turing")  # empty list keeps the old one
    assert p.announced == date(2026, 1, 5)  # earliest announcement kept
    assert p.first_seen == T0  # never changes
    # An older version does not overwrite, but fills a gap.
    old = arxiv(version=1, title="Old title", journal_ref="Proc. X")
    assert store.upsert_papers([old], now=T0 + timedelta(days=4)) == UpsertCounts(updated=1)
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert (p.version, p.title, p.journal_ref) == (2, "Sparse Attention, Revisited", "Proc. X")
    assert store.upsert_papers([old], now=T0 + timedelta(days=5)) == UpsertCounts(unchanged=1)


def test_hf_record_merges_into_arxiv_row(store: Store) -> None:
    store.upsert_papers([arxiv()], now=T0)
    assert store.upsert_papers([hf()], now=T0 + timedelta(hours=2)) == UpsertCounts(updated=1)
    assert store.count_papers() == 1
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert p.title == "Sparse Attention for Long Contexts" and p.abstract == "We study sparse attention."
    assert p.authors == ("Ada Lovelace", "Alan Turing")
    assert (p.hf_upvotes, p.hf_repo, p.hf_keywords, p.hf_date) == (
        12,
        "https://github.com/org/repo",
        ("attention",),
        date(2026, 1, 6),
    )
    assert p.sources == ("arxiv", "huggingface")
    assert p.hf_url == "https://huggingface.co/papers/2601.00001"
    # Upvotes move; the earliest HF day is kept; arXiv replacing later keeps HF fields.
    store.upsert_papers([hf(hf_upvotes=40, hf_date=date(2026, 1, 7))], now=T0 + timedelta(days=1))
    store.upsert_papers([arxiv(version=2, title="New")], now=T0 + timedelta(days=2))
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert (p.title, p.hf_upvotes, p.hf_date, p.sources) == ("New", 40, date(2026, 1, 6), ("arxiv", "huggingface"))


def test_hf_only_row_is_filled_by_hf_then_replaced_by_arxiv(store: Store) -> None:
    store.upsert_papers([hf()], now=T0)
    store.upsert_papers([hf(title="HF title, fixed")], now=T0 + timedelta(hours=1))
    assert store.get_papers(["2601.00001"])["2601.00001"].title == "HF title, fixed"
    store.upsert_papers([arxiv()], now=T0 + timedelta(hours=2))
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert (p.title, p.categories, p.primary_category) == (arxiv().title, ("cs.CL", "cs.LG"), "cs.CL")
    assert p.sources == ("huggingface", "arxiv") and p.hf_upvotes == 12 and p.first_seen == T0


def test_changes_since_orders_by_seq_and_each_change_gets_a_new_max(store: Store) -> None:
    store.upsert_papers([arxiv("2601.00001"), arxiv("2601.00002"), arxiv("2601.00003")], now=T0)
    store.upsert_papers([arxiv("2601.00001", version=2, title="Changed")], now=T0 + timedelta(hours=1))
    changes = store.changes_since(0)
    assert [(s, p.id) for s, p in changes] == [(2, "2601.00002"), (3, "2601.00003"), (4, "2601.00001")]
    assert changes[-1][1].title == "Changed"
    assert [p.id for _, p in store.changes_since(3)] == ["2601.00001"]
    assert [p.id for _, p in store.changes_since(0, limit=1)] == ["2601.00002"]
    assert store.changes_since(4) == [] and store.max_seq() == 4


def test_duplicates_in_one_batch_and_across_batches_merge_into_one_row(store: Store) -> None:
    items = [arxiv("2601.00001"), hf("2601.00001"), arxiv("2601.00002"), arxiv("2601.00001", version=3, title="v3")]
    counts = upsert_papers(store.engine, items, now=T0, batch_size=2)
    assert counts == UpsertCounts(inserted=2, updated=2, unchanged=0)
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert (p.version, p.title, p.hf_upvotes, p.sources) == (3, "v3", 12, ("arxiv", "huggingface"))
    seqs = [s for s, _ in store.changes_since(0)]
    assert len(seqs) == 2 and seqs == sorted(seqs)


def test_timezones_are_normalised_to_utc_and_naive_datetimes_refused(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    store.upsert_papers([arxiv(published=datetime(2026, 1, 2, 19, 0, tzinfo=paris))], now=T0.astimezone(paris))
    p = store.get_papers(["2601.00001"])["2601.00001"]
    assert p.published == datetime(2026, 1, 2, 18, 0, tzinfo=UTC) and p.published.utcoffset() == timedelta(0)
    assert p.first_seen == T0 and p.first_seen.tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        store.upsert_papers([arxiv("2601.00009", published=datetime(2026, 1, 2))])


def test_reads_first_seen_window_iteration_and_counts(store: Store) -> None:
    store.upsert_papers([arxiv("2601.00001")], now=T0)
    store.upsert_papers([arxiv("2601.00002"), hf("2601.00003")], now=T0 + timedelta(days=1))
    store.upsert_papers([arxiv("2501.00004", first_seen=datetime(2025, 1, 1, tzinfo=UTC))], now=T0)  # importer case
    window = store.papers_first_seen(T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert [p.id for p in window] == ["2601.00002", "2601.00003"]
    assert store.papers_first_seen(T0, T0 + timedelta(days=1))[0].id == "2601.00001"  # [start, end)
    # news only: announced on arXiv (2026-01-05) or listed by HF (2026-01-06) on/after the day
    everything = (T0, T0 + timedelta(days=2))
    assert [p.id for p in store.papers_first_seen(*everything, news_since=date(2026, 1, 6))] == ["2601.00003"]
    news = store.papers_first_seen(*everything, news_since=date(2026, 1, 5))
    assert [p.id for p in news] == ["2601.00001", "2601.00002", "2601.00003"]
    assert [p.id for p in store.iter_papers(batch_size=2)] == ["2501.00004", "2601.00001", "2601.00002", "2601.00003"]
    assert store.count_papers() == 4
    assert set(store.get_papers(["2601.00003", "9999.99999"])) == {"2601.00003"}
    assert store.get_papers(["2501.00004"])["2501.00004"].first_seen == datetime(2025, 1, 1, tzinfo=UTC)
