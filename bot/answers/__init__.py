"""Use-cases behind ``/papers``, @-mentions and the "More results" button (Slack-free except via bot.delivery).

The Slack listeners ack first, then submit one of the ``run_*`` entry points to the answer pool. Each
dedupes redeliveries (``store.remember_event``: the event id, or a hash of the command), does the
work and delivers it, turning every failure into words for the requester: a :class:`BotError` becomes
a friendly message, anything else is logged with its traceback and answered with a short apology.
They never raise and return an :class:`Answer` (what was posted) for tests and logs.

:func:`triage` is the pure part a listener may use *in* its ack: help and syntax errors need no
I/O, so they are answered instantly in the ack payload.

Modules: ``common`` (origin, delivery helpers, failures), ``lookup`` (search, more results, since),
``channel`` (keywords, digest now).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.answers.channel import digest_now, edit_keywords, list_keywords
from bot.answers.common import Answer, Origin, Post, fail, notice, tell, with_note
from bot.answers.lookup import PAGE_SIZE, SINCE_CAP, catch_up, more_results, search
from bot.commands import Command, parse_command
from bot.errors import QueryError
from bot.jobs import Core
from bot.models import Message
from bot.render_commands import render_help
from bot.slack_text import esc

__all__ = [
    "PAGE_SIZE",
    "SINCE_CAP",
    "Answer",
    "Origin",
    "Post",
    "Triage",
    "catch_up",
    "help_message",
    "digest_now",
    "edit_keywords",
    "list_keywords",
    "more_results",
    "run_command",
    "run_mention",
    "run_more",
    "search",
    "triage",
]

log = logging.getLogger("bot.answers")

MENTION_HELP = (
    "Mention me with what to search for, e.g. `@Paperboy diffusion distillation -survey`, and I answer in "
    "this thread. Use `/papers help` in a channel for everything else."
)
KEYWORD_HELP = (
    'Several keywords at once: separate them with commas, e.g. `/papers keywords add rag, "dense retrieval"` '
    "(a quoted phrase is one keyword). `/papers exclude add &lt;words&gt;` / "
    "`/papers exclude remove &lt;words&gt;` edit the "
    "words that leave papers out. A query that starts with a command word: `/papers search digest models`."
)
_EDITS = {
    "keywords_add": ("keyword", "add"),
    "keywords_remove": ("keyword", "remove"),
    "exclude_add": ("exclude", "add"),
    "exclude_remove": ("exclude", "remove"),
}


@dataclass(frozen=True, slots=True)
class Triage:
    """The instant part of a command: ``reply`` goes in the ack; ``command`` is work for after it."""

    reply: Message | None
    command: Command | None


def help_message() -> Message:
    """``/papers help``: the rendered help plus the keyword-list syntax of :mod:`bot.commands`."""
    return with_note(render_help(), KEYWORD_HELP)


def triage(text: str) -> Triage:
    """Parse ``/papers`` text without I/O: help and syntax errors are answered right away."""
    try:
        cmd = parse_command(text)
    except QueryError as exc:
        return Triage(notice(f"⚠️ {esc(str(exc), 600)}"), None)
    if cmd.kind == "help":
        return Triage(help_message(), None)
    if cmd.kind == "digest":
        return Triage(notice("⏳ Checking today's digest for this channel…"), cmd)
    return Triage(None, cmd)


def run_command(core: Core, origin: Origin, command: Command | str, dedupe_key: str | None = None) -> Answer:
    """Answer one ``/papers`` command (parsed, or its raw text). Never raises."""
    answer = Answer()
    query = command.query if isinstance(command, Command) else None
    try:
        if _seen(core, dedupe_key, answer):
            return answer
        cmd = command if isinstance(command, Command) else parse_command(command)
        query = cmd.query or None
        _dispatch(core, origin, cmd, answer)
    except Exception as exc:
        fail(core, origin, exc, answer, query=query)
    return answer


def run_mention(core: Core, origin: Origin, text: str, dedupe_key: str | None = None) -> Answer:
    """Answer an @-mention in its thread: search the text; short help when it is empty or ``help``."""
    answer = Answer()
    query = " ".join(text.split())
    try:
        if _seen(core, dedupe_key, answer):
            return answer
        if query.casefold() in ("", "help", "?"):
            tell(core, origin, notice(MENTION_HELP), answer)
        else:
            search(core, origin, query, answer)
    except Exception as exc:
        fail(core, origin, exc, answer, query=query or None)
    return answer


def run_more(core: Core, origin: Origin, session_id: str, dedupe_key: str | None = None) -> Answer:
    """The "More results" button: the next page of a stored search, in the same thread. Never raises."""
    answer = Answer()
    try:
        if not _seen(core, dedupe_key, answer):
            more_results(core, origin, session_id, answer)
    except Exception as exc:
        fail(core, origin, exc, answer)
    return answer


def _seen(core: Core, key: str | None, answer: Answer) -> bool:
    if key is None or core.store.remember_event(key):
        return False
    log.info("ignoring a redelivery that was already answered (%s)", key)
    answer.duplicate = True
    return True


def _dispatch(core: Core, origin: Origin, cmd: Command, answer: Answer) -> None:
    if cmd.kind == "search":
        search(core, origin, cmd.query, answer)
    elif cmd.kind == "keywords_list":
        list_keywords(core, origin, answer)
    elif cmd.kind in _EDITS:
        kind, action = _EDITS[cmd.kind]
        edit_keywords(core, origin, kind, action, cmd.keywords, answer)
    elif cmd.kind == "digest":
        digest_now(core, origin, answer)
    elif cmd.kind == "since":
        catch_up(core, origin, cmd.since, answer)
    else:
        tell(core, origin, help_message(), answer)
