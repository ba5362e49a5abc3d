"""FakeSlack: a local Slack (Web API + Socket Mode + response_url) on 127.0.0.1, port 0.

One threaded HTTP server serves ``/api/<method>`` (JSON, form or query params; token from
``Authorization: Bearer`` or a ``token`` field), ``/response/<id>`` (slash-command response URLs:
records JSON posts, answers plain ``ok``, at most 5 uses) and the Socket Mode WebSocket at
``/link/?ticket=…&app_id=…`` (see ``slack_socket.py``). Faults are queued per method
(:class:`Fault`) or applied on every n-th call; every call is recorded with its monotonic time and
whether it was answered. Usage::

    with FakeSlack() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=1))
"""

from __future__ import annotations

import collections
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.slack_socket import Envelope, SocketModeHub, WsConnection
from tests.fakes.slack_web import Fault, Workspace, block_errors

__all__ = ["Call", "FakeSlack", "Fault"]

SERVER_ERROR_HTML = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Server Error | Slack</title></head>'
    "<body><h1>Server Error</h1><p>It seems like there’s a problem connecting to Slack.</p></body></html>"
)
RESPONSE_URL_MAX_USES = 5


@dataclass
class Call:
    """One Web API request as the fake saw it."""

    method: str
    params: dict
    http_method: str
    token: str | None
    at: float  # time.monotonic() on arrival
    fault: str | None = None
    status: int | None = None
    response: dict | None = None
    answered: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on resets
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)

    def do_POST(self) -> None:
        self.server.fake._dispatch(self)

    def reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def reply_json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        self.reply(status, raw, "application/json; charset=utf-8", headers)

    def hang_up(self, *, reset: bool) -> None:
        """Close without a response: FIN (``reset=False``) or TCP RST (``reset=True``)."""
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
        self.close_connection = True


