"""The Socket Mode connection and its watchdog.

slack_sdk's built-in client pings and reconnects on its own, but a socket can stay "connected"
while nothing arrives (reliability.md F-SM1), and an invalid app token makes it retry for ever
(F-S9). The watchdog records the last inbound frame (any envelope or pong). When the socket has
been silent or disconnected longer than ``stale_after`` it forces a reconnect (and again at most
once per ``stale_after``, so a Slack outage is not hammered); when it stays
unhealthy longer than ``give_up_after`` it reports failure so the process exits non-zero and the
platform restarts it. A reconnect refused with an auth error (the app token was revoked) is fatal at
once: retrying cannot help.

Defaults (the ``PAPERBOY_SOCKET_*`` environment knobs override them, see ``bot/__main__.py``): the
SDK pings every ``PING_INTERVAL_S`` (and drops a socket itself after 4 missed pongs); the watchdog
checks every ``CHECK_EVERY_S`` and acts after ``STALE_AFTER_S`` of silence, so a half-open socket is
noticed within ``STALE_AFTER_S + CHECK_EVERY_S`` (under a minute) without racing the SDK's own reconnect.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.errors import AuthError

log = logging.getLogger(__name__)

PING_INTERVAL_S = 5.0
STALE_AFTER_S = 45.0
CHECK_EVERY_S = 5.0
GIVE_UP_AFTER_S = 600.0
# Slack's answers to apps.connections.open that no reconnect can fix.
AUTH_CODES = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive", "not_allowed_token_type"})


def connect(app: App, app_token: str, *, ping_interval: float = PING_INTERVAL_S) -> SocketModeHandler:
    """Open the socket once; an invalid app token is an AuthError, not an endless retry loop."""
    handler = SocketModeHandler(app, app_token, trace_enabled=False, ping_interval=ping_interval)
    _fast_switchover(handler.client)
    _ignore_replaced_sockets_disconnects(handler.client)
    try:
        handler.connect()
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown_error"))
        handler.client.close()
        hint = "check SLACK_APP_TOKEN and that Socket Mode is on"
        raise AuthError(code, f"apps.connections.open failed: {code} ({hint})") from None
    return handler


def _fast_switchover(client: Any) -> None:
    """Make a reconnect switch to the new socket at once instead of after ~3 s (slack_sdk 3.48 builtin client).

    On a ``disconnect`` (Slack's routine ``refresh_requested``) the SDK opens the new socket, then closes
    the old one, which waits for the old receive loop's lock: held in ``recv`` for up to its 3 s socket
    timeout. Until then nothing reads the new socket, so every envelope sent in the switch is acked
    about 3.1 s late: past Slack's 3 s deadline (the user sees ``operation_timeout``). Shutting the old
    socket down first wakes that ``recv`` at once; the SDK was about to close the socket anyway.
    """
    connect_session = client.connect

    def connect() -> None:
        old = client.current_session
        sock = getattr(old, "sock", None)
        if old is not None and sock is not None:
            close_session = old.close

            def close() -> None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                close_session()

            old.close = close
        connect_session()

    client.connect = connect


def _ignore_replaced_sockets_disconnects(client: Any) -> None:
    """Act on a ``disconnect`` only if it came from the socket still in use (slack_sdk 3.48 builtin client).

    The SDK reconnects on every ``disconnect`` frame it dequeues. A second one from the same old
    socket (Slack's ``warning`` then ``refresh_requested``, or a repeat) was acted on after the switch
    too: it replaced the brand-new socket and dropped the envelopes already sent to it (15 of 40
    slash commands in a test). A frame is read only while its socket is current (the SDK ends the old
    receive loop before it switches), so the session current at enqueue time is the frame's source;
    frames are processed in order by one thread.
    """
    sources: deque[object] = deque()
    local = threading.local()
    enqueue, process, reconnect = client.enqueue_message, client.process_message, client.connect_to_new_endpoint

    def enqueue_message(message: str) -> None:
        if '"disconnect"' in message and _frame_type(message) == "disconnect":
            sources.append(client.current_session)
        enqueue(message)

    def process_message() -> None:
        local.processing = True
        try:
            process()
        finally:
            local.processing = False

    def connect_to_new_endpoint(force: bool = False) -> None:
        if force and getattr(local, "processing", False) and sources:  # the SDK's disconnect path
            source = sources.popleft()
            if source is not client.current_session:
                log.info("ignoring a disconnect frame from a socket that was already replaced")
                return
        reconnect(force)

    client.enqueue_message = enqueue_message
    client.process_message = process_message
    client.connect_to_new_endpoint = connect_to_new_endpoint


def _frame_type(message: str) -> object:
    try:
        frame = json.loads(message)
    except ValueError:
        return None
    return frame.get("type") if isinstance(frame, dict) else None


class Watchdog:
    """Watches a SocketModeHandler's client; see the module docstring."""

    def __init__(
        self,
        handler: SocketModeHandler,
        *,
        stale_after: float = STALE_AFTER_S,
        give_up_after: float = GIVE_UP_AFTER_S,
        check_every: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.stale_after, self.give_up_after, self.check_every = stale_after, give_up_after, check_every
        self.clock = clock
        self.last_inbound = clock()
        self.unhealthy_since: float | None = None
        self.failed = threading.Event()
        self.reason = ""  # why ``failed`` was set, for the exit line
        self._stop = threading.Event()
        self._last_pong: float | None = None
        self._last_attempt = 0.0  # when the watchdog last forced a reconnect
        handler.client.on_message_listeners.append(self._seen)
        self._thread = threading.Thread(target=self._loop, name="socket-watchdog", daemon=True)

    def _seen(self, *_: Any) -> None:
        self.last_inbound = self.clock()

    def _pong_seen(self) -> None:
        session = getattr(self.handler.client, "current_session", None)
        pong = getattr(session, "last_ping_pong_time", None)
        if pong is not None and pong != self._last_pong:
            self._last_pong = pong
            self.last_inbound = self.clock()

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def healthy(self) -> bool:
        self._pong_seen()
        connected = bool(self.handler.client.is_connected())
        return connected and self.clock() - self.last_inbound < self.stale_after

    def check(self) -> None:
        """One watchdog step (the thread calls it every ``check_every`` seconds)."""
        if self.healthy():
            if self.unhealthy_since is not None:
                log.info("Socket Mode connection healthy again")
            self.unhealthy_since = None
            return
        now = self.clock()
        if self.unhealthy_since is None:
            self.unhealthy_since = now
            log.warning("Socket Mode connection silent for %.0f s; reconnecting", now - self.last_inbound)
            self._reconnect()
        elif now - self.unhealthy_since >= self.give_up_after:
            self._fail(f"Socket Mode connection unhealthy for {now - self.unhealthy_since:.0f} s; giving up")
        elif now - self._last_attempt >= self.stale_after:  # retry, but at most once per stale_after
            self._reconnect()

    def _fail(self, reason: str) -> None:
        """Report failure; the composition root logs ``reason`` in its one exit line and exits non-zero."""
        self.reason = reason
        self.failed.set()

    def _reconnect(self) -> None:
        self._last_attempt = self.clock()
        try:
            self.handler.client.connect_to_new_endpoint(force=True)  # Slack's hello will count as inbound
        except SlackApiError as exc:
            code = str(exc.response.get("error", "unknown_error"))
            if code in AUTH_CODES:  # the app token was revoked: no retry can fix it
                self._fail(f"apps.connections.open failed: {code} (check SLACK_APP_TOKEN and that Socket Mode is on)")
            else:
                log.warning("Socket Mode reconnect failed: apps.connections.open: %s", code)
        except Exception as exc:  # socket errors: keep trying until give_up_after
            log.warning("Socket Mode reconnect failed: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.check_every):
            try:
                self.check()
            except Exception:
                log.exception("socket watchdog check failed")
            if self.failed.is_set():
                return
