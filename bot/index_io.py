"""Saving the search index and loading it back, so a restart does not re-tokenize the whole archive.

An index is written as named parts: a ``meta`` part in JSON, then every array's raw bytes in parts
of at most ``CHUNK`` bytes (``name@0``, ``name@1``, ...), so neither saving nor loading ever holds
a second copy of a large array. ``meta`` has a fingerprint, the store sequence number the index
covers, and each array's dtype (plain numbers and byte strings only; nothing is unpickled) and
shape. The fingerprint hashes the code (syntax tree, without comments and docstrings) of every
module that decides what the arrays mean (tokenizer, postings, vocabulary, search, this file) and
the versions of PyStemmer, rank-bm25 and
numpy, so parts written by other code are ignored, never misread. After a load,
``SearchIndex.refresh`` indexes whatever the store gained since.

Where the parts live is the caller's business (``bot.cli.build_index`` keeps them in the database).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import bot.postings
import bot.search
import bot.text
import bot.vocab
from bot.postings import PaperIds, Postings, Segment
from bot.search import FetchPapers, SearchIndex
from bot.vocab import Vocab

FORMAT = 2
CHUNK = 4 << 20  # bytes per saved part
_KINDS = "biuSf"  # bool, integers, byte strings, floats
_VOCABS = ("vocab", "authors", "cats")
_PARTS = ("terms", "authors", "cats")
_FIELDS = ("keys", "offsets", "docs", "tfs")


class CacheMismatch(ValueError):
    """The saved parts are missing, from other code, or damaged; the index must be built instead."""


@cache
def fingerprint() -> str:
    digest = hashlib.sha256(f"paperboy-index/{FORMAT}".encode())
    for module in (bot.text, bot.postings, bot.vocab, bot.search):
        digest.update(code_of(Path(str(module.__file__)).read_text("utf-8")))
    digest.update(code_of(Path(__file__).read_text("utf-8")))
    for package in ("PyStemmer", "rank-bm25", "numpy"):
        digest.update(f"{package}={_version(package)}".encode())
    return digest.hexdigest()


def code_of(source: str) -> bytes:
    """What ``source`` does, without its comments, docstrings and layout: an edit to those alone
    keeps a saved index (it would otherwise cost the next start a full rebuild)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            first = body[0].value
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree).encode()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def dump(index: SearchIndex) -> Iterator[tuple[str, bytes]]:
    """The index as ``(name, bytes)`` parts, ``meta`` first; each part is made only when asked for."""
    last_seq, arrays = _arrays(index)
    layout = {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in sorted(arrays.items())}
    meta = {"fingerprint": fingerprint(), "last_seq": last_seq, "papers": len(index), "arrays": layout}
    yield "meta", json.dumps(meta).encode()
    for name in layout:
        raw = np.ascontiguousarray(arrays[name]).reshape(-1).view(np.uint8)
        for k, start in enumerate(range(0, len(raw), CHUNK)):
            yield f"{name}@{k}", raw[start : start + CHUNK].tobytes()


