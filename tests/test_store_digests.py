"""Digest claims, leases, plans and the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.errors import PlanConflict
from bot.models import Message
from bot.store import Store
from bot.store import digests as dg

DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def test_one_claim_per_channel_and_day_until_the_lease_expires(store: Store) -> None:
    run = dg.claim(store.engine, "C1", DAY, "a", NOW, LEASE)
    assert run is not None and run.owner == "a" and not run.planned
    assert dg.claim(store.engine, "C1", DAY, "b", NOW + timedelta(seconds=30), LEASE) is None
    assert dg.claim(store.engine, "C2", DAY, "b", NOW, LEASE) is not None  # other channels are independent
    taken = dg.claim(store.engine, "C1", DAY, "b", NOW + LEASE + timedelta(seconds=1), LEASE)
    assert taken is not None and taken.id == run.id and taken.owner == "b"
    assert not dg.renew(store.engine, run.id, "a", NOW, LEASE)  # the old owner learns it lost the run


def test_finished_runs_are_never_claimed_again(store: Store) -> None:
    run = dg.claim(store.engine, "C1", DAY, "a", NOW, LEASE)
    assert run and dg.finish(store.engine, run.id, "a", dg.POSTED, NOW)
    assert dg.claim(store.engine, "C1", DAY, "a", NOW + timedelta(days=1), LEASE) is None
    assert dg.get_run(store.engine, "C1", DAY).finished  # type: ignore[union-attr]


def test_released_run_waits_until_its_retry_time(store: Store) -> None:
    run = dg.claim(store.engine, "C1", DAY, "a", NOW, LEASE)
    assert run
    dg.release(store.engine, run.id, "a", retry_at=NOW + timedelta(minutes=10), note="arxiv: HTTP 503")
    assert dg.claim(store.engine, "C1", DAY, "a", NOW + timedelta(minutes=5), LEASE) is None
    again = dg.claim(store.engine, "C1", DAY, "b", NOW + timedelta(minutes=10), LEASE)
    assert again is not None and again.state == dg.CLAIMED


def test_plan_writes_messages_and_outbox_atomically_and_once(store: Store) -> None:
    run = dg.claim(store.engine, "C1", DAY, "a", NOW, LEASE)
    assert run
    msgs = [
        Message("parent", ({"type": "section"},), ("2611.00001", "2611.00002")),
        Message("more", (), ("2611.00003",)),
    ]
    assert dg.plan(store.engine, run, "a", msgs, window_start=NOW - timedelta(days=1), window_end=NOW)
    assert not dg.plan(store.engine, run, "a", msgs, window_start=NOW, window_end=NOW)  # planned already
    planned = dg.planned_messages(store.engine, run.id)
    assert [(p.chunk, p.state, p.message.paper_ids) for p in planned] == [
        (0, "pending", ("2611.00001", "2611.00002")),
        (1, "pending", ("2611.00003",)),
    ]
    assert dg.already_posted(store.engine, "C1", ["2611.00001", "2611.00009"]) == {"2611.00001"}
    last = dg.last_window(store.engine, "C1")
    assert last is not None and (last.window_end, last.seq_end) == (NOW, None)
    dg.begin_attempt(store.engine, run.id, 0)
    dg.mark_posted(store.engine, run.id, 0, "1.0001", NOW)
    first, second = dg.planned_messages(store.engine, run.id)
    assert (first.state, first.ts, first.attempts) == ("posted", "1.0001", 1)
    assert second.state == "pending"
    assert dg.get_run(store.engine, "C1", DAY).parent_ts == "1.0001"  # type: ignore[union-attr]


def test_a_paper_goes_to_a_channel_at_most_once_ever(store: Store) -> None:
    run = dg.claim(store.engine, "C1", DAY, "a", NOW, LEASE)
    assert run and dg.plan(
        store.engine, run, "a", [Message("x", (), ("2611.00001",))], window_start=NOW, window_end=NOW
    )
    nxt = dg.claim(store.engine, "C1", DAY + timedelta(days=1), "a", NOW, LEASE)
    assert nxt is not None
    with pytest.raises(PlanConflict):
        dg.plan(store.engine, nxt, "a", [Message("x", (), ("2611.00001",))], window_start=NOW, window_end=NOW)
    assert not dg.get_run(store.engine, "C1", DAY + timedelta(days=1)).planned  # type: ignore[union-attr]


def test_concurrent_claims_have_one_winner(store: Store) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def go(owner: str) -> None:
        barrier.wait()
        if dg.claim(store.engine, "C1", DAY, owner, NOW, LEASE):
            winners.append(owner)

    threads = [threading.Thread(target=go, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(winners) == 1


def test_the_last_window_is_the_last_planned_in_commit_order_not_by_clock(store: Store) -> None:
    def planned(day: date, end: datetime, seq_end: int | None) -> None:
        run = dg.claim(store.engine, "C1", day, "a", NOW, LEASE)
        assert run and dg.plan(
            store.engine, run, "a", [], window_start=end - timedelta(days=1), window_end=end, seq_end=seq_end
        )

    assert dg.last_window(store.engine, "C1") is None
    planned(DAY - timedelta(days=3), NOW + timedelta(hours=5), None)  # before migration 3: no watermark
    planned(DAY - timedelta(days=2), NOW, 5)
    planned(DAY - timedelta(days=1), NOW - timedelta(minutes=1), 9)  # planned later, by a worker whose clock lags
    last = dg.last_window(store.engine, "C1")
    assert last is not None and (last.day, last.seq_end) == (DAY - timedelta(days=1), 9)
    assert dg.last_window(store.engine, "C2") is None


def test_a_paper_planned_by_another_run_meanwhile_is_a_plan_conflict_and_writes_nothing(store: Store) -> None:
    first = dg.claim(store.engine, "C1", DAY - timedelta(days=1), "a", NOW, LEASE)
    second = dg.claim(store.engine, "C1", DAY, "b", NOW, LEASE)
    assert first and second
    assert dg.plan(store.engine, first, "a", [Message("x", (), ("2611.00001",))], window_start=NOW, window_end=NOW)
    msgs = [Message("y", (), ("2611.00002",)), Message("z", (), ("2611.00001",))]
    with pytest.raises(PlanConflict, match="C1 2026-11-27"):
        dg.plan(store.engine, second, "b", msgs, window_start=NOW, window_end=NOW)
    assert dg.planned_messages(store.engine, second.id) == []
    assert dg.already_posted(store.engine, "C1", ["2611.00002"]) == set()
    assert not dg.get_run(store.engine, "C1", DAY).planned  # type: ignore[union-attr]
