"""Event dedupe across workers and paged search sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from bot.store import Store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_remember_event_is_true_once(store: Store) -> None:
    assert store.remember_event("Ev1", T0) is True
    assert store.remember_event("Ev1", T0 + timedelta(seconds=5)) is False
    assert store.remember_event("Ev2", T0) is True


def test_remember_event_race_between_two_workers_has_one_winner(db_url: str) -> None:
    Store.open(db_url).migrate()
    keys = [f"Ev{i}" for i in range(40)]
    wins: dict[int, list[str]] = {0: [], 1: []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        store = Store.open(db_url)  # separate engines, like two processes
        try:
            barrier.wait(timeout=10)
            wins[n] = [k for k in keys if store.remember_event(k)]
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(wins[0] + wins[1]) == sorted(keys)  # every key won exactly once


def test_forget_events_before_cutoff(store: Store) -> None:
    store.remember_event("old", T0 - timedelta(days=2))
    store.remember_event("new", T0)
    assert store.forget_events_before(T0 - timedelta(days=1)) == 1
    assert store.remember_event("old", T0) is True
    assert store.remember_event("new", T0) is False


def test_search_session_save_get_and_advance_once(store: Store) -> None:
    s = store.save_search_session("C1", "U1", "sparse attention", next_offset=5, now=T0)
    assert len(s.id) >= 16
    assert store.get_search_session(s.id) == s
    assert store.advance_search_session(s.id, 5, 10, thread_ts="1700000000.000100") is True
    assert store.advance_search_session(s.id, 5, 10) is False  # a double click serves the page once
    got = store.get_search_session(s.id)
    assert got is not None and (got.next_offset, got.thread_ts, got.created_at) == (10, "1700000000.000100", T0)
    assert store.advance_search_session("missing", 0, 5) is False
    assert store.get_search_session("missing") is None


def test_forget_search_sessions_before(store: Store) -> None:
    old = store.save_search_session("C1", None, "q", 5, now=T0 - timedelta(days=3))
    new = store.save_search_session("C1", "U1", "q", 5, now=T0, session_id="fixed-id")
    assert new.id == "fixed-id"
    assert store.forget_search_sessions_before(T0 - timedelta(days=1)) == 1
    assert store.get_search_session(old.id) is None and store.get_search_session("fixed-id") == new