def describe(parts: Mapping[str, bytes]) -> dict[str, Any]:
    """The ``meta`` part; CacheMismatch when it is missing, unreadable or from other code."""
    if "meta" not in parts:
        raise CacheMismatch("no saved index")
    try:
        meta = json.loads(parts["meta"])
    except ValueError as exc:
        raise CacheMismatch(f"unreadable index metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint():
        raise CacheMismatch("saved by another version of Paperboy")
    if not isinstance(meta.get("arrays"), dict) or not isinstance(meta.get("last_seq"), int):
        raise CacheMismatch("index metadata lacks its array list or sequence number")
    return meta


def load(parts: dict[str, bytes], fetch_papers: FetchPapers | None = None) -> SearchIndex:
    """The saved index (``parts`` is emptied as it is read, so its bytes are freed early).

    Raises:
        CacheMismatch: nothing saved, saved by other code, or damaged.
    """
    meta = describe(parts)
    try:
        arrays = {name: _array(name, spec, parts) for name, spec in meta["arrays"].items()}
        return _restore(meta["last_seq"], arrays, fetch_papers)
    except (KeyError, ValueError, TypeError) as exc:
        raise CacheMismatch(f"damaged saved index ({type(exc).__name__}: {exc})") from None


def _array(name: str, spec: Mapping[str, Any], parts: dict[str, bytes]) -> np.ndarray:
    dtype, shape = np.dtype(spec["dtype"]), tuple(int(n) for n in spec["shape"])
    if dtype.kind not in _KINDS or dtype.hasobject:
        raise ValueError(f"{name}: unexpected dtype {dtype}")
    size = math.prod(shape) * dtype.itemsize
    buffer = bytearray(size)
    at = 0
    for k in range(-(-size // CHUNK)):
        piece = parts.pop(f"{name}@{k}")
        buffer[at : at + len(piece)] = piece
        at += len(piece)
    if at != size:
        raise ValueError(f"{name}: {at} bytes saved, {size} expected")
    return np.frombuffer(buffer, dtype).reshape(shape)


def _arrays(index: SearchIndex) -> tuple[int, dict[str, np.ndarray]]:
    """``(last_seq, {name: array})``: everything the index is, as :func:`_restore` takes it back."""
    last_seq, snap, vocabs = index.export_state()
    arrays = {"alive": snap.alive, "doc_len": snap.doc_len, "dates": snap.dates, "dfs": snap.stats.dfs}
    arrays["ids"] = snap.ids.ids
    for name, (blob, offsets) in zip(_VOCABS, vocabs, strict=True):
        arrays[f"{name}.blob"], arrays[f"{name}.offsets"] = blob, offsets
    for i, seg in enumerate(snap.segments):
        arrays[f"seg{i}"] = np.array([seg.base, seg.size], np.int64)
        for part in _PARTS:
            postings: Postings = getattr(seg, part)
            for field in _FIELDS:
                if (value := getattr(postings, field)) is not None:
                    arrays[f"seg{i}.{part}.{field}"] = value
    return last_seq, arrays


def _restore(last_seq: int, arrays: Mapping[str, np.ndarray], fetch_papers: FetchPapers | None) -> SearchIndex:
    """The index :func:`_arrays` described. KeyError/ValueError when the arrays do not fit together."""
    vocabs = [Vocab.of_arrays(arrays[f"{n}.blob"], arrays[f"{n}.offsets"]) for n in _VOCABS]
    segments: list[Segment] = []
    while f"seg{len(segments)}" in arrays:
        i = len(segments)
        base, size = (int(v) for v in arrays[f"seg{i}"])
        parts = [Postings(*(arrays.get(f"seg{i}.{part}.{f}") for f in _FIELDS)) for part in _PARTS]  # type: ignore[arg-type]
        segments.append(Segment(base, size, *parts))
    per_slot = (arrays["alive"], arrays["doc_len"], arrays["dates"])
    ids = PaperIds.empty().extended([bytes(i).decode("utf-8", "surrogatepass") for i in arrays["ids"]])
    _check_layout(segments, len(per_slot[1]), (*per_slot, ids.ids), arrays["dfs"], vocabs)
    return SearchIndex.restore(last_seq, vocabs, segments, ids, per_slot, arrays["dfs"], fetch_papers)


def _check_layout(
    segments: Sequence[Segment], n_slots: int, per_slot: Sequence[np.ndarray], dfs: np.ndarray, vocabs: Sequence[Vocab]
) -> None:
    """ValueError unless restored arrays describe one consistent index."""
    bases = [seg.base for seg in segments]
    if bases != [sum(seg.size for seg in segments[:i]) for i in range(len(segments))]:
        raise ValueError("segments are not contiguous")
    if sum(seg.size for seg in segments) != n_slots or any(len(a) != n_slots for a in per_slot):
        raise ValueError("per-document arrays disagree on the number of documents")
    if len(dfs) > len(vocabs[0]):
        raise ValueError("document frequencies for unknown terms")
    for seg in segments:
        for postings, vocab in zip((seg.terms, seg.authors, seg.cats), vocabs, strict=True):
            kinds = (postings.keys.dtype, postings.offsets.dtype, postings.docs.dtype)
            if kinds != (np.int32, np.int64, np.uint16) or (
                postings.tfs is not None and postings.tfs.dtype.kind != "u"
            ):
                raise ValueError("postings arrays have the wrong types")
            if len(postings.offsets) != len(postings.keys) + 1 or postings.offsets[-1] != len(postings.docs):
                raise ValueError("postings offsets do not fit their documents")
            if len(postings.keys) and (postings.keys.max() >= len(vocab) or postings.keys.min() < 0):
                raise ValueError("postings name unknown terms")
            if len(postings.docs) and postings.docs.max() >= seg.size:
                raise ValueError("postings name documents outside their segment")
