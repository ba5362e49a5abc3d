"""Fake Slack Socket Mode: a hand-written RFC 6455 server side plus the envelope hub.

The HTTP server in ``tests/fakes/slack.py`` hands every ``GET /link/?ticket=…`` upgrade to
:class:`SocketModeHub`, which completes the handshake, sends ``hello`` at once (real Slack speaks
first), answers pings with pongs, records acks, and pushes envelopes built in the exact shapes of
``shared/fixtures/slack_socket_mode/``. It is written by hand (not with ``websockets``) so that a test
can stop pongs or make a socket half-open, which a library server would not allow.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (servers never mask)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n) if n else b""
    if len(data) < n:
        raise EOFError("socket closed")
    return data


def read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes, bool]:
    """Read one frame: ``(fin, opcode, unmasked payload, was_masked)``."""
    b0, b1 = _read_exact(rfile, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", _read_exact(rfile, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", _read_exact(rfile, 8))
    masked = bool(b1 & 0x80)
    mask = _read_exact(rfile, 4) if masked else b""
    data = _read_exact(rfile, n)
    if masked:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return bool(b0 & 0x80), b0 & 0x0F, data, masked


@dataclass
class Envelope:
    """One envelope pushed to a client, and its ack (``None`` until it arrives)."""

    envelope_id: str
    frame: dict
    connection_id: int
    sent_at: float
    ack: dict | None = None
    acked_at: float | None = None
    ack_count: int = 0

    @property
    def ack_latency(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at


@dataclass
class WsConnection:
    """One upgraded socket. ``silent`` = half-open: nothing is written any more, input is ignored."""

    id: int
    ticket: str
    sock: socket.socket
    rfile: BinaryIO
    hub: SocketModeHub
    connected_at: float
    closed_at: float | None = None
    closed_by: str | None = None  # "client" | "server"
    silent: bool = False
    draining: bool = False  # sent a ``disconnect``: no new envelopes are routed here
    pings: list[tuple[float, bytes]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)  # text frames received from the client
    _send_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def _write(self, opcode: int, payload: bytes) -> bool:
        if not self.is_open or self.silent:
            return False
        try:
            with self._send_lock:
                self.sock.sendall(encode_frame(opcode, payload))
            return True
        except OSError:
            self._mark_closed("client")
            return False

    def send_json(self, obj: dict) -> bool:
        return self._write(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """A clean server-side close: close frame, then FIN."""
        self._write(OP_CLOSE, struct.pack("!H", code) + reason.encode())
        self._mark_closed("server")
        self._shutdown()

    def drop(self) -> None:
        """An abrupt close (no close frame), as when the network path dies."""
        self._mark_closed("server")
        self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _mark_closed(self, by: str) -> None:
        with self.hub.cond:
            if self.closed_at is None:
                self.closed_at, self.closed_by = time.monotonic(), by
                self.hub.cond.notify_all()

    def serve(self) -> None:
        """Read frames until the client goes away (runs in the HTTP handler thread)."""
        parts: list[bytes] = []
        try:
            while True:
                fin, opcode, data, masked = read_frame(self.rfile)
                if not masked:  # RFC 6455 §5.1: clients must mask
                    self.close(1002, "unmasked frame")
                    return
                if opcode == OP_PING:
                    self.pings.append((time.monotonic(), data))
                    if self.hub.answer_pings:
                        self._write(OP_PONG, data)
                elif opcode == OP_CLOSE:
                    self._write(OP_CLOSE, data[:2])
                    self._mark_closed("client")
                    return
                elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    parts.append(data)
                    if fin:
                        text, parts = b"".join(parts).decode("utf-8", "replace"), []
                        if not self.silent:
                            self.frames.append(text)
                            self.hub._on_text(self, text)
        except (EOFError, OSError):
            self._mark_closed("client")
        finally:
            self._shutdown()


class SocketModeHub:
    """All Socket Mode state: connections, envelopes sent, acks received, and the controls."""

    def __init__(
        self,
        *,
        app_id: str,
        team_id: str,
        bot_user_id: str,
        make_response_url: Callable[[str, str], str],
    ) -> None:
        self.app_id, self.team_id, self.bot_user_id = app_id, team_id, bot_user_id
        self._make_response_url = make_response_url
        self.cond = threading.Condition()
        self.connections: list[WsConnection] = []
        self.envelopes: dict[str, Envelope] = {}
        self.tickets: set[str] = set()
        self.answer_pings = True
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self.refuse_upgrades = False

    # ---- connection lifecycle -------------------------------------------------------------
    def new_ticket(self) -> str:
        ticket = uuid.uuid4().hex
        with self.cond:
            self.tickets.add(ticket)
        return ticket

    def check_upgrade(self, query: dict[str, list[str]], headers: Any) -> str | None:
        """Return an HTTP error line for a bad upgrade request, else ``None``."""
        if self.refuse_upgrades:
            return "503 Service Unavailable"
        if headers.get("Upgrade", "").lower() != "websocket" or not headers.get("Sec-WebSocket-Key"):
            return "400 Bad Request"
        if headers.get("Sec-WebSocket-Version") != "13":
            return "426 Upgrade Required"
        ticket = (query.get("ticket") or [""])[0]
        if ticket not in self.tickets or (query.get("app_id") or [""])[0] != self.app_id:
            return "401 Unauthorized"
        return None

    def attach(self, sock: socket.socket, rfile: BinaryIO, ticket: str, key: str) -> None:
        """Finish the handshake on an accepted upgrade, send ``hello`` and serve the socket."""
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        with self.cond:
            conn = WsConnection(next(self._ids), ticket, sock, rfile, self, time.monotonic())
            self.connections.append(conn)
            self.cond.notify_all()
        conn.send_json(
            {
                "type": "hello",
                "num_connections": len(self.open_connections()),
                "debug_info": {
                    "host": f"applink-fake-{conn.id}",
                    "build_number": 10,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        conn.serve()

    def open_connections(self) -> list[WsConnection]:
        with self.cond:
            return [c for c in self.connections if c.is_open]

    @property
    def connection_count(self) -> int:
        return len(self.open_connections())

    @property
    def connect_times(self) -> list[float]:
        with self.cond:
            return [c.connected_at for c in self.connections]

    def wait_connects(self, total: int, timeout: float = 10.0) -> WsConnection:
        """Wait until ``total`` connections have been made in all; return the newest one."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.connections) >= total, timeout):
                raise TimeoutError(f"only {len(self.connections)} of {total} Socket Mode connections made")
            return self.connections[-1]

    def wait_open_count(self, count: int, timeout: float = 10.0) -> None:
        """Wait until exactly ``count`` sockets are open (e.g. the old one closed after a refresh)."""
        with self.cond:
            if not self.cond.wait_for(lambda: len([c for c in self.connections if c.is_open]) == count, timeout):
                raise TimeoutError(f"{self.connection_count} Socket Mode connections open, expected {count}")

    # ---- controls ---------------------------------------------------------------------------
    def set_pong(self, answer: bool) -> None:
        self.answer_pings = answer

    def go_silent(self) -> None:
        """Half-open every current socket: no pongs, no envelopes, input ignored; TCP stays up."""
        for conn in self.open_connections():
            conn.silent = True

    def disconnect(self, reason: str = "refresh_requested") -> int:
        """Send a ``disconnect`` frame to every healthy connection; return how many got it."""
        sent = 0
        for conn in self.open_connections():
            frame: dict[str, Any] = {"type": "disconnect", "reason": reason}
            if reason == "too_many_websockets":
                frame["num_connections"] = self.connection_count
            frame["debug_info"] = {"host": f"applink-fake-{conn.id}"}
            if reason == "too_many_websockets":
                frame["connection_info"] = {"app_id": self.app_id}
            if conn.send_json(frame):
                conn.draining, sent = True, sent + 1
        return sent

    def close_connections(self, code: int = 1001) -> None:
        for conn in self.open_connections():
            conn.close(code)

    def drop_connections(self) -> None:
        for conn in self.open_connections():
            conn.drop()

    # ---- envelopes ----------------------------------------------------------------------------
    def _on_text(self, conn: WsConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        env_id = msg.get("envelope_id") if isinstance(msg, dict) else None
        with self.cond:
            env = self.envelopes.get(env_id) if isinstance(env_id, str) else None
            if env is not None:
                env.ack_count += 1
                if env.ack is None:
                    env.ack, env.acked_at = msg, time.monotonic()
                self.cond.notify_all()

    def send(self, frame: dict, timeout: float = 5.0) -> str:
        """Push an envelope to one healthy connection (round robin); wait for one if none is up.

        Healthy = open, not half-open (``go_silent``) and not told to ``disconnect``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                healthy = [c for c in self.connections if c.is_open and not c.silent and not c.draining]
                if not healthy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("no healthy Socket Mode connection to send an envelope to")
                    self.cond.wait(min(left, 0.05))
                    continue
                conn = healthy[next(self._rr) % len(healthy)]
                env = Envelope(frame["envelope_id"], frame, conn.id, time.monotonic())
                self.envelopes[env.envelope_id] = env
            if conn.send_json(frame):
                return env.envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict:
        with self.cond:
            env = self.envelopes[envelope_id]
            if not self.cond.wait_for(lambda: env.ack is not None, timeout):
                raise TimeoutError(f"envelope {envelope_id} was not acked within {timeout} s")
            assert env.ack is not None
            return env.ack

    def slash_command_frame(
        self, command: str, text: str, channel_id: str, user_id: str, *, channel_name: str, user_name: str
    ) -> dict:
        return {
            "envelope_id": str(uuid.uuid4()),
            "payload": {
                "token": "verification-token",
                "team_id": self.team_id,
                "team_domain": "fake",
                "channel_id": channel_id,
                "channel_name": channel_name,
                "user_id": user_id,
                "user_name": user_name,
                "command": command,
                "text": text,
                "api_app_id": self.app_id,
                "response_url": self._make_response_url(channel_id, user_id),
                "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:16]}",
            },
            "type": "slash_commands",
            "accepts_response_payload": True,
        }

    def event_frame(self, event: dict, *, event_id: str | None, retry_attempt: int, retry_reason: str) -> dict:
        now = time.time()
        event = {**event}
        event.setdefault("ts", f"{now:.6f}")
        event.setdefault("event_ts", event["ts"])
        channel = event.get("channel", "")
        return {
            "envelope_id": str(uuid.uuid4()),
            "payload": {
                "token": "verification-token",
                "team_id": self.team_id,
                "api_app_id": self.app_id,
                "event": event,
                "type": "event_callback",
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(now),
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": self.team_id,
                        "user_id": self.bot_user_id,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
                "is_ext_shared_channel": False,
                "event_context": f"1-{event.get('type', 'message')}-{self.team_id}-{channel}",
            },
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }

    def block_action_frame(
        self,
        *,
        action_id: str,
        value: str,
        block_id: str,
        channel_id: str,
        user_id: str,
        message_ts: str,
        is_ephemeral: bool,
        message: dict | None,
    ) -> dict:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": "user", "name": "user", "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "verification_token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:16]}",
            "team": {"id": self.team_id, "domain": "fake"},
            "channel": {"id": channel_id, "name": channel_id.lower()},
            "response_url": self._make_response_url(channel_id, user_id),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": "Button", "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if message is not None:
            payload["message"] = message
        return {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": "interactive",
            "accepts_response_payload": False,
        }
