"""Compact, immutable inverted lists for the search index (used only by ``bot.search``).

A :class:`Segment` holds up to 65,536 consecutive document slots, so document ids inside it are
``uint16``; term frequencies are ``uint8`` (``uint16`` only for a segment where some frequency
exceeds 255). Each :class:`Postings` is CSR: sorted unique keys (term, author-token or category
ids), offsets, then the sorted local doc ids of every key. Nothing is modified after construction;
adding documents builds new arrays, so searching threads can keep using an older segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SEGMENT_DOCS = 1 << 16
_DOC_BITS = 16


@dataclass(frozen=True, slots=True)
class Postings:
    """Sorted unique ``keys`` -> ``docs[offsets[i]:offsets[i + 1]]`` (and ``tfs`` when counted)."""

    keys: np.ndarray  # int32
    offsets: np.ndarray  # int64, len(keys) + 1
    docs: np.ndarray  # uint16, local doc ids, sorted within a key
    tfs: np.ndarray | None  # uint8/uint16 term frequencies, or None for presence-only lists

    @classmethod
    def empty(cls, counted: bool) -> Postings:
        tfs = np.zeros(0, np.uint8) if counted else None
        return cls(np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint16), tfs)

    @classmethod
    def from_occurrences(cls, keys: np.ndarray, docs: np.ndarray, counted: bool) -> Postings:
        """Postings of ``(key, local doc)`` occurrences given in any order (repeats count as frequency)."""
        if len(keys) == 0:
            return cls.empty(counted)
        combined = (keys.astype(np.int64) << _DOC_BITS) | docs.astype(np.int64)
        combined.sort(kind="stable")  # radix sort
        starts = np.flatnonzero(np.concatenate(([True], combined[1:] != combined[:-1])))
        uniq, counts = combined[starts], np.diff(np.append(starts, len(combined)))
        return cls._from_sorted((uniq >> _DOC_BITS).astype(np.int32), uniq.astype(np.uint16), counts, counted)

    @classmethod
    def _from_sorted(
        cls, posting_keys: np.ndarray, docs: np.ndarray, tfs: np.ndarray | None, counted: bool
    ) -> Postings:
        if len(posting_keys) == 0:
            return cls.empty(counted)
        starts = np.flatnonzero(np.concatenate(([True], posting_keys[1:] != posting_keys[:-1])))
        offsets = np.append(starts, len(docs)).astype(np.int64)
        packed = None
        if counted and tfs is not None:
            packed = tfs.astype(np.uint8) if tfs.max() <= 255 else np.minimum(tfs, 65535).astype(np.uint16)
        return cls(posting_keys[starts].astype(np.int32), offsets, docs.astype(np.uint16), packed)

    def span(self, key: int) -> tuple[int, int]:
        """``(start, end)`` of ``key``'s postings; ``(0, 0)`` when absent."""
        i = int(self.keys.searchsorted(np.int32(key)))  # a Python int would copy the array to int64
        if i < len(self.keys) and self.keys[i] == key:
            return int(self.offsets[i]), int(self.offsets[i + 1])
        return 0, 0

    def posting_keys(self) -> np.ndarray:
        """The key of every posting (expanded CSR)."""
        return np.repeat(self.keys, np.diff(self.offsets))

    def merged(self, later: Postings, shift: int) -> Postings:
        """These postings plus ``later``'s, whose local doc ids are moved up by ``shift``.

        Each input is scattered into preallocated output arrays a chunk at a time, so the
        temporary memory stays small however large the segment is.
        """
        if len(later.docs) == 0:
            return self
        keys = np.union1d(self.keys, later.keys).astype(np.int32)
        mine, theirs = np.searchsorted(keys, self.keys), np.searchsorted(keys, later.keys)
        before = np.zeros(len(keys), np.int64)  # postings of ``self`` per merged key
        before[mine] = np.diff(self.offsets)
        counts = before.copy()
        counts[theirs] += np.diff(later.offsets)
        offsets = np.concatenate(([0], np.cumsum(counts)))
        docs = np.empty(int(offsets[-1]), np.uint16)
        tfs = None
        if self.tfs is not None and later.tfs is not None:
            wide = np.uint16 if np.uint16 in (self.tfs.dtype, later.tfs.dtype) else np.uint8
            tfs = np.empty(len(docs), wide)
        _scatter(self, offsets[mine] - self.offsets[:-1], 0, docs, tfs)
        _scatter(later, offsets[theirs] + before[theirs] - later.offsets[:-1], shift, docs, tfs)
        return Postings(keys, offsets, docs, tfs)

    def key_counts(self, dead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keys (with multiplicity counts) of the postings whose local doc is flagged in ``dead``."""
        hit = np.flatnonzero(dead[self.docs])
        if len(hit) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        which = np.searchsorted(self.offsets, hit, side="right") - 1
        keys, counts = np.unique(self.keys[which], return_counts=True)
        return keys, counts

    @property
    def nbytes(self) -> int:
        tfs = self.tfs.nbytes if self.tfs is not None else 0
        return self.keys.nbytes + self.offsets.nbytes + self.docs.nbytes + tfs


def _scatter(
    source: Postings, moves: np.ndarray, shift: int, docs: np.ndarray, tfs: np.ndarray | None, chunk: int = 1 << 18
) -> None:
    """Copy ``source``'s postings to ``position + moves[key]``, adding ``shift`` to their doc ids."""
    for start in range(0, len(source.docs), chunk):
        positions = np.arange(start, min(start + chunk, len(source.docs)))
        key_index = np.searchsorted(source.offsets, positions, side="right") - 1
        target = positions + moves[key_index]
        docs[target] = source.docs[start : start + len(positions)] + np.uint16(shift)
        if tfs is not None and source.tfs is not None:
            tfs[target] = source.tfs[start : start + len(positions)]


@dataclass(frozen=True, slots=True)
class Batch:
    """Documents ready for indexing: flat ``(id, doc)`` occurrence arrays, doc numbers 0..n-1 ascending."""

    n: int
    term_ids: np.ndarray
    term_docs: np.ndarray
    author_ids: np.ndarray
    author_docs: np.ndarray
    cat_ids: np.ndarray
    cat_docs: np.ndarray

    def select(self, start: int, stop: int) -> Batch:
        """Documents ``start``..``stop - 1``, renumbered from 0."""

        def cut(ids: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = np.searchsorted(docs, [start, stop])
            return ids[lo:hi], docs[lo:hi] - start

        terms, authors, cats = (
            cut(self.term_ids, self.term_docs),
            cut(self.author_ids, self.author_docs),
            cut(self.cat_ids, self.cat_docs),
        )
        return Batch(stop - start, terms[0], terms[1], authors[0], authors[1], cats[0], cats[1])


@dataclass(frozen=True, slots=True)
class Segment:
    """Postings of the document slots ``base`` .. ``base + size - 1``."""

    base: int
    size: int
    terms: Postings
    authors: Postings
    cats: Postings

    @classmethod
    def start(cls, base: int) -> Segment:
        return cls(base, 0, Postings.empty(True), Postings.empty(False), Postings.empty(False))

    def extended(self, batch: Batch, terms: Postings) -> Segment:
        """This segment plus ``batch`` whose term postings are ``terms`` (at most :data:`SEGMENT_DOCS` in all)."""
        if self.size + batch.n > SEGMENT_DOCS:
            raise ValueError("segment overflow")
        return Segment(
            self.base,
            self.size + batch.n,
            self.terms.merged(terms, self.size),
            self.authors.merged(Postings.from_occurrences(batch.author_ids, batch.author_docs, False), self.size),
            self.cats.merged(Postings.from_occurrences(batch.cat_ids, batch.cat_docs, False), self.size),
        )

    @property
    def nbytes(self) -> int:
        return self.terms.nbytes + self.authors.nbytes + self.cats.nbytes


@dataclass(frozen=True, slots=True)
class PaperIds:
    """The paper id of every document slot, stored compactly, with a hash index from id to slots.

    ``ids`` is a fixed-width bytes array (UTF-8); ``hashes``/``slots`` are sorted by hash. Python's
    string hash is only stable within one process, which is all an in-memory index needs.
    """

    ids: np.ndarray
    hashes: np.ndarray
    slots: np.ndarray

    @classmethod
    def empty(cls) -> PaperIds:
        return cls(np.zeros(0, "S1"), np.zeros(0, np.int64), np.zeros(0, np.int32))

    def __getitem__(self, slot: int) -> str:
        return bytes(self.ids[slot]).decode("utf-8", "surrogatepass")

    def latest(self, paper_id: str) -> int | None:
        """The most recent slot holding ``paper_id``."""
        key = hash(paper_id)
        lo, hi = np.searchsorted(self.hashes, [key, key + 1]) if key < 2**63 - 1 else (0, len(self.hashes))
        wanted = paper_id.encode("utf-8", "surrogatepass")
        found = [int(s) for s in self.slots[lo:hi] if self.ids[s] == wanted]
        return max(found) if found else None

    def latest_of(self, paper_ids: Sequence[str]) -> list[int | None]:
        """:meth:`latest` for many ids; ids whose hash is unknown are skipped without a Python loop."""
        if not len(self.hashes) or not paper_ids:
            return [None] * len(paper_ids)
        keys = np.fromiter(map(hash, paper_ids), np.int64, len(paper_ids))
        pos = np.minimum(np.searchsorted(self.hashes, keys), len(self.hashes) - 1)
        known = np.flatnonzero(self.hashes[pos] == keys).tolist()
        out: list[int | None] = [None] * len(paper_ids)
        for i in known:
            out[i] = self.latest(paper_ids[i])
        return out

    def extended(self, paper_ids: list[str]) -> PaperIds:
        if not paper_ids:
            return self
        encoded = np.array([i.encode("utf-8", "surrogatepass") for i in paper_ids], dtype="S")
        hashes = np.concatenate((self.hashes, np.fromiter(map(hash, paper_ids), np.int64, len(paper_ids))))
        new_slots = np.arange(len(self.ids), len(self.ids) + len(paper_ids), dtype=np.int32)
        order = np.argsort(hashes, kind="stable")
        return PaperIds(
            np.concatenate((self.ids, encoded)), hashes[order], np.concatenate((self.slots, new_slots))[order]
        )

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.hashes.nbytes + self.slots.nbytes
