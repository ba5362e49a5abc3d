"""Query evaluation over one immutable index snapshot (used only by ``bot.search``).

BM25 contributions are accumulated with numpy per segment and query token, in the query's token
order, with exactly rank_bm25's expression, so scores are bit-for-bit those of ``BM25Okapi`` except
for the (tiny) rounding of its average IDF. Filters become boolean masks from postings; what
postings cannot decide (phrases, multi-word author names, multi-word exclusions) is checked on the
fetched papers, lazily, in rank order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.models import Paper, SearchHit
from bot.postings import PaperIds, Postings, Segment
from bot.query import AuthorFilter, PaperText, Query, category_matches, filters_pass, text_passes
from bot.snippet import make_snippet
from bot.vocab import Vocab

if TYPE_CHECKING:
    from bot.search import CorpusStats

MAX_CHECKED = 2000  # papers fetched per search to check phrases/authors; beyond it ``total`` is estimated
_BLOCK = 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a search reads; replaced as a whole when papers are added."""

    segments: tuple[Segment, ...]
    n_slots: int
    alive: np.ndarray  # bool per slot
    doc_len: np.ndarray  # int32
    dates: np.ndarray  # int32 proleptic ordinal, 0 = unknown
    norm: np.ndarray  # float64 k1 * (1 - b + b * dl / avgdl)
    cat_names: tuple[str, ...]
    ids: PaperIds
    author_vocab: Vocab  # shared, append-only
    stats: CorpusStats

    @classmethod
    def empty(cls, author_vocab: Vocab, stats: CorpusStats) -> Snapshot:
        nothing = np.zeros(0, np.int32)
        return cls((), 0, np.zeros(0, bool), nothing, nothing, np.zeros(0), (), PaperIds.empty(), author_vocab, stats)


def _presence(snap: Snapshot, part: str, keys: Sequence[int | None]) -> np.ndarray:
    """Per slot: how many of ``keys`` (distinct) the document has in postings ``part``."""
    count = np.zeros(snap.n_slots, np.uint8 if len(keys) < 255 else np.int32)
    for seg in snap.segments:
        postings: Postings = getattr(seg, part)
        view = count[seg.base : seg.base + seg.size]
        for key in keys:
            if key is not None:
                start, end = postings.span(key)
                view[postings.docs[start:end]] += 1
    return count


def _has_all(snap: Snapshot, part: str, keys: Sequence[int | None]) -> np.ndarray:
    unique = list(dict.fromkeys(keys))
    if None in unique:
        return np.zeros(snap.n_slots, bool)
    return _presence(snap, part, unique) == len(unique)


def _term_keys(snap: Snapshot, terms: Sequence[str]) -> list[int | None]:
    vocab, size = snap.stats.vocab, len(snap.stats.dfs)
    return [t if (t := vocab.get(term)) is not None and t < size else None for term in terms]


