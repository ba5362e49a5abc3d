"""Compact term -> id maps for the search index (used by ``bot.search`` and ``bot.ranking``).

A :class:`Vocab` gives every distinct term a dense id (0, 1, 2, ... in order of first sight). Terms
seen since the last :meth:`Vocab.freeze` sit in a plain dict; ``freeze`` moves them into three
numpy arrays and one bytes blob: every term's UTF-8 bytes in id order, their offsets, and the
terms' 64-bit hashes sorted, with the id each belongs to. That costs ~30 bytes a term instead of
~150 for a dict of str -> int, and, more important for a long-running worker, leaves no small Python
objects behind: a vocabulary built from 100k abstracts otherwise pins its strings all over the
interpreter's heap and keeps ~100 MB of freed memory from ever being returned (bench_memory_soak).

Python's ``str`` hash is only stable within one process, which is all an in-memory index needs.
Threading: one writer (``id_of``/``freeze``, under the index's lock); any number of readers
(``get``/``len``), which see either the old or the new frozen state, never a half-built one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class _Frozen:
    blob: bytes  # every term's UTF-8 (surrogatepass) bytes, in id order
    offsets: np.ndarray  # int64, size + 1: term i is blob[offsets[i]:offsets[i + 1]]
    hashes: np.ndarray  # int64, sorted
    order: np.ndarray  # int32: the id of the term whose hash is hashes[k]

    @property
    def size(self) -> int:
        return len(self.offsets) - 1

    def get(self, term: str) -> int | None:
        if len(self.hashes) == 0:
            return None
        h = hash(term)
        k = int(self.hashes.searchsorted(np.int64(h)))
        encoded: bytes | None = None
        while k < len(self.hashes) and self.hashes[k] == h:  # equal hashes: compare the bytes
            tid = int(self.order[k])
            encoded = encoded or _encode(term)
            if self.blob[self.offsets[tid] : self.offsets[tid + 1]] == encoded:
                return tid
            k += 1
        return None

    def term(self, tid: int) -> str:
        return self.blob[self.offsets[tid] : self.offsets[tid + 1]].decode("utf-8", "surrogatepass")


_EMPTY = _Frozen(b"", np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))


def _encode(term: str) -> bytes:
    return term.encode("utf-8", "surrogatepass")


class Vocab:
    """Term -> dense id; see the module docstring."""

    __slots__ = ("_frozen", "_recent")

    def __init__(self) -> None:
        self._frozen = _EMPTY
        self._recent: dict[str, int] = {}

    def __len__(self) -> int:
        return self._frozen.size + len(self._recent)

    def get(self, term: str, default: int | None = None) -> int | None:
        found = self._recent.get(term)  # freeze() publishes the new frozen state before emptying this
        if found is None:
            found = self._frozen.get(term)
        return default if found is None else found

    def id_of(self, term: str) -> int:
        """The term's id, assigning the next one to a new term (writer only)."""
        recent = self._recent
        found = recent.get(term)
        if found is None:
            frozen = self._frozen
            found = frozen.get(term)
            if found is None:
                found = recent[term] = frozen.size + len(recent)
        return found

    def __iter__(self) -> Iterator[str]:
        """Every term in id order."""
        frozen, recent = self._frozen, list(self._recent)
        yield from (frozen.term(i) for i in range(frozen.size))
        yield from recent

    @property
    def unfrozen(self) -> int:
        return len(self._recent)

    def freeze(self) -> None:
        """Move the recently added terms into the compact arrays (writer only)."""
        recent = self._recent
        if not recent:
            return
        old = self._frozen
        encoded = [_encode(t) for t in recent]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        offsets = np.concatenate((old.offsets, old.offsets[-1] + np.cumsum(lengths)))
        hashes = np.concatenate((old.hashes, np.fromiter(map(hash, recent), np.int64, len(recent))))
        order = np.concatenate((old.order, np.fromiter(recent.values(), np.int32, len(recent))))
        by_hash = np.argsort(hashes, kind="stable")
        self._frozen = _Frozen(old.blob + b"".join(encoded), offsets, hashes[by_hash], order[by_hash])
        self._recent = {}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every term's UTF-8 bytes in id order (uint8) and their offsets: what :meth:`of_arrays` takes.

        Freezes first (writer only).
        """
        self.freeze()
        frozen = self._frozen
        return np.frombuffer(frozen.blob, np.uint8), frozen.offsets

    @classmethod
    def of_arrays(cls, blob: np.ndarray, offsets: np.ndarray) -> Vocab:
        """A vocabulary from :meth:`arrays`' output; ValueError if they do not fit together."""
        data, ends = bytes(np.asarray(blob, np.uint8)), np.asarray(offsets, np.int64)
        if len(ends) == 0 or ends[0] != 0 or ends[-1] != len(data) or np.any(np.diff(ends) < 0):
            raise ValueError("vocabulary offsets do not fit its bytes")
        cut = ends.tolist()
        terms = [data[a:b].decode("utf-8", "surrogatepass") for a, b in zip(cut, cut[1:], strict=False)]
        hashes = np.fromiter(map(hash, terms), np.int64, len(terms))
        by_hash = np.argsort(hashes, kind="stable")
        vocab = cls()
        vocab._frozen = _Frozen(data, ends, hashes[by_hash], by_hash.astype(np.int32))
        return vocab

    @property
    def nbytes(self) -> int:
        frozen = self._frozen
        return len(frozen.blob) + frozen.offsets.nbytes + frozen.hashes.nbytes + frozen.order.nbytes
