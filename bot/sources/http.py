"""Polite HTTP for the paper sources: pacing, timeouts, back-off and the only use of httpx.

arXiv asks for at most one request every three seconds and a single connection at a time,
counted across the API, RSS and OAI together. ``ARXIV_PACER`` is one process-wide lock plus a
"next request not before" clock that every arXiv call goes through, whichever thread makes it.
Hugging Face has its own, lighter pacer. 429/5xx answers are retried after ``Retry-After`` (seconds
or an HTTP date) or the ``RateLimit: …;t=<s>`` header, else after an exponential schedule; the wait
is recorded on the pacer so that every thread waits, not just the one that was refused.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from bot import __version__
from bot.errors import FeedFormatError, RateLimitedError, SourceError

log = logging.getLogger(__name__)

USER_AGENT = (
    f"Paperboy/{__version__} (Slack bot posting a daily arXiv + Hugging Face paper digest; "
    f"one request per 3 s, one connection) python-httpx/{httpx.__version__}"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BODY_BYTES = 50 * 1024 * 1024


class Pacer:
    """One request at a time, at least ``min_interval`` seconds after the previous one finished.

    ``clock`` and ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        min_interval: float = 3.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._not_before = float("-inf")

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold the single connection slot; waits for the interval (and any back-off) first."""
        with self._lock:
            wait = self._not_before - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                yield
            finally:
                self._not_before = max(self._not_before, self.clock() + self.min_interval)

    def defer(self, seconds: float) -> None:
        """Make every caller wait ``seconds`` from now before the next request (back-off)."""
        self._not_before = max(self._not_before, self.clock() + seconds)


ARXIV_PACER = Pacer(3.0)
HF_PACER = Pacer(1.0)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect, to wait for each read, and for a whole response body."""

    connect: float = 10.0
    read: float = 60.0
    total: float = 180.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to retry 429/5xx/connection failures, and how long to wait between tries."""

    max_retries: int = 3
    backoff: tuple[float, ...] = (3.0, 10.0, 30.0)
    max_wait: float = 300.0  # a server asking for longer than this makes us give up instead


@dataclass(frozen=True, slots=True)
class SourceProfile:
    pacer: Pacer
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").lower()


def default_profiles() -> dict[str, SourceProfile]:
    return {
        # Five retries: a burst of 429s followed by a few 503s (reliability.md T-27) still ends in
        # success; without Retry-After the waits add up to under four minutes.
        "arxiv": SourceProfile(ARXIV_PACER, RetryPolicy(5, (3.0, 10.0, 30.0, 60.0, 120.0), 300.0)),
        "huggingface": SourceProfile(HF_PACER, RetryPolicy(2, (5.0, 15.0), 60.0)),
    }


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait (``Retry-After`` or ``RateLimit: …;t=N``), if it says."""
    value = headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError, IndexError):
                pass
    m = re.search(r"(?:^|[;,\s])(?:t|reset)=(\d+(?:\.\d+)?)", headers.get("ratelimit", ""))
    return float(m.group(1)) if m else None


class HttpClient:
    """GET with pacing, timeouts, a body size cap and bounded retries, per source profile."""

    def __init__(
        self,
        *,
        profiles: Mapping[str, SourceProfile] | None = None,
        timeouts: Timeouts = Timeouts(),
        user_agent: str = USER_AGENT,
        wall_clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.profiles = dict(default_profiles(), **(profiles or {}))
        self.timeouts = timeouts
        self.wall_clock = wall_clock
        self.max_body_bytes = max_body_bytes
        # No keep-alive: an idle pooled socket would still count as an open connection to arXiv.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": user_agent, "Connection": "close"},
            follow_redirects=True,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, source: str, url: str) -> HttpResponse:
        """Fetch ``url`` for ``source``; returns any non-retryable response (the caller checks status).

        Raises:
            RateLimitedError: still 429/503 after the retry budget, or asked to wait too long.
            SourceError: timeout, connection failure or 5xx after the retry budget.
        """
        profile = self.profiles[source]
        policy = profile.retry
        attempt = 0
        while True:
            with profile.pacer.slot():
                try:
                    resp = self._fetch(source, url)
                except httpx.TimeoutException as exc:
                    raise SourceError(source, f"timed out fetching {url} ({type(exc).__name__})") from exc
                except httpx.TransportError as exc:
                    problem, wait, status = f"connection failed ({type(exc).__name__}: {exc})", None, None
                else:
                    if resp.status not in RETRY_STATUSES:
                        return resp
                    status = resp.status
                    problem = f"HTTP {status}"
                    wait = retry_after(resp.headers, self.wall_clock())
                error = RateLimitedError if status in (429, 503) else SourceError
                if attempt >= policy.max_retries:
                    raise error(source, f"{problem} from {url}, gave up after {attempt + 1} attempts")
                delay = wait if wait is not None else policy.backoff[min(attempt, len(policy.backoff) - 1)]
                if delay > policy.max_wait:
                    raise error(
                        source, f"{problem} from {url} asks to wait {delay:.0f} s (limit {policy.max_wait:.0f})"
                    )
                log.warning("%s: %s from %s; retrying in %.1f s", source, problem, url, delay)
                profile.pacer.defer(delay)
                attempt += 1

    def _fetch(self, source: str, url: str) -> HttpResponse:
        started = time.monotonic()
        with self._http.stream("GET", url) as r:
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise FeedFormatError(source, f"response from {url} is larger than {self.max_body_bytes} bytes")
                if time.monotonic() - started > self.timeouts.total:
                    raise SourceError(source, f"timed out reading {url} (over {self.timeouts.total:.0f} s)")
                chunks.append(chunk)
            return HttpResponse(
                str(r.url), r.status_code, {k.lower(): v for k, v in r.headers.items()}, b"".join(chunks)
            )
