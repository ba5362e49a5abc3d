"""The "More results" button: ack, then post the next page of the stored search in the same thread.

The button's value is a search session id; the session (not the payload) says which query, which
channel and which thread. A double click or a redelivered action serves each page once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack

from bot import answers
from bot.answers import Origin
from bot.services import Services
from handlers import submit

log = logging.getLogger(__name__)


def make_papers_more(services: Services) -> Callable[..., None]:
    def papers_more(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        try:
            session_id = str(action.get("value") or "")
            user = str((body.get("user") or {}).get("id") or "")
            channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
            origin = Origin(str(channel), user, response_url=body.get("response_url") or None)
            key = f"action:{session_id}:{action.get('action_ts') or ''}:{user}"
            submit(services, origin, answers.run_more, services.core, origin, session_id, key)
        except Exception:  # after the ack nothing may escape (see handlers.submit)
            log.exception("papers_more failed after its ack")

    return papers_more
