"""The command line of the archive: ``python -m bot fetch | backfill | import | search | preview | migrate``.

Every command has ``--help``. Long work shows a progress bar on stderr. A ``BotError`` exits with
status 1 and a one-line reason; results go to stdout. ``python -m bot`` with no command (or
``run``) starts the Slack worker, which lives in ``bot/__main__.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from bot import index_io
from bot.errors import BotError
from bot.models import SearchPage, SourceState
from bot.search import SearchIndex
from bot.settings import Settings, load_settings
from bot.store import Store

Command = Callable[[argparse.Namespace, TextIO], int]
RESAVE_AFTER = 5000  # changes indexed beyond the saved copy before it is saved again
log = logging.getLogger(__name__)


def open_store(settings: Settings, *, migrate_blank: bool = True) -> Store:
    """Open the configured database; a blank one is created, an outdated one is refused (SchemaError)."""
    store = Store.open(settings.database_url)
    if migrate_blank and store.schema_version() == 0:
        store.migrate()
    store.check_schema()
    return store


def build_index(store: Store, *, quiet: bool = False) -> SearchIndex:
    """The search index: the database's saved copy brought up to date, or else built from every paper and saved."""
    return open_index(store, quiet=quiet).index


@dataclass
class SavedIndex:
    """The live search index, and how far its copy saved in the database goes (``papers.seq``)."""

    store: Store
    index: SearchIndex
    saved_seq: int

    def resave_if_behind(self) -> bool:
        """Save again once ``RESAVE_AFTER`` changes were indexed beyond the saved copy, so a worker that
        runs for months still restarts in seconds. A failed save waits for as many changes again."""
        seq = self.index.last_seq
        if seq - self.saved_seq < RESAVE_AFTER:
            return False
        save_index(self.store, self.index)
        self.saved_seq = seq
        return True


def open_index(store: Store, *, quiet: bool = False) -> SavedIndex:
    """``build_index``, keeping track of the saved copy for ``SavedIndex.resave_if_behind``."""
    try:
        index = index_io.load(store.load_index_cache(), store.get_papers)
    except index_io.CacheMismatch as exc:
        log.info("building the search index (%s)", exc)
    else:
        saved = SavedIndex(store, index, index.last_seq)
        added = index.refresh(store)
        log.info("search index loaded: %d papers, %d of them indexed since it was saved", len(index), added)
        saved.resave_if_behind()
        return saved
    total = store.count_papers()
    with tqdm(total=total, desc="indexing", unit="paper", disable=quiet or total < 5000, file=sys.stderr) as bar:
        index = SearchIndex.from_store(store, progress=bar.update)
    save_index(store, index)
    return SavedIndex(store, index, index.last_seq)


def save_index(store: Store, index: SearchIndex) -> None:
    """Save the index in the database for the next start; a failure only costs that start a rebuild."""
    try:
        written = store.save_index_cache(lambda: index_io.dump(index))
    except BotError as exc:
        log.warning("could not save the search index (the next start rebuilds it): %s", exc)
    else:
        log.info("saved the search index for the next start (%.1f MB)", written / 2**20)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    store = Store.open(load_settings().database_url)
    applied = store.migrate()
    out.write(f"applied migrations: {', '.join(map(str, applied))}\n" if applied else "schema is up to date\n")
    out.write(f"schema version {store.schema_version()}\n")
    return 0


def cmd_fetch(args: argparse.Namespace, out: TextIO) -> int:
    from bot.sources import fetch_announcements

    settings = load_settings()
    store = open_store(settings)
    today = args.date or datetime.now(UTC).date()
    results = fetch_announcements(
        categories=settings.categories,
        cross_lists=settings.cross_lists,
        replacements=settings.replacements,
        huggingface=settings.huggingface,
        today=today,
        rss_url=settings.arxiv_rss_url,
        hf_url=settings.hf_api_url,
    )
    failed = 0
    for r in results:
        counts = store.upsert_papers(r.papers) if r.papers else None
        line = f"{r.source:12} {r.state.value:16} {len(r.papers):5} papers"
        if counts:
            line += f"  ({counts.inserted} new, {counts.updated} updated, {counts.unchanged} unchanged)"
        if r.skipped:
            line += f"  {r.skipped} skipped"
        if r.announced:
            line += f"  announced {r.announced}"
        if r.error:
            line += f"  error: {r.error}"
        out.write(line + "\n")
        failed += r.state is SourceState.FAILED
    return 1 if failed else 0


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    from bot.sources import iter_backfill

    settings = load_settings()
    store = open_store(settings)
    cats = args.categories or list(settings.categories)
    until = args.until or datetime.now(UTC).date()
    inserted = updated = 0
    with tqdm(desc="backfill", unit="paper", file=sys.stderr, disable=args.quiet) as bar:
        for page in iter_backfill(cats, args.since, until, api_url=settings.arxiv_api_url, limit=args.limit):
            bar.total = page.total
            counts = store.upsert_papers(page.papers)
            inserted, updated = inserted + counts.inserted, updated + counts.updated
            bar.update(page.entries)
    out.write(f"backfill {', '.join(cats)} {args.since}..{until}: {inserted} new, {updated} updated\n")
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    from bot.importer import import_file

    store = open_store(load_settings())
    with tqdm(desc="import", unit="line", file=sys.stderr, disable=args.quiet) as bar:

        def advance(lines: int) -> None:
            bar.update(lines)

        counts = import_file(args.file, store, progress=advance)
    out.write(
        f"imported {counts.records} records: {counts.inserted} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.bad} bad lines skipped\n"
    )
    for line in counts.bad_lines[:10]:
        out.write(f"  skipped {line}\n")
    return 0


