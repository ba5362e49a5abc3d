"""The Socket Mode connection and its watchdog.

slack_sdk's built-in client pings and reconnects on its own, but a socket can stay "connected"
while nothing arrives (reliability.md F-SM1), and an invalid app token makes it retry for ever
(F-S9). The watchdog records the last inbound frame (any envelope or pong). When the socket has
been silent or disconnected longer than ``stale_after`` it forces a reconnect; when it stays
unhealthy longer than ``give_up_after`` it reports failure so the process exits non-zero and the
platform restarts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.errors import AuthError

log = logging.getLogger(__name__)


def connect(app: App, app_token: str) -> SocketModeHandler:
    """Open the socket once; an invalid app token is an AuthError, not an endless retry loop."""
    handler = SocketModeHandler(app, app_token, trace_enabled=False)
    try:
        handler.connect()
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown_error"))
        handler.client.close()
        hint = "check SLACK_APP_TOKEN and that Socket Mode is on"
        raise AuthError(code, f"apps.connections.open failed: {code} ({hint})") from None
    return handler


class Watchdog:
    """Watches a SocketModeHandler's client; see the module docstring."""

    def __init__(
        self,
        handler: SocketModeHandler,
        *,
        stale_after: float = 60.0,
        give_up_after: float = 600.0,
        check_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.stale_after, self.give_up_after, self.check_every = stale_after, give_up_after, check_every
        self.clock = clock
        self.last_inbound = clock()
        self.unhealthy_since: float | None = None
        self.failed = threading.Event()
        self._stop = threading.Event()
        self._last_pong: float | None = None
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
            log.error(
                "Socket Mode connection unhealthy for %.0f s; giving up so the platform restarts us",
                now - self.unhealthy_since,
            )
            self.failed.set()
        elif now - self.unhealthy_since >= self.stale_after:
            self._reconnect()

    def _reconnect(self) -> None:
        try:
            self.handler.client.connect_to_new_endpoint(force=True)  # Slack's hello will count as inbound
        except Exception as exc:  # SlackApiError, socket errors: keep trying until give_up_after
            log.warning("Socket Mode reconnect failed: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.check_every):
            try:
                self.check()
            except Exception:
                log.exception("socket watchdog check failed")
            if self.failed.is_set():
                return
