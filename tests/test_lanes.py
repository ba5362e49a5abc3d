"""Lanes: one channel's answers run in order, one at a time, and never hold up other channels."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from bot.lanes import Lanes


@pytest.fixture
def lanes() -> Iterator[Lanes]:
    pool = Lanes(2, "test")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def test_a_busy_lane_uses_one_thread_and_other_lanes_keep_running(lanes: Lanes) -> None:
    release = threading.Event()
    order: list[int] = []
    running_busy = threading.Semaphore(0)

    def busy(n: int) -> None:
        running_busy.release()
        release.wait(10)
        order.append(n)

    for n in range(6):  # a burst in one channel (each would wait for Slack's pacing)
        lanes.submit("C_BUSY", busy, n)
    assert running_busy.acquire(timeout=5)
    quiet = threading.Event()
    lanes.submit("C_QUIET", quiet.set)
    assert quiet.wait(5)  # answered while the busy channel's first task still waits
    assert not running_busy.acquire(timeout=0.2)  # the busy channel never took the second thread
    release.set()
    assert lanes.join(timeout=10)
    assert order == [0, 1, 2, 3, 4, 5]  # in the order they were submitted


def test_a_failing_task_is_logged_with_its_traceback_and_the_lane_goes_on(
    lanes: Lanes, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []

    def boom() -> None:
        raise KeyError("bug")

    lanes.submit("C1", boom)
    lanes.submit("C1", done.append, "next")
    assert lanes.join(timeout=10)
    assert done == ["next"]
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "an answer task failed" in record.getMessage() and record.exc_info is not None


def test_shutdown_refuses_new_work_and_drops_the_queue_when_asked() -> None:
    lanes = Lanes(1, "test")
    started, release, ran = threading.Event(), threading.Event(), []

    def first() -> None:
        started.set()
        release.wait(10)

    lanes.submit("C1", first)
    lanes.submit("C1", ran.append, "queued")
    assert started.wait(5)
    lanes.shutdown(wait=False, cancel_futures=True)  # as on SIGTERM
    release.set()
    assert lanes.join(timeout=10)
    assert ran == []
    with pytest.raises(RuntimeError):
        lanes.submit("C2", ran.append, "late")
    graceful = Lanes(1, "test")
    graceful.submit("C1", ran.append, "kept")
    graceful.shutdown(wait=True)
    assert ran == ["kept"]