def _page_json(page: SearchPage) -> list[dict]:
    return [{"id": h.paper.id, "score": round(h.score, 6), "title": h.paper.title} for h in page.hits]


def cmd_search(args: argparse.Namespace, out: TextIO) -> int:
    if bool(args.query) == bool(args.queries):
        raise BotError("give either a QUERY or --queries FILE")
    if args.queries and not args.json:
        raise BotError("--queries needs --json (one JSON object per line)")
    store = open_store(load_settings())
    index = build_index(store, quiet=args.json)
    queries = [args.query] if args.query else Path(args.queries).read_text(encoding="utf-8").splitlines()
    for query in (q for q in queries if q.strip()):
        started = time.perf_counter()
        try:
            page = index.search(query, limit=args.limit)
        except BotError as exc:
            if not args.queries:
                raise
            out.write(json.dumps({"query": query, "error": str(exc)}) + "\n")
            continue
        took = (time.perf_counter() - started) * 1000
        if args.json:
            out.write(json.dumps({"query": query, "took_ms": round(took, 3), "results": _page_json(page)}) + "\n")
            continue
        out.write(f"{page.total} results for {query!r} ({took:.1f} ms)\n")
        for i, hit in enumerate(page.hits, 1):
            p = hit.paper
            authors = ", ".join(p.authors[:3]) + (" et al." if len(p.authors) > 3 else "")
            out.write(f"\n{i:2}. {p.title}  [{hit.score:.2f}]\n    {p.id} · {p.date} · {', '.join(p.categories)}\n")
            out.write(f"    {authors}\n    matched: {', '.join(hit.matched_terms)}\n")
            out.write(f"    {hit.snippet.marked('**', '**')}\n")
    return 0


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    from bot import digest as render
    from bot.jobs import Core, find_matches

    settings = load_settings()
    channels = [c for c in settings.channels if args.channel in (None, c.channel)]
    if not channels:
        raise BotError(f"channel {args.channel} is not in the config" if args.channel else "no channels configured")
    store = open_store(settings)
    core = Core(settings=settings, store=store, index=build_index(store))
    day = datetime.now(UTC).date()
    for ch in channels:
        papers = preview_candidates(core, ch.channel, args.days)
        matches = find_matches(core, ch, papers)
        plan = render.render_digest(
            day=day, channel=ch.channel, matches=matches, new_counts={}, results=[],
            max_papers=ch.max_papers, total_new=len(papers),
        )  # fmt: skip
        out.write(f"=== {ch.channel} ({len(matches)} of {len(papers)} papers match) ===\n")
        out.write(render.render_text(plan) + "\n")
    return 0


def preview_candidates(core: object, channel: str, days: int) -> list:
    """Papers announced in the last ``days`` days that were not posted to ``channel`` yet."""
    from datetime import timedelta

    from bot.jobs import Core
    from bot.store import digests as dg

    assert isinstance(core, Core)
    since = datetime.now(UTC).date() - timedelta(days=days)
    papers = [p for p in core.store.iter_papers() if (p.date or date.min) >= since]
    posted = dg.already_posted(core.store.engine, channel, [p.id for p in papers])
    return [p for p in papers if p.id not in posted]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bot", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="start the Slack worker (the default)")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    p = sub.add_parser("fetch", help="fetch today's announcements from every configured source")
    p.add_argument("--date", type=_day, help="the day to fetch for Hugging Face (default: today, UTC)")
    p = sub.add_parser("backfill", help="page through the arXiv API for a date range")
    p.add_argument("--since", type=_day, required=True, help="first submission day (YYYY-MM-DD)")
    p.add_argument("--until", type=_day, help="last submission day (default: today)")
    p.add_argument("--categories", nargs="+", help="arXiv categories (default: the config's)")
    p.add_argument("--limit", type=int, help="stop after this many papers")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("import", help="import a JSONL corpus or the Kaggle arXiv metadata snapshot")
    p.add_argument("file", help="JSONL file (.gz accepted)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("search", help="BM25 search over every stored abstract")
    p.add_argument("query", nargs="?", help="query, e.g. '\"dense retrieval\" -survey cat:cs.IR since:2026-01-01'")
    p.add_argument("--limit", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per query")
    p.add_argument("--queries", metavar="FILE", help="run one query per line of FILE (with --json)")
    p = sub.add_parser("preview", help="print the digest a channel would get, without Slack")
    p.add_argument("--channel", help="a channel id from the config (default: every channel)")
    p.add_argument("--days", type=int, default=3, help="consider papers announced in the last N days (default 3)")
    return ap


COMMANDS: dict[str, Command] = {
    "migrate": cmd_migrate,
    "fetch": cmd_fetch,
    "backfill": cmd_backfill,
    "import": cmd_import,
    "search": cmd_search,
    "preview": cmd_preview,
}


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run a CLI command; returns the exit status (``run`` is handled by the caller)."""
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, out)
    except BotError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
