"""SearchIndex: scores equal rank_bm25's, incremental updates equal fresh builds, concurrency, semantics."""

from __future__ import annotations

import dataclasses
import itertools
import random
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

import bot.postings
import bot.ranking
import bot.search
from bot.errors import QueryError
from bot.models import Paper, SearchPage
from bot.search import SearchIndex
from bot.text import document_text, tokenize
from tests.conftest import corpus_papers


@pytest.fixture(scope="module")
def real() -> list[Paper]:
    """400 real abstracts from the shared corpus."""
    return corpus_papers(400)


@pytest.fixture(params=[bot.postings.SEGMENT_DOCS, 37], ids=["one-segment", "small-segments"])
def segment_docs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a test with real segments and again with 37-document segments (many segments, rollovers)
    and adds split into batches of 45 papers."""
    monkeypatch.setattr(bot.postings, "SEGMENT_DOCS", request.param)
    monkeypatch.setattr(bot.search, "SEGMENT_DOCS", request.param)
    if request.param < 1000:
        monkeypatch.setattr(bot.search, "_ADD_BATCH", 45)
    return int(request.param)


def queries_for(papers: Sequence[Paper]) -> list[str]:
    out = ["model", "model model", "GPT-4o", "zzzunseenword", "diffusion models image", "vision-language"]
    for p in papers[::7]:
        words = [w for w in p.title.split() if tokenize(w)]
        out += [" ".join(words[i : i + 2]) for i in range(0, len(words) - 1, 3)]
    return out


def assert_close(a: float, b: float) -> None:
    assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (a, b)


def test_scores_equal_rank_bm25(real: list[Paper], segment_docs: int) -> None:
    index = SearchIndex.build(real)
    tokens = [tokenize(document_text(p.title, p.abstract)) for p in real]
    stock = BM25Okapi(tokens)
    stats = index.stats()
    assert stats.n_docs == len(real) and stats.avgdl == stock.avgdl
    assert_close(stats.average_idf, stock.average_idf)
    assert (stats.k1, stats.b, stats.epsilon) == (stock.k1, stock.b, stock.epsilon)
    floored = [t for t, v in stock.idf.items() if v == stock.epsilon * stock.average_idf]
    assert floored  # the negative-IDF floor is exercised
    for term in list(stock.idf)[::5] + floored:
        assert_close(stats.idf(term), stock.idf[term])
    position = {p.id: i for i, p in enumerate(real)}
    checked = 0
    for text in queries_for(real):
        query_tokens = tokenize(text)
        expected = stock.get_scores(query_tokens)
        page = index.search(text, limit=len(real))
        having = [i for i, doc in enumerate(tokens) if set(query_tokens) & set(doc)]
        assert page.total == len(having) == len(page.hits)
        for hit in page.hits:
            assert_close(hit.score, float(expected[position[hit.paper.id]]))
            checked += 1
        assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)
    assert checked > 5000


def test_incremental_adds_equal_a_fresh_build(real: list[Paper], segment_docs: int) -> None:
    fresh = SearchIndex.build(real)
    grown = SearchIndex.build(real[:150])
    grown.add(real[150:300])
    grown.add(real[300:])
    a, b = fresh.stats(), grown.stats()
    assert (a.n_docs, a.avgdl) == (b.n_docs, b.avgdl)
    assert_close(a.average_idf, b.average_idf)
    for text in queries_for(real)[:40]:
        x, y = fresh.search(text, limit=50), grown.search(text, limit=50)
        assert x.total == y.total
        assert [h.paper.id for h in x.hits] == [h.paper.id for h in y.hits]
        for h1, h2 in zip(x.hits, y.hits, strict=True):
            assert_close(h1.score, h2.score)


def test_update_of_an_existing_id_equals_a_fresh_build(real: list[Paper], segment_docs: int) -> None:
    papers = real[:120]
    index = SearchIndex.build(papers)
    changed = dataclasses.replace(papers[5], title="Quokka counting", abstract="We count quokkas on Rottnest Island.")
    twice = [
        dataclasses.replace(papers[9], abstract="first zebra version"),
        dataclasses.replace(papers[9], abstract=""),
    ]
    index.add([changed, *twice])
    final = [changed if p.id == changed.id else twice[-1] if p.id == twice[-1].id else p for p in papers]
    fresh = SearchIndex.build(final)
    assert len(index) == len(papers) and changed.id in index
    assert [h.paper.id for h in index.search("quokka").hits] == [changed.id]
    assert index.search("zebra").total == 0  # the later of two versions in one batch wins
    old_only = next(t for t in tokenize(papers[5].abstract) if fresh.stats().df(t) == 0)
    assert index.search(old_only).total == 0 and index.stats().df(old_only) == 0
    assert (index.stats().n_docs, index.stats().avgdl) == (fresh.stats().n_docs, fresh.stats().avgdl)
    assert_close(index.stats().average_idf, fresh.stats().average_idf)
    for text in queries_for(final)[:30]:
        got = {h.paper.id: h.score for h in index.search(text, limit=200).hits}
        want = {h.paper.id: h.score for h in fresh.search(text, limit=200).hits}
        assert got.keys() == want.keys()
        for key, score in want.items():
            assert_close(got[key], score)


def synthetic(n: int, start: int, seed: int) -> list[tuple[Paper, list[str]]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)]
    return [
        (Paper(id=f"x:{start + i}", title="", abstract=""), ["common", *rng.choices(words, k=rng.randint(3, 30))])
        for i in range(n)
    ]


def test_concurrent_searches_see_consistent_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.postings, "SEGMENT_DOCS", 64)
    monkeypatch.setattr(bot.search, "SEGMENT_DOCS", 64)
    base, batches = synthetic(100, 0, 1), [synthetic(25, 100 + 25 * i, 2 + i) for i in range(16)]
    index = SearchIndex()
    index.add_tokens(base)
    seen: list[tuple[int, tuple[tuple[str, float], ...]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                page = index.search("common w3", limit=5)
                seen.append((page.total, tuple((h.paper.id, h.score) for h in page.hits)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for batch in batches:
        index.add_tokens(batch)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    expected = {}
    for i in range(len(batches) + 1):
        fresh = SearchIndex()
        fresh.add_tokens(base + [d for b in batches[:i] for d in b])
        page = fresh.search("common w3", limit=5)
        expected[page.total] = tuple((h.paper.id, h.score) for h in page.hits)
    assert len(seen) > 20
    for total, hits in seen:
        assert total in expected, total
        assert [h[0] for h in hits] == [h[0] for h in expected[total]]
        for (_, got), (_, want) in zip(hits, expected[total], strict=True):
            assert_close(got, want)


def doc(pid: str, title: str, abstract: str = "", **kw: object) -> Paper:
    return Paper(id=pid, title=title, abstract=abstract, **kw)  # type: ignore[arg-type]


def ids(page: SearchPage) -> list[str]:
    return [h.paper.id for h in page.hits]


PHRASES = [
    doc("p1", "Vision transformer for images"),
    doc("p2", "Transformer based vision"),
    doc("p3", "A vision-transformer hybrid"),
    doc("p4", "Convolutional networks for vision"),
    doc("p5", "Survey of vision transformer methods"),
]


def test_phrases_are_required_and_checked_in_order() -> None:
    index = SearchIndex.build(PHRASES)
    page = index.search('"vision transformer"')
    assert sorted(ids(page)) == ["p1", "p3", "p5"] and page.total == 3
    assert ids(index.search('"vision transformer" images'))[0] == "p1"
    assert sorted(ids(index.search('vision -"vision transformer"'))) == ["p2", "p4"]
    assert sorted(ids(index.search("vision -transformer"))) == ["p4"]
    assert ids(index.search('"transformer vision"')) == []
    assert sorted(ids(index.search('"vision transformer" -survey'))) == ["p1", "p3"]
    assert index.search('"vision transformer"').hits[0].matched_terms == ('"vision transformer"',)


def test_phrase_total_is_exact_when_all_candidates_are_checked_and_estimated_beyond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    papers = [doc(f"d{i}", "deep learning" if i % 2 else "learning deep") for i in range(300)]
    index = SearchIndex.build(papers)
    assert index.search('"deep learning"', limit=300).total == 150
    assert not index.search('"deep learning"', limit=300).estimated
    assert not index.search("deep learning", limit=5).estimated  # postings decide plain terms exactly
    monkeypatch.setattr(bot.ranking, "MAX_CHECKED", 20)
    page = index.search('"deep learning"', limit=5)
    assert len(page.hits) == 5 and all(h.paper.title == "deep learning" for h in page.hits)
    assert 110 <= page.total <= 190 and page.estimated  # estimated from the checked share


def test_undecidable_filters_fetch_at_most_the_check_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """An initials-only ``author:`` filter that matches nobody stops after MAX_CHECKED papers."""
    store = FakeStore()
    store.upsert([doc(f"b{i}", "graph learning", authors=("Ann Smith",)) for i in range(3000)])
    index = SearchIndex.from_store(store)
    monkeypatch.setattr(bot.ranking, "MAX_CHECKED", 100)
    store.fetched.clear()
    page = index.search('graph author:"q z"')
    assert page.hits == () and page.total == 0
    assert 100 <= len(store.fetched) <= 100 + 2 * 10  # the budget, plus at most the first page's batch
    store.fetched.clear()
    assert len(index.search('graph author:"a s"').hits) == 10
    assert len(store.fetched) <= 2 * 10


def test_filters() -> None:
    day = date(2025, 6, 1)
    papers = [
        doc("a1", "Agents", authors=("Yann LeCun", "Li Wei"), categories=("cs.AI", "cs.CL"), announced=day),
        doc("a2", "Agents", authors=("Wei Li",), categories=("cs.CL",), announced=day + timedelta(days=1)),
        doc("a3", "Agents", authors=("Ann Smith",), categories=("math.OC",), announced=day + timedelta(days=2)),
        doc("a4", "Agents", authors=("Yann Dauphin",), categories=("cs.LG",)),  # no date
    ]
    index = SearchIndex.build(papers)

    def found(q: str) -> list[str]:
        return sorted(ids(index.search(q)))

    assert found("agents cat:cs.CL") == ["a1", "a2"]
    assert found("agents cat:cs") == ["a1", "a2", "a4"]
    assert found("agents -cat:cs") == ["a3"]
    assert found("agents cat:math cat:cs.LG") == ["a3", "a4"]
    assert found('agents author:"Yann LeCun"') == ["a1"]
    assert found('agents author:"Y. LeCun"') == ["a1"]
    assert found("agents author:yann") == ["a1", "a4"]
    assert found('agents author:"Li Wei"') == ["a1", "a2"]  # word order is free
    assert found("agents author:lecun author:wei") == ["a1"]
    assert found('agents -author:"Wei Li"') == ["a3", "a4"]
    assert found("agents -author:smith") == ["a1", "a2", "a4"]
    assert found("agents since:2025-06-02") == ["a2", "a3"]
    assert found("agents until:2025-06-01") == ["a1"]
    assert ids(index.search("since:2025-01-01")) == ["a3", "a2", "a1"]  # filters only: newest first
    assert index.search("cat:cs").hits[0].score == 0.0


def test_model_names_rank_and_match() -> None:
    papers = [doc(f"g{i}", "GPT baselines", "We compare GPT models with GPT prompts.") for i in range(8)]
    papers += [
        doc("4o", "Evaluating GPT-4o", "GPT-4o is tested."),
        doc("4", "Evaluating GPT-4", "GPT-4 is tested."),
        doc("qwen", "Qwen2.5-7B fine-tuning", "We tune Qwen2.5-7B."),
        doc("bert", "A BERT-based ranker", "BERT-based."),
    ]
    index = SearchIndex.build(papers)
    assert ids(index.search("GPT-4o"))[0] == "4o"
    assert ids(index.search("gpt4o"))[0] == "4o"
    assert index.search("gpt4o").hits[0].matched_terms == ("gpt4o",)
    assert ids(index.search("qwen2.5"))[0] == "qwen"
    assert ids(index.search("Qwen2.5-7B")) == ["qwen"]
    for q in ["bert", "BERT-based", "bert based"]:
        assert ids(index.search(q)) == ["bert"], q


def test_snippets_mark_matched_terms() -> None:
    filler = " ".join(["Background sentence without the words."] * 30)
    papers = [doc("s1", "Title", f"{filler} Our diffusion model distills (Diffusion-based) samples. {filler}")]
    index = SearchIndex.build(papers)
    hit = index.search("diffusion distillation").hits[0]
    snippet = hit.snippet
    assert snippet.text.startswith("…") and snippet.text.endswith("…") and len(snippet.text) <= 302
    assert [snippet.text[s:e] for s, e in snippet.spans] == ["diffusion", "distills", "Diffusion-based"]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(snippet.spans))
    assert "**diffusion** model **distills**" in snippet.marked()
    assert hit.matched_terms == ("diffusion", "distillation")
    short = SearchIndex.build([doc("s2", "Diffusion", "Short abstract.\nWith a wrap.")]).search("diffusion").hits[0]
    assert short.snippet.text == "Short abstract. With a wrap." and short.snippet.spans == ()
    assert short.matched_terms == ("diffusion",)  # found in the title


def test_pagination(real: list[Paper]) -> None:
    index = SearchIndex.build(real)
    everything = ids(index.search("learning model", limit=60))
    pages = [index.search("learning model", limit=10, offset=o) for o in range(0, 60, 10)]
    assert [i for p in pages for i in ids(p)] == everything
    assert all(p.total == pages[0].total for p in pages) and pages[2].offset == 20
    beyond = index.search("learning model", offset=10_000)
    assert beyond.hits == () and beyond.total == pages[0].total
    with pytest.raises(ValueError, match="limit and offset"):
        index.search("x", offset=-1)


class FakeStore:
    """The store's change feed in memory: every upsert gets the next sequence number."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, Paper]] = {}
        self.seq = 0
        self.fetched: list[str] = []

    def upsert(self, papers: Sequence[Paper]) -> None:
        for p in papers:
            self.seq += 1
            self.rows[p.id] = (self.seq, p)

    def changes_since(self, seq: int, limit: int | None = None) -> list[tuple[int, Paper]]:
        rows = sorted((r for r in self.rows.values() if r[0] > seq), key=lambda r: r[0])
        return rows[:limit] if limit else rows

    def max_seq(self) -> int:
        return self.seq

    def iter_papers(self) -> Iterator[Paper]:
        return iter([p for _, p in sorted(self.rows.values(), key=lambda r: r[0])])

    def get_papers(self, ids: Sequence[str]) -> Mapping[str, Paper]:
        self.fetched += ids
        return {i: self.rows[i][1] for i in ids if i in self.rows}


