"""Fake Slack Web API: workspace state (channels, message timeline) and the method implementations.

:class:`Workspace` turns ``(method, params, token)`` into ``(http_status, json_body)`` like Slack does
(errors are HTTP 200 with ``{"ok": false, "error": …}``) and keeps the timeline that tests assert on.
Transport concerns (HTTP, faults, recording) live in ``tests/fakes/slack.py``. Limits follow
``wire-formats.md`` §7: 50 blocks, 3000-character section text, 150-character header text, 12,000
characters of block text in all (``msg_blocks_too_long``), 40,000-character ``text`` (truncated with
a ``message_truncated`` warning).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POSTING_METHODS = {"chat.postMessage", "chat.postEphemeral", "chat.update"}
MENTION_TOKENS = ("<!channel", "<!here", "<!everyone", "<!subteam^", "<@")


@dataclass(frozen=True)
class Fault:
    """One injected failure. Build with the class methods; see :meth:`FakeSlack.add_fault`."""

    kind: str  # ratelimited | http | error | reset | lost | delay
    status: int = 200
    retry_after: int | None = None
    error: str = ""
    seconds: float = 0.0

    @classmethod
    def ratelimited(cls, retry_after: int | None = 1) -> Fault:
        """HTTP 429, ``Retry-After: N`` (omitted when None), body ``{"ok":false,"error":"ratelimited"}``."""
        return cls("ratelimited", 429, retry_after=retry_after)

    @classmethod
    def http(cls, status: int = 500) -> Fault:
        """An HTTP 5xx (or other) status with Slack's HTML error page as the body."""
        return cls("http", status)

    @classmethod
    def slack_error(cls, code: str) -> Fault:
        """HTTP 200 ``{"ok": false, "error": code}``; the request is not processed."""
        return cls("error", 200, error=code)

    @classmethod
    def reset(cls) -> Fault:
        """TCP reset before the request is processed (nothing stored)."""
        return cls("reset")

    @classmethod
    def lost(cls) -> Fault:
        """Accepted but the response is lost: the request IS processed, then the socket closes."""
        return cls("lost")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep ``seconds`` before processing the request normally (latency)."""
        return cls("delay", seconds=seconds)


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


def _json_param(value: Any) -> Any:
    """Form bodies carry blocks/metadata as JSON strings; JSON bodies carry objects."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        t = obj.get("text")
        return t if isinstance(t, str) else _text_of(t) if isinstance(t, dict) else ""
    return ""