class FakeSlack:
    """A fake Slack workspace with one app. All controls and assertions helpers are methods here."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-1-fake-app-token",
        bot_user_id: str = "U0PAPERBOY",
        bot_id: str = "B0PAPERBOY",
        team_id: str = "T111",
        team: str = "Fake Workspace",
        app_id: str = "A111",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.bot_user_id, self.bot_id, self.team_id, self.app_id = bot_user_id, bot_id, team_id, app_id
        self.workspace = Workspace(
            bot_token=bot_token,
            app_token=app_token,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            team_id=team_id,
            team=team,
            app_id=app_id,
            clock=clock,
        )
        self.workspace.new_socket_url = self._new_socket_url
        self.socket = SocketModeHub(
            app_id=app_id, team_id=team_id, bot_user_id=bot_user_id, make_response_url=self.new_response_url
        )
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self._every_nth: dict[str, tuple[int, Fault]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._responses: dict[str, dict] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-slack"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self.socket.drop_connections()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeSlack is not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def _new_socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={self.socket.new_ticket()}&app_id={self.app_id}"

    # ---- workspace controls ----------------------------------------------------------------------
    def add_channel(self, channel_id: str, name: str | None = None, *, private: bool = False) -> None:
        self.workspace.channels[channel_id] = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_private": private,
            "is_archived": False,
        }

    def set_channel_error(self, channel_id: str, error: str | None) -> None:
        """Make every call naming the channel fail with ``not_in_channel``, ``channel_not_found``,
        ``is_archived`` (posting methods only) …; ``None`` clears it."""
        if error is None:
            self.workspace.channel_errors.pop(channel_id, None)
        else:
            self.workspace.channel_errors[channel_id] = error

    def revoke(self, token: str, error: str = "token_revoked") -> None:
        """Every later call with ``token`` fails with ``error`` (``token_revoked``, ``account_inactive`` …)."""
        self.workspace.revoked[token] = error

    def post_as_user(self, channel: str, text: str, *, user: str = "U0HUMAN", thread_ts: str | None = None) -> str:
        """Put a human's message in the timeline (no API call); return its ts."""
        msg = self.workspace.add_message(
            channel, {"text": text, "user": user, "bot_id": None, "thread_ts": thread_ts, "via": "user"}
        )
        return str(msg["ts"])

    # ---- faults ------------------------------------------------------------------------------------
    def add_fault(self, method: str, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` calls of ``method`` (FIFO, before every_nth)."""
        with self._lock:
            self._faults[method].extend([fault] * times)

    def every_nth(self, method: str, n: int, fault: Fault | None) -> None:
        """Apply ``fault`` to calls number n, 2n, 3n … of ``method`` (counted from now); None clears."""
        with self._lock:
            if fault is None:
                self._every_nth.pop(method, None)
            else:
                self._every_nth[method] = (n, fault)
                self._counts[method] = 0

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._every_nth.clear()

    def _next_fault(self, method: str) -> Fault | None:
        with self._lock:
            self._counts[method] += 1
            if self._faults[method]:
                return self._faults[method].popleft()
            rule = self._every_nth.get(method)
            if rule and self._counts[method] % rule[0] == 0:
                return rule[1]
            return None

    # ---- recording ---------------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str) -> list[dict]:
        """Every stored message of the channel (top-level and thread replies) in ts order."""
        with self.workspace.lock:
            return [dict(m) for m in self.workspace.timeline.get(channel, [])]

    def top_level(self, channel: str) -> list[dict]:
        return [m for m in self.messages(channel) if not m["thread_ts"]]

    def replies(self, channel: str, ts: str) -> list[dict]:
        """The replies in the thread under parent ``ts`` (the parent excluded), oldest first."""
        return [m for m in self.messages(channel) if m["thread_ts"] == ts]

    def ephemerals(self, channel: str | None = None) -> list[dict]:
        with self.workspace.lock:
            return [dict(e) for e in self.workspace.ephemerals if channel in (None, e["channel"])]

    def mentions(self, channel: str | None = None) -> list[str]:
        return self.workspace.mentions(channel)

    # ---- response_url ------------------------------------------------------------------------------
    def new_response_url(self, channel_id: str = "C111", user_id: str = "U111") -> str:
        rid = uuid.uuid4().hex
        with self._lock:
            self._responses[rid] = {"channel": channel_id, "user": user_id, "posts": []}
        return f"{self.base_url}/response/{rid}"

    def responses(self, response_url: str) -> list[dict]:
        """The JSON bodies posted to ``response_url`` that were accepted, in order."""
        with self._lock:
            return list(self._responses[response_url.rsplit("/", 1)[-1]]["posts"])

    # ---- Socket Mode (delegates to the hub) ------------------------------------------------------
    def send_slash_command(
        self,
        command: str,
        text: str = "",
        channel_id: str = "C111",
        user_id: str = "U111",
        *,
        channel_name: str = "random",
        user_name: str = "testxyz",
        timeout: float = 5.0,
    ) -> str:
        frame = self.socket.slash_command_frame(
            command, text, channel_id, user_id, channel_name=channel_name, user_name=user_name
        )
        return self.socket.send(frame, timeout)

    def send_event(
        self,
        event: dict,
        retry_attempt: int = 0,
        retry_reason: str = "",
        *,
        event_id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Send an Events API envelope; give the same ``event_id`` with ``retry_attempt`` for a redelivery."""
        frame = self.socket.event_frame(
            event, event_id=event_id, retry_attempt=retry_attempt, retry_reason=retry_reason
        )
        return self.socket.send(frame, timeout)

    def send_app_mention(self, text: str, channel: str = "C111", user: str = "U222", **kw: Any) -> str:
        event = {"type": "app_mention", "text": f"<@{self.bot_user_id}> {text}", "user": user, "channel": channel}
        if kw.get("thread_ts"):
            event["thread_ts"] = kw.pop("thread_ts")
        return self.send_event(event, **kw)

    def send_block_action(
        self,
        action_id: str,
        value: str = "",
        *,
        block_id: str = "b",
        channel_id: str = "C111",
        user_id: str = "U111",
        message_ts: str = "111.222",
        is_ephemeral: bool = True,
        message: dict | None = None,
        timeout: float = 5.0,
    ) -> str:
        frame = self.socket.block_action_frame(
            action_id=action_id,
            value=value,
            block_id=block_id,
            channel_id=channel_id,
            user_id=user_id,
            message_ts=message_ts,
            is_ephemeral=is_ephemeral,
            message=message,
        )
        return self.socket.send(frame, timeout)

    def redeliver(self, envelope_id: str, retry_reason: str = "timeout", timeout: float = 5.0) -> str:
        """Resend an Events API envelope as Slack's retry: new envelope_id, same event_id, attempt + 1."""
        old = self.socket.envelopes[envelope_id].frame
        frame = {**old, "envelope_id": str(uuid.uuid4()), "retry_attempt": old.get("retry_attempt", 0) + 1}
        frame["retry_reason"] = retry_reason
        return self.socket.send(frame, timeout)

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict:
        return self.socket.wait_ack(envelope_id, timeout)

    def envelope(self, envelope_id: str) -> Envelope:
        return self.socket.envelopes[envelope_id]

    def disconnect(self, reason: str = "refresh_requested") -> int:
        return self.socket.disconnect(reason)

    def set_pong(self, answer: bool) -> None:
        self.socket.set_pong(answer)

    def go_silent(self) -> None:
        self.socket.go_silent()

    def drop_connections(self) -> None:
        self.socket.drop_connections()

    @property
    def connection_count(self) -> int:
        return self.socket.connection_count

    @property
    def connections(self) -> list[WsConnection]:
        return list(self.socket.connections)

    def wait_connects(self, total: int, timeout: float = 10.0) -> WsConnection:
        return self.socket.wait_connects(total, timeout)

    def wait_open_count(self, count: int, timeout: float = 10.0) -> None:
        self.socket.wait_open_count(count, timeout)

    # ---- HTTP dispatch ---------------------------------------------------------------------------
    def _dispatch(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        path = url.path
        if path.rstrip("/") == "/link" and h.command == "GET":
            self._upgrade(h, parse_qs(url.query))
        elif path.startswith("/api/"):
            self._api(h, path[len("/api/") :], url.query)
        elif path.startswith("/response/") and h.command == "POST":
            self._response_url(h, path.rsplit("/", 1)[-1])
        else:
            h.reply(404, b"Not Found", "text/plain")

    def _upgrade(self, h: _Handler, query: dict[str, list[str]]) -> None:
        error = self.socket.check_upgrade(query, h.headers)
        if error:
            h.reply(int(error.split()[0]), error.encode(), "text/plain")
            return
        h.close_connection = True
        self.socket.attach(h.connection, h.rfile, query["ticket"][0], h.headers["Sec-WebSocket-Key"])

    def _read_params(self, h: _Handler, query: str) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if raw:
            if "json" in (h.headers.get("Content-Type") or ""):
                body = json.loads(raw)
                params.update(body if isinstance(body, dict) else {})
            else:
                params.update({k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()})
        return params

    def _api(self, h: _Handler, method: str, query: str) -> None:
        try:
            params = self._read_params(h, query)
        except ValueError:
            h.reply_json(200, {"ok": False, "error": "invalid_json"})
            return
        auth = h.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else params.pop("token", None)
        params.pop("token", None)
        call = Call(method, params, h.command, token, time.monotonic())
        with self._lock:
            self._calls.append(call)
        fault = self._next_fault(method)
        call.fault = fault.kind if fault else None
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault and fault.kind == "reset":
            h.hang_up(reset=True)
            return
        if fault and fault.kind == "ratelimited":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            body: dict = {"ok": False, "error": "ratelimited"}
            self._answer(h, call, 429, body, headers)
            return
        if fault and fault.kind == "http":
            h.reply(fault.status, SERVER_ERROR_HTML.encode(), "text/html; charset=utf-8")
            call.status, call.answered = fault.status, True
            return
        if fault and fault.kind == "error":
            body = {"ok": False, "error": fault.error}
        else:
            body = self.workspace.handle(method, params, http_method=h.command, token=token)
        call.response = body
        if fault and fault.kind == "lost":
            h.hang_up(reset=False)
            return
        self._answer(h, call, 200, body, {})

    def _answer(self, h: _Handler, call: Call, status: int, body: dict, headers: dict[str, str]) -> None:
        call.status, call.response = status, body
        try:
            h.reply_json(status, body, headers)
            call.answered = True
        except OSError:
            pass

    def _response_url(self, h: _Handler, rid: str) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            slot = self._responses.get(rid)
            if slot is None:
                h.reply(404, b"no_service", "text/plain")
                return
            if len(slot["posts"]) >= RESPONSE_URL_MAX_USES:
                h.reply(404, b"used_url", "text/plain")  # [unverified] error body after the 5th use
                return
            try:
                body = json.loads(raw)
            except ValueError:
                h.reply(400, b"invalid_payload", "text/plain")
                return
            if not body.get("text") and not body.get("blocks") and not body.get("delete_original"):
                h.reply(400, b"no_text", "text/plain")
                return
            if body.get("blocks") and block_errors(body["blocks"]):
                h.reply(400, b"invalid_blocks", "text/plain")
                return
            slot["posts"].append(body)
        if body.get("response_type") == "in_channel":
            self.workspace.add_message(
                slot["channel"],
                {"text": body.get("text") or "", "blocks": body.get("blocks") or [], "via": "response_url"},
            )
        h.reply(200, b"ok", "text/html")
