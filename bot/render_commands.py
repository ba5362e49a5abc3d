"""Slack messages for the ``/papers`` housekeeping commands: keyword lists and changes, help, invite help.

Pure rendering (no I/O, no slack_sdk). Keywords are user text and are escaped; channels are named
in words ("this channel") rather than with ``<#C…>`` links, and keyword lists never mention the users
who added them (a mention would notify them every time the list is shown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from bot.models import Message
from bot.render_blocks import MAX_BLOCKS, MESSAGE_TEXT_MAX, SECTION_MAX, context, header, message, section
from bot.slack_text import esc, escape, slack_len, user_mention

KEYWORD_MAX = 100
_CHANNEL_ID_RE = re.compile(r"[CGD][A-Z0-9]{2,}", re.ASCII)
_ACTIONS = {"add": "added", "remove": "removed"}
EDIT_HINT = "Change them with `/papers keywords add <words>` or `/papers keywords remove <words>`."

QUERY_SYNTAX = (  # as parsed by bot.query
    "• `diffusion distillation`: papers with any of these words, best matches first (BM25)",
    '• `"vision transformer"`: the words as a phrase',
    '• `-survey` or `-"medical imaging"`: leave out papers containing them',
    '• `author:LeCun` or `author:"Yann LeCun"`: papers by an author',
    "• `cat:cs.CL` (or a whole archive, `cat:cs`); `-cat:cs.CV` leaves a category out",
    "• `since:2025-06-01` and `until:2025-06-30`: by paper date (YYYY, YYYY-MM or YYYY-MM-DD)",
)


class KeywordLike(Protocol):
    """What the keyword list shows of one entry (e.g. ``bot.store.keywords.KeywordSource``)."""

    @property
    def keyword(self) -> str: ...

    @property
    def origin(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...


def channel_label(channel: str) -> str:
    """``this channel`` for a channel id, else ``#name`` escaped (never a ``<#C…>`` link)."""
    if not channel or _CHANNEL_ID_RE.fullmatch(channel):
        return "this channel"
    return "#" + esc(channel.lstrip("#"), 80)


def _keyword_line(item: KeywordLike | str) -> str:
    if isinstance(item, str):
        return f"• {esc(item, KEYWORD_MAX)}"
    origin = "config file" if item.origin == "config" else "added in Slack"
    return f"• {esc(item.keyword, KEYWORD_MAX)}  _({origin})_"


def _listing(title: str, lines: Sequence[str], *, blocks_left: int, text_left: int) -> list[dict]:
    """``title`` then ``lines`` packed into sections within the budgets; the overflow is counted."""
    sections: list[list[str]] = [[f"*{title}*"]]
    used = slack_len(title) + 2
    shown = 0
    for line in lines:
        width = slack_len(line) + 1
        if used + width > text_left - 100:
            break
        current = sections[-1]
        if slack_len("\n".join(current)) + width > SECTION_MAX:
            if len(sections) >= blocks_left - 1:
                break
            current = []
            sections.append(current)
        current.append(line)
        used += width
        shown += 1
    if shown < len(lines):
        sections[-1].append(f"…and {len(lines) - shown} more")
    return [section("\n".join(part)) for part in sections]


def render_keywords(
    channel: str, keywords: Sequence[KeywordLike | str], excludes: Sequence[KeywordLike | str]
) -> Message:
    """The effective keywords and excludes of a channel, with where each came from."""
    where = channel_label(channel)
    blocks: list[dict] = [header("Paper keywords")]
    if not keywords:
        blocks.append(section(f"No keywords for {where} yet. Add one with `/papers keywords add &lt;words&gt;`."))
    else:
        lines = [_keyword_line(k) for k in keywords]
        blocks += _listing(
            f"Keywords for {where} ({len(keywords)})",
            lines,
            blocks_left=(MAX_BLOCKS - 4) // 2,
            text_left=MESSAGE_TEXT_MAX // 2,
        )
    if excludes:
        lines = [_keyword_line(k) for k in excludes]
        blocks += _listing(
            f"Excluded ({len(excludes)}): papers with these are left out",
            lines,
            blocks_left=(MAX_BLOCKS - 4) // 2,
            text_left=MESSAGE_TEXT_MAX // 2 - 500,
        )
    blocks.append(context(escape(EDIT_HINT)))
    text = f"Keywords for {where}: " + ", ".join(
        esc(k if isinstance(k, str) else k.keyword, KEYWORD_MAX) for k in keywords[:50]
    )
    return message(text if keywords else f"No keywords for {where} yet.", blocks)


def render_keyword_change(user_id: str, action: str, keywords: Sequence[str]) -> Message:
    """The channel announcement of a keyword edit: ``<@U…> added keywords: a, b``.

    Raises:
        ValueError: ``action`` is not ``add`` or ``remove`` (a caller bug).
    """
    if action not in _ACTIONS:
        raise ValueError(f"keyword change action must be one of {sorted(_ACTIONS)}, got {action!r}")
    who = user_mention(user_id) or "Someone"
    shown = [esc(k, KEYWORD_MAX) for k in keywords[:20]]
    extra = f" and {len(keywords) - 20} more" if len(keywords) > 20 else ""
    noun = "keyword" if len(keywords) == 1 else "keywords"
    text = f"{who} {_ACTIONS[action]} {noun}: " + ", ".join(f"“{k}”" for k in shown) + extra
    return message(text, [section(text)])


def render_help() -> Message:
    """Usage of ``/papers``, the query syntax, and how to talk to the bot in a thread."""
    usage = "\n".join(
        escape(line)
        for line in [
            "*Commands*",
            "• `/papers <query>`: search stored papers; results are posted in a thread",
            "• `/papers keywords`: list this channel's keywords and excludes",
            "• `/papers keywords add <words>` / `/papers keywords remove <words>`: change the keywords",
            "• `/papers exclude add <words>` / `/papers exclude remove <words>`: change the excludes",
            "• `/papers digest`: post today's digest for this channel now (once a day)",
            "• `/papers since <date|monday|yesterday>`: matching papers since that day (e.g. 2026-06-01)",
            "• `/papers help`: this help",
        ]
    )
    syntax = "\n".join(escape(line) for line in ["*Query syntax*", *QUERY_SYNTAX])
    note = "Slash commands don't work in threads: @-mention the bot in a thread instead, e.g. `@Paperboy help`."
    blocks = [header("Paperboy help"), section(usage), section(syntax), context(note)]
    return message(escape("Paperboy help: /papers <query>, keywords, digest, since, help"), blocks)


def render_not_in_channel_help(channel: str) -> Message:
    """Why the bot cannot post in ``channel`` and how to invite it."""
    where = channel_label(channel)
    text = f"I can't post in {where} because I'm not a member. Invite me with `/invite @Paperboy`, then try again."
    return message(text, [section(text)])
