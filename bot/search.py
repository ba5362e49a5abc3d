"""BM25 search over the paper archive: :class:`SearchIndex` and :class:`CorpusStats`.

The only module that imports ``rank_bm25``: scores equal ``rank_bm25.BM25Okapi``'s (same k1, b,
epsilon and IDF with its floor at ``epsilon * average_idf``) for the same token lists, but come
from a compact inverted index (:mod:`bot.postings`) scored with numpy. The index keeps no
abstracts: per document it holds the paper id, date, length, and postings of its terms, author
name tokens and categories. Full papers come from ``fetch_papers`` (the store) for the hits only:
for snippets and for the checks postings cannot decide (phrases, multi-word author names).

Semantics: OR over the query's terms ranked by BM25 (phrase words count as terms); phrases are
required; exclusions remove papers; ``author:``/``cat:``/``since:``/``until:`` filter. Ties rank the
newer document first. A query with filters only lists matching papers newest first.

Threading: one writer at a time (``add``/``refresh``, under a lock) builds new arrays and then
swaps one snapshot reference; searches read whichever snapshot was current when they started.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol

import numpy as np
from rank_bm25 import BM25Okapi

from bot.models import Paper, SearchPage
from bot.postings import SEGMENT_DOCS, Batch, PaperIds, Postings, Segment
from bot.query import Query, parse_query
from bot.ranking import Snapshot, rank
from bot.text import bulk_memo, chunk_terms, chunks, clear_caches, document_text, name_tokens
from bot.vocab import Vocab

_BM25 = inspect.signature(BM25Okapi.__init__).parameters
K1: float = _BM25["k1"].default
B: float = _BM25["b"].default
EPSILON: float = _BM25["epsilon"].default
_ADD_BATCH = 5_000  # papers tokenized per step: bounds the build's temporary memory (~280 MB peak at 100k)
_FREEZE_AT = 4096  # new terms kept in a dict before they move into the compact arrays

FetchPapers = Callable[[Sequence[str]], Mapping[str, Paper]]


class PaperSource(Protocol):
    """What the index needs from the store (duck-typed; see ``bot.store``)."""

    def changes_since(self, seq: int, limit: int | None = None) -> list[tuple[int, Paper]]: ...

    def max_seq(self) -> int: ...

    def iter_papers(self) -> Iterable[Paper]: ...


def bm25_idf(n_docs: int, df: int) -> float:
    """``BM25Okapi._calc_idf``'s raw IDF (before the negative-IDF floor)."""
    return math.log(n_docs - df + 0.5) - math.log(df + 0.5)


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """An immutable view of the archive's BM25 statistics, shared by search and digests."""

    n_docs: int = 0
    avgdl: float = 0.0
    average_idf: float = 0.0
    k1: float = K1
    b: float = B
    epsilon: float = EPSILON
    vocab: Vocab = field(default_factory=Vocab, repr=False)
    dfs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32), repr=False)

    def df(self, term: str) -> int:
        tid = self.vocab.get(term)
        return int(self.dfs[tid]) if tid is not None and tid < len(self.dfs) else 0

    def idf(self, term: str, min_df: int = 0) -> float:
        """BM25Okapi's IDF; 0.0 for a term no document has, unless ``min_df`` counts it as present."""
        df = max(self.df(term), min_df)
        if df == 0:
            return 0.0
        value = bm25_idf(max(self.n_docs, df), df)
        return self.epsilon * self.average_idf if value < 0 else value

    def score(self, query: Iterable[str], counts: Mapping[str, int], length: int, min_df: int = 0) -> float:
        """BM25 of ``query`` tokens against one document given its term counts and length."""
        avgdl = self.avgdl if self.avgdl > 0 else max(length, 1)
        norm = self.k1 * (1 - self.b + self.b * length / avgdl)
        total = 0.0
        for term in query:
            tf = counts.get(term, 0)
            if tf:
                total += self.idf(term, min_df) * (tf * (self.k1 + 1) / (tf + norm))
        return total


