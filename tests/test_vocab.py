"""The compact term -> id map: dense ids, lookups before and after freezing, collisions, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.vocab import Vocab


def test_ids_are_dense_in_first_sight_order_and_survive_freezing() -> None:
    vocab = Vocab()
    assert [vocab.id_of(t) for t in ("graph", "neural", "graph", "net")] == [0, 1, 0, 2]
    vocab.freeze()
    assert vocab.unfrozen == 0 and len(vocab) == 3
    assert vocab.id_of("neural") == 1 and vocab.id_of("diffusion") == 3  # frozen hit, then a new id
    assert vocab.get("diffusion") == 3 and vocab.get("missing") is None and vocab.get("missing", -1) == -1
    vocab.freeze()
    assert [vocab.get(t) for t in ("graph", "neural", "net", "diffusion")] == [0, 1, 2, 3]
    assert list(vocab) == ["graph", "neural", "net", "diffusion"]
    assert vocab.nbytes > 0


@given(st.lists(st.text(max_size=12), max_size=60), st.integers(0, 60))
def test_any_terms_any_freeze_point(terms: list[str], cut: int) -> None:
    vocab, expected = Vocab(), {}
    for i, term in enumerate(terms):
        if i == cut:
            vocab.freeze()
        expected.setdefault(term, len(expected))
        assert vocab.id_of(term) == expected[term]
    vocab.freeze()
    assert all(vocab.get(t) == i for t, i in expected.items())
    assert list(vocab) == list(expected)


class _Colliding(str):
    """A term whose hash collides with every other such term: lookups must compare the bytes."""

    def __hash__(self) -> int:
        return 42


def test_equal_hashes_are_told_apart_by_their_bytes() -> None:
    vocab = Vocab()
    terms = [_Colliding(t) for t in ("alpha", "beta", "gamma", "\ud800lone")]
    for t in terms:
        vocab.id_of(t)
    vocab.freeze()
    assert [vocab.get(t) for t in terms] == [0, 1, 2, 3]
    assert vocab.get(_Colliding("delta")) is None
    assert list(vocab)[3] == "\ud800lone"


@pytest.mark.timeout(60)
def test_readers_never_miss_a_term_while_the_writer_adds_and_freezes() -> None:
    vocab = Vocab()
    known: list[str] = []
    stop, misses = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            for i, term in enumerate(list(known)):
                if vocab.get(term) != i:
                    misses.append(term)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(3000):
            term = f"term{i}"
            vocab.id_of(term)
            known.append(term)  # published only after it has an id
            if i % 97 == 0:
                vocab.freeze()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert misses == []
    assert len(vocab) == 3000
