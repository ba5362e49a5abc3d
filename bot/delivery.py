"""Slack delivery: the one bot module that calls the Slack Web API (through slack_sdk).

It owns posting (``chat.postMessage`` paced to one post per second per channel, counted from the
previous post's answer, so Slack never sees two posts to a channel less than a second apart), 429
handling (waits ``Retry-After`` itself, bounded), response_url replies, and the read side used to
reconcile after a crash (``conversations.history`` / ``conversations.replies`` with message metadata).
A rejected token (:class:`AuthError`, from any call on any thread) is also kept in
:attr:`SlackDelivery.auth_failure`, so the worker's main loop can exit non-zero on it.

Posts are never retried blindly: the ``WebClient`` has no retry handlers, so a lost response
(connection reset, timeout, 5xx, ``internal_error``) surfaces as
``DeliveryError(ambiguous=True)`` and the caller reconciles with :meth:`SlackDelivery.find_posted`
before posting again. Only a 429 (which Slack did not process) is retried here. Reads are
idempotent and are retried twice on transport errors.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
from collections.abc import Callable
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot.errors import AuthError, DeliveryError
from bot.models import Message

log = logging.getLogger(__name__)

AUTH_CODES = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive", "token_expired"})
# Slack documents these as "some aspect of the operation may have succeeded".
AMBIGUOUS_CODES = frozenset({"internal_error", "fatal_error"})
READ_RETRIES = 2


class SlackDelivery:
    """Posts and reads Slack messages with one bot token.

    Args:
        token: the bot token (``xoxb-…``).
        base_url: the Web API root (tests point it at FakeSlack; settings read ``SLACK_API_URL``).
        timeout: seconds for each HTTP request.
        min_interval: minimum seconds between two posts to the same channel.
        max_rate_limit_retries: how many 429 answers one call may wait out before failing.
        max_retry_after: a ``Retry-After`` longer than this fails at once instead of blocking.
        clock, sleep: injectable monotonic clock and sleep for the pacing and 429 waits.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://slack.com/api/",
        timeout: int = 30,
        min_interval: float = 1.0,
        max_rate_limit_retries: int = 3,
        max_retry_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        self._timeout = timeout
        self._min_interval = min_interval
        self._max_429 = max_rate_limit_retries
        self._max_retry_after = max_retry_after
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_post: dict[str, float] = {}  # channel -> earliest monotonic time of its next post
        self._blocked_until: dict[str, float] = {}  # API method -> end of its last Retry-After
        self.auth_failure: AuthError | None = None  # the first AuthError any call met (token revoked)

    # ---- posting -------------------------------------------------------------------------------
    def post(
        self, channel: str, message: Message, *, thread_ts: str | None = None, metadata: dict | None = None
    ) -> str:
        """Post ``message`` (in the thread ``thread_ts`` if given) and return its ``ts``.

        ``metadata`` is ``{"event_type": str, "event_payload": dict}`` and is what
        :meth:`find_posted` later matches on. Link unfurling is always off.
        """
        args: dict[str, Any] = {"channel": channel, "unfurl_links": False, "unfurl_media": False}
        args.update(_content(message))
        if thread_ts:
            args["thread_ts"] = thread_ts
        if metadata is not None:
            args["metadata"] = _check_metadata(metadata)
        resp = self._call("chat.postMessage", self._client.chat_postMessage, args, pace=channel)
        return str(resp["ts"])

    def post_ephemeral(self, channel: str, user: str, message: Message) -> str:
        """Show ``message`` to ``user`` only; return Slack's ``message_ts``."""
        args = {"channel": channel, "user": user, **_content(message)}
        resp = self._call("chat.postEphemeral", self._client.chat_postEphemeral, args)
        return str(resp["message_ts"])

    def update(self, channel: str, ts: str, message: Message, *, metadata: dict | None = None) -> str:
        """Replace the text and blocks of the bot's message ``ts``; return its ``ts``."""
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": message.text, "blocks": list(message.blocks)}
        if metadata is not None:
            args["metadata"] = _check_metadata(metadata)
        resp = self._call("chat.update", self._client.chat_update, args, idempotent=True)
        return str(resp["ts"])

    def respond(
        self,
        response_url: str,
        message: Message,
        *,
        replace_original: bool = False,
        response_type: str = "ephemeral",
    ) -> None:
        """Answer a slash command or button through its ``response_url`` (works without membership)."""
        body: dict[str, Any] = {"response_type": response_type, "replace_original": replace_original}
        body.update(_content(message))
        webhook = WebhookClient(response_url, timeout=self._timeout, retry_handlers=[])
        try:
            resp = webhook.send_dict(body)
        except (OSError, HTTPException) as exc:
            raise _transport_error("response_url", exc) from exc
        text = (resp.body or "").strip()
        if resp.status_code != 200:
            code = text if re.fullmatch(r"[a-z_]{2,64}", text) else f"http_{resp.status_code}"
            raise DeliveryError(
                code,
                f"response_url answered HTTP {resp.status_code}: {text[:100]!r}",
                ambiguous=resp.status_code >= 500,
            )
        if text == "ok" or _json_ok(text):
            return
        raise DeliveryError("unexpected_response", f"response_url answered 200 with {text[:100]!r}")

    # ---- reading ---------------------------------------------------------------------------------
    def auth_test(self) -> dict:
        """Check the token; the answer carries ``user_id`` (the bot user), ``bot_id`` and ``team_id``."""
        return dict(self._call("auth.test", self._client.auth_test, {}, idempotent=True).data)  # type: ignore[arg-type]

    def find_posted(self, channel: str, *, oldest: float, event_type: str) -> list[dict]:
        """Top-level messages since ``oldest`` whose metadata has ``event_type``, oldest first.

        Each item is ``{"ts": str, "event_payload": dict}``. Thread replies are not in the channel
        history; look for them with :meth:`find_replies`.
        """
        args = {"channel": channel, "oldest": f"{oldest:.6f}", "include_all_metadata": True, "limit": 200}
        return self._scan("conversations.history", self._client.conversations_history, args, event_type)

    def find_replies(self, channel: str, thread_ts: str, event_type: str) -> list[dict]:
        """Messages of the thread under ``thread_ts`` (parent included) with metadata ``event_type``."""
        args = {"channel": channel, "ts": thread_ts, "include_all_metadata": True, "limit": 200}
        return self._scan("conversations.replies", self._client.conversations_replies, args, event_type)

    def _scan(self, api: str, fn: Callable[..., SlackResponse], args: dict, event_type: str) -> list[dict]:
        found: list[dict] = []
        cursor = ""
        while True:
            resp = self._call(api, fn, {**args, "cursor": cursor} if cursor else args, idempotent=True)
            for msg in resp.get("messages") or []:
                meta = msg.get("metadata") or {}
                if meta.get("event_type") == event_type:
                    found.append({"ts": msg["ts"], "event_payload": meta.get("event_payload") or {}})
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return sorted(found, key=lambda m: float(m["ts"]))

    # ---- transport -------------------------------------------------------------------------------
    def _wait_turn(self, api: str, channel: str | None) -> None:
        """Sleep until the method is out of its Retry-After and the channel's pacing slot comes."""
        with self._lock:
            now = self._clock()
            start = max(now, self._blocked_until.get(api, 0.0))
            if channel is not None:
                start = max(start, self._next_post.get(channel, 0.0))
                self._next_post[channel] = start + self._min_interval
        if start > now:
            self._sleep(start - now)

    def _call(
        self,
        api: str,
        fn: Callable[..., SlackResponse],
        args: dict,
        *,
        pace: str | None = None,
        idempotent: bool = False,
    ) -> SlackResponse:
        limited = lost = 0
        while True:
            self._wait_turn(api, pace)
            try:
                return fn(**args)
            except SlackApiError as exc:
                wait = self._retry_after(exc.response) if exc.response.status_code == 429 else None
                if wait is None or limited >= self._max_429:
                    error = _api_error(api, exc, limited)
                    if isinstance(error, AuthError) and self.auth_failure is None:
                        self.auth_failure = error
                    raise error from exc
                limited += 1
                log.warning("Slack rate-limited %s; waiting %.1f s (retry %d of %d)", api, wait, limited, self._max_429)
                with self._lock:
                    until = self._clock() + wait
                    self._blocked_until[api] = max(self._blocked_until.get(api, 0.0), until)
            except (OSError, HTTPException) as exc:
                if not idempotent or lost >= READ_RETRIES:
                    raise _transport_error(api, exc) from exc
                lost += 1
                log.warning("%s failed (%s); retrying read %d of %d", api, exc, lost, READ_RETRIES)
                self._sleep(0.5 * lost)
            finally:
                if pace is not None:  # the next post to this channel waits a full interval after this answer
                    with self._lock:
                        after = self._clock() + self._min_interval
                        self._next_post[pace] = max(self._next_post.get(pace, 0.0), after)

    def _retry_after(self, resp: SlackResponse) -> float | None:
        """Seconds to wait for a 429 (``Retry-After``, 1 s if absent); None when over the cap."""
        raw = next((str(v) for k, v in resp.headers.items() if k.lower() == "retry-after"), "")
        wait = float(raw) if raw.strip().isdigit() else 1.0
        return wait if wait <= self._max_retry_after else None


