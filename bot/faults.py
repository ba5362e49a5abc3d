"""Fault injection for the test suite: named crash points in the digest job. Inert in production.

``crash_point(name)`` marks a place where a crash must not break exactly-once delivery (see
``bot/jobs.py``: ``after_claim``, ``after_plan``, ``after_post``, ``mid_thread``). It does nothing
unless one of these is set:

* ``PAPERBOY_CRASH_AT=<name>`` (or ``<name>:<n>``, the n-th time the point is reached, from 1) in the
  environment of the process: the process kills itself with SIGKILL right there, a real ``kill -9``
  with no cleanup, no ``finally`` blocks and no flushing (the variable is read once, at import);
* an in-process hook installed by a test with :func:`set_hook` (e.g. one that raises
  :class:`SimulatedCrash` so a run is abandoned at that point without killing the test runner).

When neither is set the cost is two global lookups per call.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable

from bot.errors import ConfigError

ENV = "PAPERBOY_CRASH_AT"
POINTS = ("after_claim", "after_plan", "after_post", "mid_thread")


class SimulatedCrash(BaseException):
    """Raised by test hooks to abandon work at a crash point; a BaseException so no ``except Exception`` eats it."""


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, nth = spec.strip().partition(":")
    if name not in POINTS or (nth and not nth.isdigit()) or nth == "0":
        raise ConfigError(f"{ENV}={spec!r}: expected one of {', '.join(POINTS)}, optionally followed by :N (N >= 1)")
    return name, int(nth or 1)


_target = _parse(os.environ.get(ENV))
_hook: Callable[[str], None] | None = None
_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Die here (SIGKILL) if ``PAPERBOY_CRASH_AT`` names this point, or call the installed test hook."""
    if _hook is not None:
        _hook(name)
    if _target is None or _target[0] != name:
        return
    with _lock:
        _hits[name] += 1
        if _hits[name] != _target[1]:
            return
    os.kill(os.getpid(), signal.SIGKILL)


def set_hook(hook: Callable[[str], None] | None) -> None:
    """Install (or with None remove) an in-process hook called with the name of every crash point reached."""
    global _hook
    _hook = hook