def block_errors(blocks: Any) -> tuple[str, list[str]] | None:
    """Validate Block Kit size limits; return ``(error_code, messages)`` or ``None``."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return "invalid_blocks_format", ["must provide an array of block objects [json-pointer:/blocks]"]
    errs: list[str] = []
    if len(blocks) > 50:
        errs.append("no more than 50 items allowed [json-pointer:/blocks]")
    total = 0
    for i, block in enumerate(blocks):
        kind, ptr = block.get("type"), f"/blocks/{i}"
        if not isinstance(kind, str):
            errs.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        text = _text_of(block)
        total += len(text)
        if kind == "section":
            if len(text) > 3000:
                errs += [
                    f"failed to match all allowed schemas [json-pointer:{ptr}/text]",
                    f"must be less than 3001 characters [json-pointer:{ptr}/text/text]",
                ]
            fields = block.get("fields") or []
            if len(fields) > 10:
                errs.append(f"no more than 10 items allowed [json-pointer:{ptr}/fields]")
            for j, f in enumerate(fields):
                total += len(_text_of(f))
                if len(_text_of(f)) > 2000:
                    errs.append(f"must be less than 2001 characters [json-pointer:{ptr}/fields/{j}/text]")
            if not text and not fields:
                errs.append(f"must provide text or fields [json-pointer:{ptr}]")
        elif kind == "header":
            if (block.get("text") or {}).get("type") != "plain_text":
                errs.append(f"must be a plain_text object [json-pointer:{ptr}/text]")
            if len(text) > 150:
                errs.append(f"must be less than 151 characters [json-pointer:{ptr}/text/text]")
        elif kind == "context":
            elements = block.get("elements") or []
            total += sum(len(_text_of(e)) for e in elements)
            if len(elements) > 10:
                errs.append(f"no more than 10 items allowed [json-pointer:{ptr}/elements]")
        elif kind == "actions" and len(block.get("elements") or []) > 25:
            errs.append(f"no more than 25 items allowed [json-pointer:{ptr}/elements]")
    if errs:
        return "invalid_blocks", errs
    if total > 12000:
        return "msg_blocks_too_long", []
    return None


class Workspace:
    """One fake Slack workspace with one installed app (bot user + app-level token)."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        bot_user_id: str,
        bot_id: str,
        team_id: str,
        team: str,
        app_id: str,
        clock: Callable[[], float],
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.bot_user_id, self.bot_id, self.team_id, self.team, self.app_id = bot_user_id, bot_id, team_id, team, app_id
        self.clock = clock
        self.lock = threading.RLock()
        self.revoked: dict[str, str] = {}  # token -> error code
        self.channels: dict[str, dict] = {}
        self.channel_errors: dict[str, str] = {}
        self.timeline: dict[str, list[dict]] = {}  # channel -> stored messages in ts order
        self.ephemerals: list[dict] = []
        self._last_ts = 0.0
        self.new_socket_url: Callable[[], str] = lambda: ""

    # ---- helpers ---------------------------------------------------------------------------
    def next_ts(self) -> str:
        with self.lock:
            t = max(round(self.clock(), 6), round(self._last_ts + 0.000001, 6))
            self._last_ts = t
            return f"{t:.6f}"

    def channel(self, ref: str) -> dict | None:
        """Look a channel up by id or ``#name``; unknown ids are created on first use."""
        with self.lock:
            if ref.startswith("#"):
                return next((c for c in self.channels.values() if c["name"] == ref[1:]), None)
            if ref not in self.channels:
                self.channels[ref] = {"id": ref, "name": ref.lower(), "is_private": False, "is_archived": False}
            return self.channels[ref]

    def find(self, channel: str, ts: str) -> dict | None:
        return next((m for m in self.timeline.get(channel, []) if m["ts"] == ts), None)

    def api_message(self, m: dict, *, with_metadata: bool) -> dict:
        out: dict[str, Any] = {"user": m["user"], "type": "message", "ts": m["ts"]}
        if m["bot_id"]:
            out.update(bot_id=m["bot_id"], app_id=self.app_id)
        out.update(text=m["text"], team=self.team_id)
        if m["blocks"]:
            out["blocks"] = m["blocks"]
        if m["thread_ts"]:
            out.update(thread_ts=m["thread_ts"], parent_user_id=self.find(m["channel"], m["thread_ts"])["user"])
            if m["reply_broadcast"]:
                out["subtype"] = "thread_broadcast"
        replies = [r for r in self.timeline.get(m["channel"], []) if r["thread_ts"] == m["ts"]]
        if replies:
            out.update(
                thread_ts=m["ts"],
                reply_count=len(replies),
                reply_users_count=len({r["user"] for r in replies}),
                latest_reply=replies[-1]["ts"],
                reply_users=sorted({r["user"] for r in replies}),
            )
        if m["edited"]:
            out["edited"] = {"user": m["user"], "ts": m["edited"]}
        if with_metadata and m["metadata"] is not None:
            out["metadata"] = m["metadata"]
        return out

    def add_message(self, channel: str, fields: dict) -> dict:
        with self.lock:
            msg = {
                "channel": channel,
                "ts": fields.get("ts") or self.next_ts(),
                "text": "",
                "blocks": [],
                "thread_ts": None,
                "metadata": None,
                "unfurl_links": None,
                "unfurl_media": None,
                "reply_broadcast": False,
                "link_names": None,
                "parse": None,
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "edited": None,
                "via": "chat.postMessage",
            }
            msg.update({k: v for k, v in fields.items() if k != "ts"})
            line = self.timeline.setdefault(channel, [])
            line.append(msg)
            line.sort(key=lambda m: float(m["ts"]))
            return msg

    # ---- dispatch ----------------------------------------------------------------------------
    def auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if token in self.revoked:
            return self.revoked[token]
        if token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        wants_app = method == "apps.connections.open"
        if (token == self.app_token) != wants_app:
            return "not_allowed_token_type"
        return None

    def handle(self, method: str, params: dict, *, http_method: str, token: str | None) -> dict:
        impl = getattr(self, "m_" + method.replace(".", "_"), None)
        if impl is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        err = self.auth_error(method, token)
        if err:
            return {"ok": False, "error": err}
        with self.lock:
            return impl(params, http_method)

    def _channel_error(self, params: dict, method: str) -> tuple[dict | None, str]:
        info = self.channel(str(params.get("channel") or "#"))
        if info is None:
            return {"ok": False, "error": "channel_not_found"}, ""
        code = self.channel_errors.get(info["id"])
        if code == "is_archived" and method not in POSTING_METHODS:
            code = None
        if code is None and info["is_archived"] and method in POSTING_METHODS:
            code = "is_archived"
        return ({"ok": False, "error": code} if code else None), info["id"]

    def _content(self, params: dict, *, require: bool = True) -> tuple[dict | None, dict]:
        text = params.get("text")
        blocks = _json_param(params.get("blocks")) if params.get("blocks") not in (None, "") else None
        out: dict[str, Any] = {"text": text if isinstance(text, str) else ""}
        if blocks is not None:
            bad = block_errors(blocks)
            if bad:
                body: dict[str, Any] = {"ok": False, "error": bad[0]}
                if bad[1]:
                    body["errors"] = bad[1]
                    body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in bad[1]]}
                return body, out
            out["blocks"] = [
                {**b, "block_id": b.get("block_id") or hashlib.sha1(json.dumps(b).encode()).hexdigest()[:5]}
                for b in blocks
            ]
        if require and not out["text"] and not blocks:
            return {"ok": False, "error": "no_text"}, out
        if "metadata" in params and params["metadata"] not in (None, ""):
            meta = _json_param(params["metadata"])
            if (
                not isinstance(meta, dict)
                or not isinstance(meta.get("event_type"), str)
                or not isinstance(meta.get("event_payload"), dict)
            ):
                return {"ok": False, "error": "invalid_metadata_format"}, out
            out["metadata"] = {"event_type": meta["event_type"], "event_payload": meta["event_payload"]}
        return None, out

    # ---- methods -----------------------------------------------------------------------------
    def m_auth_test(self, params: dict, http_method: str) -> dict:
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.com/",
            "team": self.team,
            "user": "paperboy",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def m_apps_connections_open(self, params: dict, http_method: str) -> dict:
        if http_method != "POST":
            return {"ok": False, "error": "insecure_request"}
        return {"ok": True, "url": self.new_socket_url()}

    def m_chat_postMessage(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "chat.postMessage")
        if bad:
            return bad
        bad, content = self._content(params)
        if bad:
            return bad
        warnings = []
        if len(content["text"]) > 40000:
            content["text"], warnings = content["text"][:40000], ["message_truncated"]
        thread_ts = params.get("thread_ts") or None
        if thread_ts:
            parent = self.find(channel, str(thread_ts))
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            thread_ts = parent["thread_ts"] or parent["ts"]  # a reply's ts means its parent's thread
        fields = {
            **content,
            "thread_ts": thread_ts,
            "reply_broadcast": parse_bool(params.get("reply_broadcast", False)) and bool(thread_ts),
        }
        for key in ("unfurl_links", "unfurl_media", "link_names"):
            if key in params:
                fields[key] = parse_bool(params[key])
        if "parse" in params:
            fields["parse"] = params["parse"]
        msg = self.add_message(channel, fields)
        body: dict[str, Any] = {
            "ok": True,
            "channel": channel,
            "ts": msg["ts"],
            "message": self.api_message(msg, with_metadata=True),
        }
        if warnings:
            body["response_metadata"] = {
                "messages": ["[WARN] Your message was truncated but still posted."],
                "warnings": warnings,
            }
        return body

    def m_chat_postEphemeral(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "chat.postEphemeral")
        if bad:
            return bad
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        bad, content = self._content(params)
        if bad:
            return bad
        ts = self.next_ts()
        self.ephemerals.append({"channel": channel, "user": params["user"], "ts": ts, **content})
        return {"ok": True, "message_ts": ts}

    def m_chat_update(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "chat.update")
        if bad:
            return bad
        msg = self.find(channel, str(params.get("ts", "")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg["user"] != self.bot_user_id:
            return {"ok": False, "error": "cant_update_message"}
        bad, content = self._content(params, require=False)
        if bad:
            return bad
        if "text" in params:
            msg["text"] = content["text"]
        if "blocks" in content:
            msg["blocks"] = content["blocks"]
        if "metadata" in content:
            msg["metadata"] = content["metadata"]
        msg["edited"] = self.next_ts()
        return {
            "ok": True,
            "channel": channel,
            "ts": msg["ts"],
            "text": msg["text"],
            "message": self.api_message(msg, with_metadata=True),
        }

    def _page(self, msgs: list[dict], params: dict, *, newest_first: bool) -> dict:
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or 1e12)
        inclusive = parse_bool(params.get("inclusive", False))

        def in_range(m: dict) -> bool:
            t = float(m["ts"])
            return oldest <= t <= latest if inclusive else oldest < t < latest

        picked = sorted((m for m in msgs if in_range(m)), key=lambda m: float(m["ts"]), reverse=newest_first)
        cursor = str(params.get("cursor") or "")
        start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        limit = max(1, min(int(params.get("limit") or 100), 999))
        page = picked[start : start + limit]
        more = start + limit < len(picked)
        meta = parse_bool(params.get("include_all_metadata", False))
        return {
            "ok": True,
            "messages": [self.api_message(m, with_metadata=meta) for m in page],
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {
                "next_cursor": base64.b64encode(f"next:{start + limit}".encode()).decode() if more else ""
            },
        }

    def m_conversations_history(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "conversations.history")
        if bad:
            return bad
        tops = [m for m in self.timeline.get(channel, []) if not m["thread_ts"] or m["reply_broadcast"]]
        return self._page(tops, params, newest_first=True)

    def m_conversations_replies(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "conversations.replies")
        if bad:
            return bad
        msg = self.find(channel, str(params.get("ts", "")))
        if msg is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [msg]
        if not msg["thread_ts"]:
            thread += [m for m in self.timeline[channel] if m["thread_ts"] == msg["ts"]]
        return self._page(thread, params, newest_first=False)

    def m_conversations_info(self, params: dict, http_method: str) -> dict:
        bad, channel = self._channel_error(params, "conversations.info")
        if bad and bad["error"] != "not_in_channel":
            return bad
        info = self.channels[channel]
        return {
            "ok": True,
            "channel": {
                "id": info["id"],
                "name": info["name"],
                "is_channel": not info["is_private"],
                "is_group": False,
                "is_im": False,
                "is_mpim": False,
                "is_private": info["is_private"],
                "created": 1654868334,
                "is_archived": info["is_archived"],
                "is_general": False,
                "name_normalized": info["name"],
                "is_member": self.channel_errors.get(channel) != "not_in_channel",
                "context_team_id": self.team_id,
            },
        }

    def mentions(self, channel: str | None = None) -> list[str]:
        """Every notifying mention (``<!channel>``, ``<!here>``, ``<@U…>`` …, or bare ``@here`` when
        ``link_names``/``parse=full`` was sent) in the ``text`` or mrkdwn blocks of stored messages."""
        found: list[str] = []
        with self.lock:
            for ch, msgs in self.timeline.items():
                for m in msgs if channel in (None, ch) else []:
                    for text in [m["text"], *_mrkdwn_texts(m["blocks"])]:
                        found += [tok for tok in MENTION_TOKENS if tok in text]
                        if m["link_names"] or m["parse"] == "full":
                            found += [w for w in ("@channel", "@here", "@everyone") if w in text]
        return found


def _mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, list):
        return [t for item in node for t in _mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str) else []
    return own + [t for v in node.values() if isinstance(v, (dict, list)) for t in _mrkdwn_texts(v)]
