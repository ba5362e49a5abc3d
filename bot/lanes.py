"""A thread pool whose tasks run one at a time, in order, per lane (for answers: per Slack channel).

Posts to one channel are paced at one per second (``bot.delivery``), so a burst of answers for one
busy channel would otherwise occupy every pool thread with waiting and hold up answers everywhere
else. With lanes, a channel's answers queue behind each other on one thread and other channels keep
the rest of the pool.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Task = Callable[[], object]


class Lanes:
    def __init__(self, workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[Task]] = {}  # lane -> tasks after the one running
        self._closed = False  # no new tasks
        self._dropping = False  # queued tasks are dropped too

    def submit(self, lane: str, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` after the lane's earlier tasks. RuntimeError once shut down."""
        task = functools.partial(fn, *args)
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            if lane in self._waiting:
                self._waiting[lane].append(task)
                return
            self._waiting[lane] = deque()
        try:
            self._pool.submit(self._drive, lane, task)
        except RuntimeError:  # the pool shut down meanwhile
            with self._cond:
                del self._waiting[lane]
            raise

    def _drive(self, lane: str, task: Task) -> None:
        while True:
            try:
                task()
            except Exception:
                log.exception("an answer task failed")
            with self._cond:
                queue = self._waiting[lane]
                if not queue or self._dropping:
                    del self._waiting[lane]
                    self._cond.notify_all()
                    return
                task = queue.popleft()

    def join(self, timeout: float) -> bool:
        """Wait until every task submitted so far has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting, timeout)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Refuse new tasks; queued ones are dropped with ``cancel_futures``, else still run."""
        with self._cond:
            self._closed = True
            if cancel_futures:
                self._dropping = True
                for queue in self._waiting.values():
                    queue.clear()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