class _ChunkIds(dict[str, tuple[int, ...]]):
    """Chunk -> its terms' ids: skips a dictionary lookup per token when indexing many papers."""

    def __init__(self, vocab: Vocab) -> None:
        super().__init__()
        self.vocab = vocab

    def __missing__(self, chunk: str) -> tuple[int, ...]:
        value = self[chunk] = tuple(map(self.vocab.id_of, chunk_terms(chunk)))
        return value


def _text(paper: Paper) -> str:
    return document_text(paper.title, paper.abstract)


class SearchIndex:
    """An incrementally updated BM25 index; see the module docstring."""

    def __init__(self, fetch_papers: FetchPapers | None = None) -> None:
        self._fetch = fetch_papers
        self._papers: dict[str, Paper] = {}  # kept only without fetch_papers (tests, small corpora)
        self._vocab, self._author_vocab, self._cat_vocab = Vocab(), Vocab(), Vocab()
        self._lock = threading.Lock()
        self._last_seq = 0
        self._refresh_lock = threading.Lock()
        self._snap = Snapshot.empty(self._author_vocab, CorpusStats())

    # --- building -------------------------------------------------------------------------

    @classmethod
    def build(cls, papers: Iterable[Paper], fetch_papers: FetchPapers | None = None) -> SearchIndex:
        index = cls(fetch_papers)
        index.add(papers)
        return index

    @classmethod
    def from_store(
        cls,
        store: PaperSource,
        progress: Callable[[int], object] | None = None,
        fetch_papers: FetchPapers | None = None,
    ) -> SearchIndex:
        """Index every stored paper, then catch up with changes made meanwhile.

        ``fetch_papers`` defaults to ``store.get_papers``. ``progress`` is called with the number of
        papers each step indexed (``tqdm.update`` fits).
        """
        index = cls(fetch_papers or getattr(store, "get_papers", None))
        seq = store.max_seq()
        batch: list[Paper] = []
        with bulk_memo():
            for paper in chain(store.iter_papers(), [None]):
                if paper is not None:
                    batch.append(paper)
                if len(batch) >= _ADD_BATCH or (paper is None and batch):
                    added = index._add(batch)  # the vocabularies are compacted once, at the end
                    batch = []
                    if progress:
                        progress(added)
            index._last_seq = seq
            index.refresh(store)
        index.compact()
        return index

    def export_state(self) -> tuple[int, Snapshot, list[tuple[np.ndarray, np.ndarray]]]:
        """``(last_seq, snapshot, [(blob, offsets)] of the term, author and category vocabularies)``,
        taken together (``bot.index_io`` saves them)."""
        with self._refresh_lock, self._lock:
            vocabs = []
            for vocab in (self._vocab, self._author_vocab, self._cat_vocab):
                vocab.freeze()
                vocabs.append(vocab.arrays())
            return self._last_seq, self._snap, vocabs

    @classmethod
    def restore(
        cls,
        last_seq: int,
        vocabs: Sequence[Vocab],
        segments: Sequence[Segment],
        ids: PaperIds,
        per_slot: tuple[np.ndarray, np.ndarray, np.ndarray],
        dfs: np.ndarray,
        fetch_papers: FetchPapers | None = None,
    ) -> SearchIndex:
        """The index ``export_state`` described (``bot.index_io`` checks the parts fit together first).

        ``per_slot`` is (alive, doc_len, dates).
        """
        index = cls(fetch_papers)
        index._vocab, index._author_vocab, index._cat_vocab = vocabs
        alive, doc_len, dates = per_slot
        empty = Snapshot.empty(index._author_vocab, CorpusStats())
        index._snap = index._snapshot(empty, tuple(segments), ids, alive.astype(bool), doc_len, dates, dfs)
        index._last_seq = last_seq
        return index

    def refresh(self, store: PaperSource, batch: int = 5000) -> int:
        """Index the store's changes since the last refresh; returns how many papers were (re)indexed."""
        done = 0
        with self._refresh_lock:
            try:
                while True:
                    rows = store.changes_since(self._last_seq, limit=batch)
                    if not rows:
                        return done
                    done += self._add(paper for _, paper in rows)
                    self._last_seq = max(self._last_seq, max(seq for seq, _ in rows))
                    if len(rows) < batch:
                        return done
            finally:
                self._freeze(_FREEZE_AT)

    def add(self, papers: Iterable[Paper]) -> int:
        """Index new papers; a paper id seen before replaces its old document. Returns the count."""
        added = self._add(papers)
        self._freeze(_FREEZE_AT)
        return added

    def _add(self, papers: Iterable[Paper]) -> int:
        latest = list({p.id: p for p in papers}.values())
        for start in range(0, len(latest), _ADD_BATCH):  # bounded temporary memory
            part = latest[start : start + _ADD_BATCH]
            with self._lock:
                ids_of = _ChunkIds(self._vocab)  # chunk -> term ids, for this batch only (a longer-lived
                # memo saves ~10% of the build but pins ~20 MB of freed heap afterwards)
                flat, lengths = array("i"), array("i")  # not GC-tracked, unlike a list per paper
                for paper in part:
                    before = len(flat)
                    flat.extend(chain.from_iterable(map(ids_of.__getitem__, chunks(_text(paper)))))
                    lengths.append(len(flat) - before)
                self._apply(part, np.frombuffer(flat, np.int32), np.frombuffer(lengths, np.int32))
        return len(latest)

    def add_tokens(self, docs: Sequence[tuple[Paper, Sequence[str]]]) -> int:
        """Index papers with their already tokenized text (benchmarks, and rank_bm25 comparisons)."""
        latest = list({p.id: (p, tokens) for p, tokens in docs}.values())
        if latest:
            with self._lock:
                flat = np.fromiter(map(self._vocab.id_of, chain.from_iterable(t for _, t in latest)), np.int32)
                lengths = np.fromiter((len(t) for _, t in latest), np.int32, len(latest))
                self._apply([p for p, _ in latest], flat, lengths)
        self._freeze(_FREEZE_AT)
        return len(latest)

    def _freeze(self, at_least: int) -> None:
        with self._lock:
            for vocab in (self._vocab, self._author_vocab, self._cat_vocab):
                if vocab.unfrozen >= at_least:
                    vocab.freeze()

    def compact(self) -> None:
        """After a bulk build: every term into the compact vocabularies, and the tokenizer's memos dropped.

        Nothing the build allocated then stays behind as small objects, so the freed heap can go
        back to the OS (``bot.__main__.release_free_memory``).
        """
        self._freeze(1)
        clear_caches()

    def _apply(self, papers: Sequence[Paper], term_ids: np.ndarray, lengths: np.ndarray) -> None:
        """Add documents (under the writer lock): tombstone old versions, extend segments, swap the snapshot.

        ``term_ids`` are the documents' term ids one after another, ``lengths`` how many each has.
        """
        snap, n = self._snap, len(papers)
        batch, dates = self._batch(papers, term_ids, lengths)
        df = np.zeros(len(self._vocab), np.int64)
        df[: len(snap.stats.dfs)] = snap.stats.dfs
        alive = np.concatenate((snap.alive, np.ones(n, bool)))
        old = [s for s in snap.ids.latest_of([p.id for p in papers]) if s is not None and snap.alive[s]]
        if old:
            alive[old] = False
            dead = np.zeros(snap.n_slots, bool)
            dead[old] = True
            for seg in snap.segments:
                keys, counts = seg.terms.key_counts(dead[seg.base : seg.base + seg.size])
                df[keys] -= counts
        segments = list(snap.segments)
        tail = segments.pop() if segments and segments[-1].size < SEGMENT_DOCS else Segment.start(snap.n_slots)
        done = 0
        while done < n:
            take = min(n - done, SEGMENT_DOCS - tail.size)
            part = batch.select(done, done + take)
            new = Postings.from_occurrences(part.term_ids, part.term_docs, True)
            df[new.keys] += np.diff(new.offsets)
            tail = tail.extended(part, new)
            done += take
            if done < n:
                segments.append(tail)
                tail = Segment.start(tail.base + tail.size)
        segments.append(tail)
        if self._fetch is None:
            self._papers.update((p.id, p) for p in papers)
        ids = snap.ids.extended([p.id for p in papers])
        self._snap = self._snapshot(snap, tuple(segments), ids, alive, lengths, dates, df)

    def _batch(self, papers: Sequence[Paper], term_ids: np.ndarray, lengths: np.ndarray) -> tuple[Batch, np.ndarray]:
        """Flat (id, doc) occurrence arrays; repeated author tokens or categories collapse in Postings."""
        n = len(papers)
        numbers = np.arange(n, dtype=np.int32)

        def flat(vocab: Vocab, per_doc: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
            ids = np.fromiter(map(vocab.id_of, chain.from_iterable(per_doc)), np.int32)
            return ids, np.repeat(numbers, np.fromiter(map(len, per_doc), np.int64, n))

        authors = flat(self._author_vocab, [name_tokens(" ; ".join(p.authors)) for p in papers])
        cats = flat(self._cat_vocab, [[c.lower() for c in p.categories] for p in papers])
        dates = np.fromiter((p.date.toordinal() if p.date else 0 for p in papers), np.int32, n)
        return Batch(n, term_ids, np.repeat(numbers, lengths), *authors, *cats), dates

    def _snapshot(
        self,
        snap: Snapshot,
        segments: tuple[Segment, ...],
        ids: PaperIds,
        alive: np.ndarray,
        lengths: np.ndarray,
        dates: np.ndarray,
        df: np.ndarray,
    ) -> Snapshot:
        doc_len = np.concatenate((snap.doc_len, lengths))
        n_docs = int(alive.sum())
        avgdl = int(doc_len[alive].sum(dtype=np.int64)) / n_docs if n_docs else 0.0
        present = df[df > 0]
        idf_sum = float(np.sum(np.log(n_docs - present + 0.5) - np.log(present + 0.5)))
        average_idf = idf_sum / len(present) if len(present) else 0.0
        norm = K1 * (1 - B + B * doc_len / avgdl) if avgdl else np.full(len(doc_len), K1)
        stats = CorpusStats(n_docs, avgdl, average_idf, vocab=self._vocab, dfs=df.astype(np.int32))
        cat_names = tuple(self._cat_vocab)
        all_dates = np.concatenate((snap.dates, dates))
        for array_ in (alive, doc_len, all_dates, norm, stats.dfs):
            array_.flags.writeable = False  # shared with searching threads: never modified in place
        return Snapshot(
            segments, len(doc_len), alive, doc_len, all_dates, norm, cat_names, ids, self._author_vocab, stats
        )

    # --- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._snap.stats.n_docs

    def __contains__(self, paper_id: object) -> bool:
        snap = self._snap
        slot = snap.ids.latest(paper_id) if isinstance(paper_id, str) else None
        return slot is not None and bool(snap.alive[slot])

    def stats(self) -> CorpusStats:
        return self._snap.stats

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def memory_bytes(self) -> int:
        """Bytes held in numpy arrays and compact vocabularies (not the few recent terms' dict entries)."""
        snap = self._snap
        arrays = (snap.alive, snap.doc_len, snap.dates, snap.norm, snap.stats.dfs)
        vocabs = sum(v.nbytes for v in (self._vocab, self._author_vocab, self._cat_vocab))
        return sum(s.nbytes for s in snap.segments) + sum(a.nbytes for a in arrays) + snap.ids.nbytes + vocabs

    def search(self, query: str | Query, limit: int = 10, offset: int = 0) -> SearchPage:
        """One page of results; raises QueryError for an invalid query string."""
        started = time.perf_counter()
        parsed = parse_query(query) if isinstance(query, str) else query
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        total, hits, estimated = rank(self._snap, parsed, limit, offset, self.fetch)
        return SearchPage(parsed.raw, total, hits, offset, (time.perf_counter() - started) * 1000, estimated)

    def fetch(self, ids: Sequence[str]) -> Mapping[str, Paper]:
        if self._fetch is None:
            return {i: self._papers[i] for i in ids if i in self._papers}
        return self._fetch(ids)
