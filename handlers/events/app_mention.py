"""``app_mention``: search the mention's text and answer in its thread (a new thread under a top-level mention).

Bolt acks events before the callback runs; the callback only reads the payload and submits the work.
Slack redelivers an event whose ack was late (``retry_attempt`` in Socket Mode, ``x-slack-retry-num``
in Bolt's headers) and two workers may both receive it: the work is deduped on the ``event_id``.
The bot's own messages are ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltContext, BoltRequest

from bot import answers
from bot.answers import Origin
from bot.services import Services
from handlers import submit

log = logging.getLogger(__name__)

_ANY_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


def make_app_mention(services: Services) -> Callable[..., None]:
    def app_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext, request: BoltRequest) -> None:
        bot_user = services.bot_user_id or context.bot_user_id or ""
        if is_own(event, bot_user, context.bot_id):
            return
        channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
        if not channel or not ts:
            log.warning("app_mention without channel or ts ignored: %s", body.get("event_id"))
            return
        retry = _header(request, "x-slack-retry-num")
        if retry and retry != "0":
            reason = _header(request, "x-slack-retry-reason")
            log.info("app_mention %s redelivered (retry %s, %s)", body.get("event_id"), retry, reason)
        origin = Origin(channel, str(event.get("user") or ""), thread_ts=str(event.get("thread_ts") or ts))
        key = f"event:{body['event_id']}" if body.get("event_id") else f"mention:{channel}:{ts}"
        submit(services, origin, answers.run_mention, services.core, origin, strip_mention(event, bot_user), key)

    return app_mention


def is_own(event: dict[str, Any], bot_user: str, bot_id: str | None) -> bool:
    return bool((bot_user and event.get("user") == bot_user) or (bot_id and event.get("bot_id") == bot_id))


def strip_mention(event: dict[str, Any], bot_user: str) -> str:
    """The mention's text without the bot's ``<@U…>`` (every occurrence), whitespace collapsed."""
    text = str(event.get("text") or "")
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    else:
        text = _ANY_LEADING_MENTION.sub(" ", text)
    return " ".join(text.split())


def _header(request: BoltRequest, name: str) -> str:
    values = request.headers.get(name) or []
    return str(values[0]) if values else ""
