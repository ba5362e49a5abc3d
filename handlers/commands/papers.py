"""``/papers``: ack at once, then answer on the work pool (search into a thread, keywords, digest, since).

The ack carries the instant answers (help, syntax errors, "checking today's digest…"): they come from
a pure parse with no I/O. Everything else runs after the ack on ``services.work``. A command Slack
delivers twice is answered once: the work is deduped on a hash of channel, user, command, text
and trigger id.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack

from bot import answers
from bot.answers import Origin
from bot.services import Services
from handlers import submit

log = logging.getLogger(__name__)


def make_papers_command(services: Services) -> Callable[..., None]:
    def papers_command(ack: Ack, body: dict[str, Any]) -> None:
        ack(**ack_payload(body))  # first: Slack shows a timeout after 3 s
        try:
            work = answers.triage(str(body.get("text") or "")).command
            if work is None:  # answered in the ack
                return
            origin = Origin(
                channel=str(body.get("channel_id") or ""),
                user=str(body.get("user_id") or ""),
                response_url=body.get("response_url") or None,
            )
            submit(services, origin, answers.run_command, services.core, origin, work, command_key(body))
        except Exception:  # after the ack nothing may escape (see handlers.submit)
            log.exception("/papers failed after its ack")

    return papers_command


def ack_payload(body: dict[str, Any]) -> dict[str, Any]:
    """The ack's ephemeral message for help and syntax errors, else nothing. Pure and never raises."""
    try:
        reply = answers.triage(str(body.get("text") or "")).reply
    except Exception:
        log.exception("parsing /papers text failed")
        return {}
    if reply is None:
        return {}
    return {"response_type": "ephemeral", "text": reply.text, "blocks": list(reply.blocks)}


def command_key(body: dict[str, Any]) -> str:
    """The dedupe key of one slash command invocation (a redelivery has the same trigger id)."""
    parts = [str(body.get(k) or "") for k in ("channel_id", "user_id", "command", "text", "trigger_id")]
    return "cmd:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
