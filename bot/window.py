"""Which papers a channel's digest considers: the window since its last planned digest.

Windows are consecutive ranges of ``papers.first_seq`` (commit order), bounded below in time so an
archive import of old listings is never news. Used by ``bot.jobs`` when it plans a digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.models import Paper
from bot.store import Store
from bot.store import digests as dg

RECENT = timedelta(days=7)  # papers announced longer ago are archive imports, not news
FIRST_WINDOW = timedelta(hours=36)  # a channel's first digest looks back this far


@dataclass(frozen=True)
class Window:
    """The papers a digest considers: stored since the channel's last plan, up to ``seq_end``."""

    start: datetime  # nominal start (the last plan's end), shown to operators
    end: datetime
    seq_end: int  # papers.seq when this plan read the store
    after_seq: int | None  # the last plan's watermark (None: the first plan, or one before migration 3)
    seen_since: datetime  # lower bound on first_seen, so an archive import of old listings stays out


def next_window(store: Store, channel: str, now: datetime) -> Window:
    """The window after the channel's last planned digest.

    Windows are consecutive ranges of ``first_seq`` (commit order), not of time: a paper whose
    ``first_seen`` stamp predates another worker's plan but which committed after it falls in the next
    window, never in none. The watermark is read before the candidates, so it never covers a row
    this plan did not see (writers assign ``seq`` in commit order; see ``bot/store/papers.py``).
    """
    seq_end = store.max_seq()
    prev = dg.last_window(store.engine, channel)
    end = now + timedelta(microseconds=1)  # papers stored at `now` belong to this window
    if prev is None or prev.window_end is None:
        start = now - FIRST_WINDOW
        return Window(start, end, seq_end, None, start)
    if prev.seq_end is None:  # planned before migration 3: continue from its time window
        return Window(prev.window_end, end, seq_end, None, prev.window_end)
    return Window(prev.window_end, end, seq_end, prev.seq_end, prev.window_start or prev.window_end)


def candidates(store: Store, channel: str, day: date, window: Window) -> list[Paper]:
    """Papers new in ``window`` that are news (recently announced) and not yet posted here."""
    w = window
    if w.after_seq is None:
        papers = store.papers_first_seen(w.seen_since, w.end, news_since=day - RECENT, upto_seq=w.seq_end)
    else:
        papers = store.papers_first_seen(
            w.seen_since, news_since=day - RECENT, after_seq=w.after_seq, upto_seq=w.seq_end
        )
    posted = dg.already_posted(store.engine, channel, [p.id for p in papers])
    return [p for p in papers if p.id not in posted]