def _postings(snap: Snapshot, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Global slots (intp) and term frequencies (uint8, or uint16) of one term across all segments.

    (Scoring very common terms densely per segment instead was measured slower.)
    """
    parts = [(seg, *seg.terms.span(key)) for seg in snap.segments]
    parts = [(seg, start, end) for seg, start, end in parts if start < end]
    slots = np.empty(sum(end - start for _, start, end in parts), np.intp)
    wide = any(seg.terms.tfs is not None and seg.terms.tfs.dtype == np.uint16 for seg, _, _ in parts)
    tfs = np.empty(len(slots), np.uint16 if wide else np.uint8)
    at = 0
    for seg, start, end in parts:
        np.add(seg.terms.docs[start:end], np.intp(seg.base), out=slots[at : at + end - start])
        tfs[at : at + end - start] = seg.terms.tfs[start:end]  # type: ignore[index]
        at += end - start
    return slots, tfs


@functools.lru_cache(maxsize=4)
def _numerators(k1: float, size: int) -> np.ndarray:
    """``tf * (k1 + 1)`` for every possible tf, in float64 like rank_bm25's."""
    return np.arange(size, dtype=np.float64) * (k1 + 1)


def _scores(snap: Snapshot, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """BM25 score per slot (rank_bm25's expression, in token order) and "has a token" per slot."""
    score = np.zeros(snap.n_slots)
    stats = snap.stats
    keyed = [(key, stats.idf(t)) for t, key in zip(tokens, _term_keys(snap, tokens), strict=True) if key is not None]
    hit = np.zeros(snap.n_slots, bool) if any(idf == 0 for _, idf in keyed) else None
    for key, idf in keyed:
        slots, tf = _postings(snap, key)
        np.add.at(score, slots, _contributions(stats.k1, idf, tf, snap.norm[slots]))
        if hit is not None:
            hit[slots] = True
    return score, score != 0 if hit is None else hit


def _contributions(k1: float, idf: float, tf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``idf * (tf * (k1 + 1) / (tf + norm))``, the operations rank_bm25 does, in its order."""
    part = _numerators(k1, 1 << (8 * tf.itemsize))[tf]
    part /= norm + tf
    part *= idf
    return part


def _token_presence(snap: Snapshot, tokens: Sequence[str], slots: Sequence[int]) -> list[set[str]]:
    """For each slot, which of ``tokens`` its document has."""
    keyed = [(t, key) for t, key in zip(tokens, _term_keys(snap, tokens), strict=True) if key is not None]
    out: list[set[str]] = [set() for _ in slots]
    for seg in snap.segments:
        mine = [i for i, s in enumerate(slots) if seg.base <= s < seg.base + seg.size]
        if not mine:
            continue
        local = np.array([slots[i] - seg.base for i in mine], np.uint16)
        for term, key in keyed:
            start, end = seg.terms.span(key)
            docs = seg.terms.docs[start:end]
            if not len(docs):
                continue
            pos = np.minimum(np.searchsorted(docs, local), len(docs) - 1)
            for i, has in zip(mine, docs[pos] == local, strict=True):
                if has:
                    out[i].add(term)
    return out


def _filter_mask(snap: Snapshot, q: Query, mask: np.ndarray) -> np.ndarray:
    if q.since:
        mask &= snap.dates >= q.since.toordinal()
    if q.until:
        mask &= (snap.dates > 0) & (snap.dates <= q.until.toordinal())
    for wanted, keep in ((q.categories, True), (q.exclude_categories, False)):
        if wanted:
            ids = [i for i, name in enumerate(snap.cat_names) if any(category_matches(w, (name,)) for w in wanted)]
            found = _presence(snap, "cats", ids) > 0
            mask &= found if keep else ~found
    for author in q.authors:
        mask &= _author_prefilter(snap, author)
    for author in q.exclude_authors:
        if not author.needs_text:
            mask &= ~_author_prefilter(snap, author)
    for phrase in q.excludes:
        if not phrase.needs_text:
            mask &= ~_has_all(snap, "terms", _term_keys(snap, phrase.required))
    for phrase in q.phrases:
        mask &= _has_all(snap, "terms", _term_keys(snap, phrase.required))
    return mask


def _author_prefilter(snap: Snapshot, author: AuthorFilter) -> np.ndarray:
    full = [t for t in author.tokens if len(t) > 1]
    if not full:
        return np.ones(snap.n_slots, bool)
    return _has_all(snap, "authors", [snap.author_vocab.get(t) for t in full])


def _check_mask(snap: Snapshot, q: Query, mask: np.ndarray) -> np.ndarray | None:
    """Slots whose paper must be fetched and checked, or None when postings decided everything."""
    if any(p.needs_text for p in q.phrases) or any(a.needs_text for a in q.authors):
        return mask
    check = np.zeros(snap.n_slots, bool)
    for phrase in q.excludes:
        if phrase.needs_text:
            check |= _has_all(snap, "terms", _term_keys(snap, phrase.required))
    for author in q.exclude_authors:
        if author.needs_text:
            check |= _author_prefilter(snap, author)
    check &= mask
    return check if check.any() else None


def _top(keys: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best slots under ``mask``: highest key first, then highest slot (newest).

    Only slots whose key reaches the k-th largest maximum of 64-slot blocks can be among them (k
    blocks each hold a key at least that large). That bound is first taken over all keys, which
    is exact whenever k masked slots reach it; otherwise over the masked keys.
    """
    if k <= 0 or not len(keys):
        return np.zeros(0, np.intp)
    cand = _above_block_bound(keys, k)
    if cand is not None:
        cand = cand[mask[cand]]
    if cand is None or len(cand) < k:
        cand = _above_block_bound(np.where(mask, keys, -np.inf), k)
        cand = np.flatnonzero(mask) if cand is None else cand[mask[cand]]
    return cand[np.lexsort((-cand, -keys[cand]))[:k]]


def _above_block_bound(keys: np.ndarray, k: int) -> np.ndarray | None:
    full = len(keys) - len(keys) % _BLOCK
    blocks = keys[:full].reshape(-1, _BLOCK).max(axis=1)
    if len(blocks) <= k:
        return None
    bound = np.partition(blocks, len(blocks) - k)[len(blocks) - k]
    return np.flatnonzero(keys >= bound) if bound > -np.inf else None


def rank(
    snap: Snapshot, q: Query, limit: int, offset: int, fetch: Callable[[Sequence[str]], Mapping[str, Paper]]
) -> tuple[int, tuple[SearchHit, ...], bool]:
    """``(total, hits, estimated)`` of one result page; ``estimated`` when not every candidate was checked."""
    if q.tokens:
        score, mask = _scores(snap, q.tokens)
        mask &= snap.alive
        keys = score
    else:
        mask, keys = snap.alive.copy(), snap.dates.astype(np.float64)
    mask = _filter_mask(snap, q, mask)
    check = _check_mask(snap, q, mask)
    want = offset + limit
    if check is None:
        ranked = _top(keys, mask, want)[offset:].tolist()
        found = fetch([snap.ids[s] for s in ranked])
        papers = {s: p for s in ranked if (p := found.get(snap.ids[s])) is not None}
        total, page = int(np.count_nonzero(mask)), [s for s in ranked if s in papers]
        estimated = False
    else:
        papers = {}
        total, passed, estimated = _checked(snap, q, keys, mask, check, want, fetch, papers)
        page = passed[offset:want]
    distinct = list(dict.fromkeys(q.tokens))
    present = _token_presence(snap, distinct, page)
    terms = frozenset(distinct)
    hits = tuple(
        _hit(q, papers[s], float(keys[s]) if q.tokens else 0.0, have, terms)
        for s, have in zip(page, present, strict=True)
    )
    return total, hits, estimated


def _checked(
    snap: Snapshot,
    q: Query,
    keys: np.ndarray,
    mask: np.ndarray,
    check: np.ndarray,
    want: int,
    fetch: Callable[[Sequence[str]], Mapping[str, Paper]],
    papers: dict[int, Paper],
) -> tuple[int, list[int], bool]:
    """Walk the slots in rank order, checking flagged ones on the fetched paper, until a page is full."""
    size = int(np.count_nonzero(mask))
    passed: list[int] = []
    done = checked = rejected = missing = flagged_missing = 0
    k = min(size, 2 * want)
    wants_text = bool(q.phrases or q.excludes)  # author filters alone never need the abstract analysed
    counted = any(not p.words for p in (*q.phrases, *q.excludes))
    while True:
        ranked = _top(keys, mask, k)[done:].tolist()
        found = fetch([snap.ids[s] for s in ranked])
        for slot in ranked:
            paper = found.get(snap.ids[slot])
            if paper is None:
                missing += 1
                flagged_missing += int(check[slot])
                continue
            if check[slot]:
                checked += 1
                if not filters_pass(q, paper) or (
                    wants_text and not text_passes(q, PaperText.of(paper, counted=counted), all_terms=False)
                ):
                    rejected += 1
                    continue
            papers[slot] = paper
            passed.append(slot)
        done = k
        if len(passed) >= want or k >= size or checked >= MAX_CHECKED:
            break
        k = min(size, k * 4, done + MAX_CHECKED - checked)  # never fetch far past the check budget
    total = size - missing - rejected
    unchecked = int(np.count_nonzero(check)) - checked - flagged_missing if done < size else 0
    if unchecked and checked:  # estimate the unchecked rest from the rejection rate so far
        total -= round(unchecked * rejected / checked)
    return max(total, len(passed)), passed, bool(unchecked)


def _hit(q: Query, paper: Paper, score: float, present: set[str], terms: frozenset[str]) -> SearchHit:
    """A hit; ``present`` are the query tokens the indexed document has, ``terms`` all of them."""
    matched = tuple(p.display for p in q.positives if all(t in present for t in p.required))
    return SearchHit(paper, score, matched, make_snippet(paper.abstract, terms))
