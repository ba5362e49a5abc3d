"""Channel housekeeping answers: list and edit the channel's keywords and excludes, and post today's digest now.

Keyword edits are validated as queries (:func:`bot.matching.validate_keyword`), stored in the
database over the config file (``store.record_keyword_edit``; the latest edit wins) and announced
in the channel. Only real changes are recorded and announced; the requester is told privately
which words were already there (or not there to remove). Any channel may have keywords; only
configured channels have a daily digest, and ``/papers digest`` follows its exactly-once rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.answers.common import (
    CANNOT_POST,
    NOT_CONFIGURED,
    Answer,
    Origin,
    channel_config,
    notice,
    post,
    tell,
    with_note,
)
from bot.digest import format_day
from bot.errors import DeliveryError, QueryError
from bot.jobs import Core, DigestOutcome, run_digest
from bot.matching import validate_keyword
from bot.models import Message
from bot.render_blocks import message, section
from bot.render_commands import (
    KEYWORD_MAX,
    render_keyword_change,
    render_keywords,
    render_not_in_channel_help,
)
from bot.slack_text import esc, user_mention
from bot.store import digests as dg

log = logging.getLogger("bot.answers")


def list_keywords(core: Core, origin: Origin, answer: Answer) -> None:
    """Tell the requester the channel's keywords and excludes and where each came from."""
    ch = channel_config(core, origin.channel)
    keywords, excludes = core.store.effective_keywords(
        origin.channel, list(ch.keywords) if ch else [], list(ch.exclude) if ch else []
    )
    msg = render_keywords(origin.channel, keywords, excludes)
    tell(core, origin, msg if ch else with_note(msg, NOT_CONFIGURED), answer)


def edit_keywords(
    core: Core, origin: Origin, kind: str, action: str, words: Sequence[str], answer: Answer
) -> list[str]:
    """Add or remove keywords (``kind="keyword"``) or excludes; return the words actually changed.

    Raises:
        QueryError: a word to add is not a valid query (nothing is stored then).
    """
    if action == "add":
        words = [_valid(word, kind) for word in words]
    ch = channel_config(core, origin.channel)
    keywords, excludes = core.store.effective_keywords(
        origin.channel, list(ch.keywords) if ch else [], list(ch.exclude) if ch else []
    )
    current = {_key(k.keyword) for k in (keywords if kind == "keyword" else excludes)}
    changed = [w for w in words if (_key(w) in current) == (action == "remove")]
    unchanged = [w for w in words if w not in changed]
    for word in changed:
        core.store.record_keyword_edit(origin.channel, kind, word, action, origin.user or None)
    notes = []
    if changed:
        log.info("%s %s %ss in %s: %s", origin.user, action, kind, origin.channel, changed)
        _announce(core, origin, _change_message(origin.user, kind, action, changed), answer)
    if unchanged:
        quoted = ", ".join(f"“{esc(w, KEYWORD_MAX)}”" for w in unchanged)
        where = f"this channel's {kind}s"
        notes.append(
            f"Already in {where}: {quoted}." if action == "add" else f"Not in {where}, so not removed: {quoted}."
        )
        notes.append("`/papers keywords` lists them.")
    if changed and ch is None:
        notes.append(NOT_CONFIGURED)
    if notes:
        tell(core, origin, notice(" ".join(notes)), answer)
    return changed


def _valid(word: str, kind: str) -> str:
    """The word as it will be stored; QueryError (naming it) when it is not a valid query."""
    try:
        return validate_keyword(word)
    except QueryError as exc:
        reason = str(exc).rstrip(".")
        raise QueryError(f"“{word}” cannot be a {kind}: {reason}. Nothing was changed.") from None


def _key(word: str) -> str:
    return " ".join(word.split()).casefold()


def _change_message(user: str, kind: str, action: str, words: Sequence[str]) -> Message:
    if kind == "keyword":
        return render_keyword_change(user, action, words)
    who = user_mention(user) or "Someone"
    shown = ", ".join(f"“{esc(w, KEYWORD_MAX)}”" for w in words[:20])
    extra = f" and {len(words) - 20} more" if len(words) > 20 else ""
    verb = "excluded" if action == "add" else "stopped excluding"
    text = f"{who} {verb} {shown}{extra} in this channel's digest."
    return message(text, [section(text)])


def _announce(core: Core, origin: Origin, msg: Message, answer: Answer) -> None:
    """Post the change in the channel; if Slack refuses, the requester still learns it was saved."""
    try:
        post(core, origin.channel, msg, None, answer)
    except DeliveryError as exc:
        log.warning("keyword change in %s saved but not announced: %s", origin.channel, exc)
        tell(core, origin, with_note(msg, "Saved, but I could not announce it in the channel."), answer)
        if exc.code in CANNOT_POST:
            tell(core, origin, render_not_in_channel_help(origin.channel), answer)


def digest_now(core: Core, origin: Origin, answer: Answer) -> DigestOutcome | None:
    """Post today's digest for the channel now, unless it is already done today (exactly once)."""
    ch = channel_config(core, origin.channel)
    if ch is None:
        text = (
            "This channel has no daily digest: it is not in the config file. An admin can add it under "
            f"`channels:` with `channel: {esc(origin.channel, 40)}`. Meanwhile `/papers since &lt;day&gt;` "
            "catches up on its keywords."
        )
        tell(core, origin, notice(text), answer)
        return None
    day = core.clock().astimezone(ch.tz).date()
    outcome = run_digest(core, ch, day, force=True)
    if outcome.state == dg.SLACK_FAILED and outcome.note in CANNOT_POST:
        tell(core, origin, render_not_in_channel_help(origin.channel), answer)
    else:
        tell(core, origin, notice(_outcome_text(outcome)), answer)
    return outcome


def _outcome_text(outcome: DigestOutcome) -> str:
    day = format_day(outcome.day)
    papers = f"{outcome.posted} paper{'' if outcome.posted == 1 else 's'}"
    texts = {
        "done": f"Today's digest ({day}) was already posted in this channel; it is posted once a day. "
        "`/papers since yesterday` catches up.",
        "busy": f"Today's digest ({day}) is being posted right now.",
        dg.POSTED: f"Posted today's digest ({day}, {papers}).",
        dg.NO_ANNOUNCEMENT: f"Posted today's digest ({day}): arXiv had no announcement today.",
        dg.SOURCE_FAILED: f"Posted today's digest ({day}), but a paper source could not be fetched; it says which.",
        dg.SLACK_FAILED: f"Slack refused today's digest ({esc(outcome.note, 60) or 'unknown error'}).",
        dg.WAITING: f"Slack did not take today's digest yet ({esc(outcome.note, 60) or 'busy'}); "
        "it will be retried in a minute.",
    }
    return texts.get(outcome.state, f"Today's digest ({day}) ended as {esc(outcome.state, 40)}.")
