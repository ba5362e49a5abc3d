"""Block Kit building blocks shared by every renderer: budgets, block constructors, paper entries, packing.

Pure data in, plain dicts out (no slack_sdk). The budgets are deliberately below Slack's limits
(wire-formats.md §7): Slack allows 50 blocks, 3000-character section text and 150-character headers,
and has rejected messages with less than 12,000 characters of block text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bot.models import Message, Paper, Snippet
from bot.slack_text import (
    esc,
    escape,
    escape_fit,
    link,
    mrkdwn_to_plain,
    sanitize,
    slack_len,
    truncate_mrkdwn,
    truncate_plain,
)

MAX_BLOCKS = 40  # Slack: 50
SECTION_MAX = 2900  # Slack: 3000
HEADER_MAX = 150  # Slack: 150
CONTEXT_MAX_ELEMENTS = 10  # Slack: 10
MESSAGE_TEXT_MAX = 10_000  # Slack: undocumented, msg_blocks_too_long seen below 12,000
FALLBACK_MAX = 3900  # Slack: keep top-level text <= 4000
ENTRY_BUDGET = 1800  # default text budget of one paper entry (section + context)
MAX_AUTHORS = 3
MAX_TERMS = 6


def header(text: str) -> dict[str, Any]:
    """A header block; ``text`` must be our own words (plain_text is shown as is)."""
    return {"type": "header", "text": {"type": "plain_text", "text": truncate_plain(text, HEADER_MAX), "emoji": True}}


def section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate_mrkdwn(mrkdwn, SECTION_MAX)}}


def context(*mrkdwn: str) -> dict[str, Any]:
    elements = [{"type": "mrkdwn", "text": truncate_mrkdwn(t, SECTION_MAX)} for t in mrkdwn if t]
    return {"type": "context", "elements": elements[:CONTEXT_MAX_ELEMENTS]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(text: str, *, action_id: str, value: str) -> dict[str, Any]:
    if len(value) > 2000:
        raise ValueError(f"button value is {len(value)} characters; Slack allows 2000")
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate_plain(text, 75), "emoji": True},
        "action_id": action_id,
        "value": value,
    }


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def _texts(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _texts(item)


def blocks_text_len(blocks: Sequence[dict[str, Any]]) -> int:
    """Cumulative displayed text of blocks, in UTF-16 units."""
    return sum(slack_len(t) for t in _texts(list(blocks)))


def message(text: str, blocks: Sequence[dict[str, Any]], paper_ids: Sequence[str] = ()) -> Message:
    """A Message whose fallback ``text`` (already mrkdwn-escaped) is cut to the fallback budget."""
    return Message(text=truncate_mrkdwn(text, FALLBACK_MAX), blocks=tuple(blocks), paper_ids=tuple(paper_ids))


def marked_snippet(snippet: Snippet, limit: int) -> str:
    """Snippet text escaped, with its matched spans in ``*bold*``, within ``limit`` units."""
    raw = snippet.text[: limit * 3 + 100]
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for start, end in sorted(snippet.spans):
        if pos <= start < end <= len(raw):
            pieces += [(raw[pos:start], False), (raw[start:end], True)]
            pos = end
    pieces.append((raw[pos:], False))
    out: list[str] = []
    used = 0
    cut = len(snippet.text) > len(raw)
    for part, hit in pieces:
        clean = sanitize(part, strip=False)
        core = clean.strip()
        if hit and core:
            rendered = (" " if clean[0] == " " else "") + f"*{escape(core)}*" + (" " if clean[-1] == " " else "")
        else:
            rendered = escape(clean)
        width = slack_len(rendered)
        if used + width > limit - 1:
            out.append("…" if hit else escape_fit(clean, limit - used, cut=True))
            cut = False
            break
        out.append(rendered)
        used += width
    text = "".join(out).replace("  ", " ").strip()
    return text + "…" if cut and text else text


def authors_text(authors: Sequence[str], each: int) -> str:
    shown = [esc(a, each) for a in authors[:MAX_AUTHORS]]
    text = ", ".join(a for a in shown if a)
    return text + " et al." if len(authors) > MAX_AUTHORS else text


def terms_text(terms: Sequence[str], each: int) -> str:
    shown = ", ".join(t for t in (esc(term, each) for term in terms[:MAX_TERMS]) if t)
    return shown + (f" +{len(terms) - MAX_TERMS} more" if len(terms) > MAX_TERMS else "")


def paper_entry(
    paper: Paper, *, rank: int, snippet: Snippet | None, meta: Sequence[str], budget: int = ENTRY_BUDGET
) -> list[dict[str, Any]]:
    """Two blocks for one paper: ``*N. <link|title>*`` + snippet, then a context line of authors and ``meta``.

    ``meta`` items must already be safe mrkdwn; the whole entry stays within ``budget`` units.
    """
    title = link(paper.url, paper.title, min(300, budget // 5)) or link(paper.url, paper.id, 100) or "(untitled)"
    head = f"*{rank}. {title}*"
    if snippet is None or not snippet.text.strip():
        snippet = Snippet(paper.abstract)
    body = marked_snippet(snippet, min(700, budget * 2 // 5))
    parts = [authors_text(paper.authors, max(30, min(60, budget // 30)))] + [m for m in meta if m]
    line = " · ".join(p for p in parts if p)
    line = truncate_mrkdwn(line, max(200, budget - slack_len(head) - slack_len(body)))
    blocks = [section(f"{head}\n{body}" if body else head)]
    if line:
        blocks.append(context(line))
    return blocks


def pack(
    entries: Sequence[list[dict[str, Any]]], *, start: int, limit: int, used_blocks: int, used_text: int, force: bool
) -> int:
    """How many entries from ``start`` (at most ``limit``) fit after ``used_blocks``/``used_text``.

    With ``force`` the first entry is taken even if it does not fit, so a chunk always makes progress.
    """
    taken = 0
    for entry in entries[start : start + limit]:
        blocks, text = len(entry), blocks_text_len(entry)
        full = used_blocks + blocks > MAX_BLOCKS or used_text + text > MESSAGE_TEXT_MAX
        if full and (taken or not force):
            break
        used_blocks += blocks
        used_text += text
        taken += 1
    return taken


def message_to_text(msg: Message) -> str:
    """Readable plain text of a message (CLI preview): no mrkdwn escapes, links as ``label (url)``."""
    lines: list[str] = []
    for block in msg.blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "section":
            lines.append(mrkdwn_to_plain(block["text"]["text"]))
        elif kind == "context":
            lines.append("   " + "  ".join(mrkdwn_to_plain(e["text"]) for e in block["elements"]))
        elif kind == "actions":
            lines.append("  ".join(f"[{e['text']['text']}]" for e in block["elements"]))
    if not msg.blocks:
        lines.append(mrkdwn_to_plain(msg.text))
    return "\n".join(lines)
