"""Saving the search index and loading it back, so a restart does not re-tokenize the whole archive.

An index is written as named parts: a ``meta`` part in JSON, then every array's raw bytes in parts
of at most ``CHUNK`` bytes (``name@0``, ``name@1``, ...), so neither saving nor loading ever holds
a second copy of a large array. ``meta`` has a fingerprint, the store sequence number the index
covers, and each array's dtype (plain numbers and byte strings only; nothing is unpickled) and
shape. The fingerprint hashes the source of every module that decides what the arrays mean
(tokenizer, postings, vocabulary, search, this file) and the versions of PyStemmer, rank-bm25 and
numpy, so parts written by other code are ignored, never misread. After a load,
``SearchIndex.refresh`` indexes whatever the store gained since.

Where the parts live is the caller's business (``bot.cli.build_index`` keeps them in the database).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import bot.postings
import bot.search
import bot.text
import bot.vocab
from bot.search import FetchPapers, SearchIndex

FORMAT = 2
CHUNK = 4 << 20  # bytes per saved part
_KINDS = "biuSf"  # bool, integers, byte strings, floats


class CacheMismatch(ValueError):
    """The saved parts are missing, from other code, or damaged; the index must be built instead."""


@cache
def fingerprint() -> str:
    digest = hashlib.sha256(f"paperboy-index/{FORMAT}".encode())
    for module in (bot.text, bot.postings, bot.vocab, bot.search):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    for package in ("PyStemmer", "rank-bm25", "numpy"):
        digest.update(f"{package}={_version(package)}".encode())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def dump(index: SearchIndex) -> Iterator[tuple[str, bytes]]:
    """The index as ``(name, bytes)`` parts, ``meta`` first; each part is made only when asked for."""
    last_seq, arrays = index.export_arrays()
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
        return SearchIndex.from_arrays(meta["last_seq"], arrays, fetch_papers)
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