def _content(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"text": message.text}
    if message.blocks:
        out["blocks"] = list(message.blocks)
    return out


def _check_metadata(metadata: dict) -> dict:
    if not isinstance(metadata.get("event_type"), str) or not isinstance(metadata.get("event_payload"), dict):
        raise ValueError(f"Slack metadata needs a str event_type and a dict event_payload, got {metadata!r}")
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def _json_ok(text: str) -> bool:
    try:
        return json.loads(text).get("ok") is True
    except (ValueError, AttributeError):
        return False


def _api_error(api: str, exc: SlackApiError, retries: int) -> DeliveryError:
    resp = exc.response
    status = resp.status_code
    data = resp.data if isinstance(resp.data, dict) else {}
    if status == 429:
        return DeliveryError("ratelimited", f"{api}: still rate-limited (HTTP 429) after {retries} waits")
    if status >= 500:
        return DeliveryError(
            f"http_{status}", f"{api}: Slack answered HTTP {status}; it may have applied the call", ambiguous=True
        )
    code = str(data.get("error") or "")
    if status != 200 and not re.fullmatch(r"[a-z_]+", code):
        code = f"http_{status}"
    detail = "; ".join(str(e) for e in data.get("errors") or []) or data.get("needed") or ""
    message = f"{api} failed: {code}" + (f" ({detail})" if detail else "")
    if code in AUTH_CODES:
        return AuthError(code, f"{api}: Slack rejected the bot token ({code}); check SLACK_BOT_TOKEN")
    return DeliveryError(code or "unknown_error", message, ambiguous=code in AMBIGUOUS_CODES)


def _transport_error(api: str, exc: BaseException) -> DeliveryError:
    """A request that failed below HTTP. Only a failure to connect/send proves nothing was applied."""
    if isinstance(exc, urllib.error.URLError):
        return DeliveryError("connection_failed", f"{api}: could not reach Slack ({exc.reason})")
    code = "timeout" if isinstance(exc, TimeoutError) else "connection_lost"
    return DeliveryError(code, f"{api}: no response from Slack ({type(exc).__name__}: {exc})", ambiguous=True)