def test_from_store_and_refresh(real: list[Paper]) -> None:
    store = FakeStore()
    store.upsert(real[:100])
    steps: list[int] = []
    index = SearchIndex.from_store(store, progress=steps.append)
    assert sum(steps) == 100 and len(index) == 100 and index.last_seq == store.seq
    assert index.refresh(store) == 0
    store.upsert([*real[100:130], dataclasses.replace(real[0], abstract="Now about quokkas.")])
    assert index.refresh(store, batch=7) == 31
    assert len(index) == 130 and index.last_seq == store.seq
    page = index.search("quokkas")
    assert ids(page) == [real[0].id] and page.hits[0].paper.abstract == "Now about quokkas."
    assert real[0].id in store.fetched  # hits come from the store


def test_papers_missing_from_the_store_are_skipped() -> None:
    store = FakeStore()
    store.upsert([doc("m1", "Quokka one"), doc("m2", "Quokka two")])
    index = SearchIndex.from_store(store)
    del store.rows["m1"]
    assert ids(index.search("quokka")) == ["m2"]


def test_empty_index() -> None:
    index = SearchIndex()
    assert index.search("anything").total == 0 and index.search("cat:cs.CL").hits == ()
    assert len(index) == 0 and "x" not in index and index.stats().idf("x") == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.integers(0, sys.maxunicode), max_size=100).map(lambda cs: "".join(map(chr, cs))),
        st.lists(st.sampled_from(['"', "-", "vision", "transformer", "author:", "cat:cs", "since:2025", " ", "\x00",
                                  "the", "GPT-4o", "'", "\\", "\ud800"]), max_size=20).map("".join),
    )
)  # fmt: skip
def test_any_query_gives_a_page_or_a_query_error(text: str) -> None:
    try:
        page = _HYPOTHESIS_INDEX.search(text, limit=3)
    except QueryError as exc:
        assert str(exc)
        return
    assert isinstance(page, SearchPage) and len(page.hits) <= 3 and page.total >= len(page.hits)


_HYPOTHESIS_INDEX = SearchIndex.build(
    [*PHRASES, doc("g", "GPT-4o agents", authors=("Ann Smith",), categories=("cs.AI",))]
)
