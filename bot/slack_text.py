"""Safe Slack mrkdwn from untrusted text: sanitising, escaping, links, mentions and length budgets.

Everything that comes from a feed, a config file or a Slack user (titles, abstracts, authors, queries,
keywords, categories, error reasons, Hugging Face repo URLs) goes through :func:`esc` or :func:`label`
before it reaches a message. Decisions (see wire-formats.md §7):

* ``&``, ``<`` and ``>`` are escaped, ``&`` first and exactly once: a title containing ``&lt;`` is sent
  as ``&amp;lt;`` and displays literally. Nothing else is HTML-encoded.
* Untrusted text is made one line: whitespace runs (newlines, tabs, NBSP …) become one space, control
  characters become spaces, lone surrogates become U+FFFD.
* Invisible format characters (Unicode category Cf: bidi overrides such as U+202E, zero-width space,
  word joiner, BOM, invisible tags …) are removed, so text cannot be reordered or hidden. ZWNJ and ZWJ
  are kept because Persian/Indic scripts and emoji sequences need them; they cannot form syntax.
* ``@channel``, ``@here`` and ``@everyone`` get a word joiner after the ``@`` (defence in depth: they only
  ping with ``link_names``/``parse=full``, which delivery must never set).
* mrkdwn emphasis characters (asterisk, underscore, tilde, backtick) are left alone: they have no escape,
  lookalikes would corrupt TeX and copy-paste, and a zero-width space next to them is not a verified fix
  (it can even enable emphasis). At worst a title looks bold or italic; they cannot form links or mentions.
* Links are built only from URLs that match our own forms (arXiv abstract page, Hugging Face paper page,
  a ``https://github.com/owner/repo`` URL); labels are escaped and ``|`` becomes ``∣`` (U+2223).
* Lengths are measured in UTF-16 code units (:func:`slack_len`), never less than Slack's count.
"""

from __future__ import annotations

import re

from bot.models import ARXIV_ID_RE

ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
ELLIPSIS = "…"
PIPE_LOOKALIKE = "∣"
WORD_JOINER = "\u2060"

_WHITESPACE_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Every Unicode format character (category Cf) except ZWNJ (U+200C) and ZWJ (U+200D).
_INVISIBLE_RE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_BROADCAST_RE = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
_GITHUB_RE = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+)/?", re.ASCII)
_USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,30}", re.ASCII)
_OWN_PREFIXES = ("https://arxiv.org/abs/", "https://huggingface.co/papers/")
_MAX_GITHUB_URL = 200
_ENTITY_OR_LINK_RE = re.compile(r"<[^<>]*>|&(?:amp|lt|gt);|.", re.DOTALL)


def slack_len(text: str) -> int:
    """Length in UTF-16 code units: what Slack's character limits count at most."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def sanitize(text: str, *, strip: bool = True) -> str:
    """Make untrusted text one clean line: no controls, no invisible format characters, no ``@here`` pings."""
    text = _SURROGATE_RE.sub("\ufffd", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _WHITESPACE_RE.sub(" ", text)
    if strip:
        text = text.strip()
    return _BROADCAST_RE.sub("@" + WORD_JOINER, text)


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` for mrkdwn (``&`` first); does not sanitise."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Invert :func:`escape` (used for plain-text previews and tests)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape_fit(clean: str, limit: int, *, cut: bool = False) -> str:
    """Escape ``clean`` within ``limit`` units, ending in an ellipsis when shortened (or ``cut`` already)."""
    escaped = escape(clean)
    if not cut and slack_len(escaped) <= limit:
        return escaped
    if limit <= 0:
        return ""
    out: list[str] = []
    used = 0
    for ch in clean:
        piece = ESCAPES.get(ch, ch)
        width = 2 if ord(ch) > 0xFFFF else len(piece)
        if used + width > limit - 1:
            break
        out.append(piece)
        used += width
    return "".join(out).rstrip() + ELLIPSIS


def esc(text: str | None, limit: int = 3000) -> str:
    """Sanitise, escape and shorten untrusted text to at most ``limit`` UTF-16 units."""
    if not text:
        return ""
    cap = limit * 2 + 64  # sanitising never lengthens by more than a word joiner per "@here"
    clean = sanitize(text[:cap])
    return escape_fit(clean, limit, cut=len(text) > cap)


def label(text: str | None, limit: int) -> str:
    """Like :func:`esc` for a link label: ``|`` (which cannot be escaped) becomes ``∣``."""
    if not text:
        return ""
    cap = limit * 2 + 64
    clean = sanitize(text[:cap]).replace("|", PIPE_LOOKALIKE)
    return escape_fit(clean, limit, cut=len(text) > cap)


def github_url(url: str | None) -> str | None:
    """The URL when it is exactly ``https://github.com/<owner>/<repo>[/]``, else None."""
    if url and len(url) <= _MAX_GITHUB_URL and _GITHUB_RE.fullmatch(url):
        return url
    return None


def github_label(url: str) -> str:
    """``owner/repo`` of a URL accepted by :func:`github_url`."""
    m = _GITHUB_RE.fullmatch(url)
    return f"{m.group(1)}/{m.group(2)}" if m else "GitHub"


def safe_link_url(url: str | None) -> str | None:
    """The URL when it is one of the link forms we build ourselves, else None."""
    if not url:
        return None
    for prefix in _OWN_PREFIXES:
        if url.startswith(prefix) and ARXIV_ID_RE.fullmatch(url[len(prefix) :]):
            return url
    return github_url(url)


def link(url: str | None, text: str | None, limit: int) -> str:
    """``<url|label>`` for a URL we trust, or just the escaped label when the URL is not ours."""
    shown = label(text, limit)
    target = safe_link_url(url)
    return f"<{target}|{shown}>" if target and shown else shown


def user_mention(user_id: str | None) -> str | None:
    """``<@U…>`` for a well-formed Slack user id, else None (never built from free text)."""
    if user_id and _USER_ID_RE.fullmatch(user_id):
        return f"<@{user_id}>"
    return None


def truncate_plain(text: str, limit: int) -> str:
    """Shorten our own plain text (header, button) to ``limit`` units with an ellipsis."""
    if slack_len(text) <= limit:
        return text
    out = text[: limit - 1]
    while slack_len(out) > limit - 1:
        out = out[:-1]
    return out.rstrip() + ELLIPSIS


def truncate_mrkdwn(text: str, limit: int) -> str:
    """Shorten built mrkdwn without cutting through an entity or a link (a last-resort safety net)."""
    if slack_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for m in _ENTITY_OR_LINK_RE.finditer(text):
        token = m.group(0)
        width = slack_len(token)
        if used + width > limit - 1:
            break
        out.append(token)
        used += width
    return "".join(out) + ELLIPSIS


def mrkdwn_to_plain(text: str) -> str:
    """Readable plain text from our mrkdwn: ``<url|label>`` → ``label (url)``, entities decoded."""

    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        target, _, shown = inner.partition("|")
        if target.startswith("@"):
            return target
        return f"{shown} ({target})" if shown else target

    text = re.sub(r"<([^<>]*)>", repl, text)
    return unescape(text).replace(WORD_JOINER, "")
