"""The Slack edge: binds ``/papers``, ``app_mention`` and the "More results" button to their callbacks.

``register(app, services)`` calls each surface's ``register`` and installs a global error backstop.
Every callback acks first (events are acked by Bolt before the callback runs), then submits the
work to ``services.work`` (never Bolt's listener pool, so acks are never starved) where
:mod:`bot.answers` does it and turns failures into words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.answers import Origin
from bot.answers.common import apologise
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    from handlers import actions, commands, events  # the surfaces import ``submit`` from here

    commands.register(app, services)
    events.register(app, services)
    actions.register(app, services)
    app.error(make_error_backstop(services))


def submit(services: Services, origin: Origin, fn: Callable[..., object], *args: object) -> None:
    """Run ``fn(*args)`` on the answer pool, after earlier answers in ``origin``'s channel. Never raises:
    an exception escaping a listener after its ack makes Bolt report a 500 (in Socket Mode: no ack,
    so Slack redelivers)."""
    try:
        services.work.submit(origin.channel, fn, *args)
    except RuntimeError:
        log.warning("not answering %s: the answer pool is shut down (the worker is stopping)", fn.__name__)


def origin_from_body(body: dict[str, Any]) -> Origin | None:
    """Who to answer for any payload (slash command, block action or event), if it says."""
    if body.get("command"):
        return Origin(str(body.get("channel_id") or ""), str(body.get("user_id") or ""), body.get("response_url"))
    if body.get("type") == "block_actions":
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        return Origin(str(channel or ""), str((body.get("user") or {}).get("id") or ""), body.get("response_url"))
    event = body.get("event") or {}
    if event.get("channel") and event.get("ts"):
        thread = event.get("thread_ts") or event["ts"]
        return Origin(str(event["channel"]), str(event.get("user") or ""), thread_ts=str(thread))
    return None


def make_error_backstop(services: Services) -> Any:
    """``app.error``: anything a callback let escape is logged with its traceback and apologised for."""

    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener", exc_info=error)
        origin = origin_from_body(body or {})
        if origin is not None and origin.channel:
            submit(services, origin, apologise, services.core, origin)

    return on_error
