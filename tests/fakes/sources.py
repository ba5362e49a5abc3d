"""A fake arXiv (RSS, Atom, API) and Hugging Face Daily Papers server on 127.0.0.1, port 0.

One threaded HTTP server answers ``/rss/<cats>``, ``/atom/<cats>``, ``/api/query`` and
``/api/daily_papers`` with the recorded fixtures (or with feeds rendered from given ``Paper``s), the
way the real services do: the API echoes ``start``/``max_results`` into the opensearch elements,
answers malformed ids with the HTTP 400 error feed, and pages through papers filtered by ``cat:``
and ``submittedDate:[… TO …]``. Per route, queued ``Reply``s inject faults (status + headers such as
Retry-After/RateLimit, HTML pages, truncated bodies, hangs, connection resets). Every request is
recorded with a monotonic timestamp, and the peak number of requests in flight is tracked, so
tests can assert spacing and one-connection-at-a-time.

The ``render_*`` helpers turn ``Paper``s into API Atom, RSS, announcement Atom and HF JSON bodies
so other tests (jobs, end-to-end) can serve arbitrary papers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest

from bot.models import Paper, split_arxiv_id
from bot.sources.http import HttpClient, Pacer, RetryPolicy, SourceProfile, Timeouts

FIXTURES = Path(os.environ.get("PAPERBOY_SHARED", "/work/shared")) / "fixtures"
ROUTES = ("rss", "atom", "api", "hf")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "api": "application/atom+xml; charset=UTF-8",
    "hf": "application/json; charset=utf-8",
}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
    b"<body><h1>Service Unavailable</h1>\n"
    b"<p>The server is temporarily unable to service your request.</p></body></html>\n"
)
_EASTERN = ZoneInfo("America/New_York")
_API_FEED_NS = (
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
    'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom"'
)
_ENTRY_RE = re.compile(r"  <entry>\s*<id>http://arxiv\.org/abs/(?P<id>[^<]+)</id>.*?</entry>\n", re.S)


@dataclass
class Reply:
    """One scripted answer. ``body=None`` means the route's normal body; ``fault`` breaks the exchange."""

    status: int = 200
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    fault: str | None = None  # None | "hang" | "truncate" | "reset"
    delay: float = 0.0

    @classmethod
    def hang(cls) -> Reply:
        return cls(fault="hang")

    @classmethod
    def reset(cls) -> Reply:
        return cls(fault="reset")

    @classmethod
    def truncated(cls, body: bytes | str | None = None) -> Reply:
        return cls(body=body, fault="truncate")

    @classmethod
    def html(cls, status: int = 200) -> Reply:
        return cls(status=status, body=HTML_PAGE, content_type="text/html; charset=utf-8")

    @classmethod
    def limited(cls, status: int = 429, retry_after: str | None = None, ratelimit: str | None = None) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if ratelimit is not None:
            headers["RateLimit"] = ratelimit
        return cls(status=status, body="Rate exceeded.\n", headers=headers, content_type="text/plain")


@dataclass(frozen=True)
class Request:
    route: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    t: float  # time.monotonic() when the request line and headers had arrived


# ---------------------------------------------------------------- rendering


def _v(p: Paper) -> str:
    return f"{p.id}v{p.version or 1}"


def _zulu(dt: datetime | None) -> str:
    dt = dt or datetime(2026, 1, 5, 12, tzinfo=UTC)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _eastern_midnight(day: date) -> datetime:
    return datetime.combine(day, dtime(0), _EASTERN)


def api_entry(p: Paper) -> str:
    """One API ``<entry>`` in the 2026 format (element order as observed)."""
    if not p.is_arxiv:
        raise ValueError(f"only arXiv papers can be rendered as API entries, not {p.id!r}")
    cats = "".join(f'    <category term="{c}" scheme="http://arxiv.org/schemas/atom"/>\n' for c in p.categories)

    def opt(tag: str, value: str | None) -> str:
        return f"    <arxiv:{tag}>{escape(value)}</arxiv:{tag}>\n" if value else ""

    authors = "".join(f"    <author>\n      <name>{escape(a)}</name>\n    </author>\n" for a in p.authors)
    doi = f'    <link rel="related" href="https://doi.org/{escape(p.doi)}" title="doi"/>\n' if p.doi else ""
    primary = f'    <arxiv:primary_category term="{p.primary_category}"/>\n' if p.primary_category else ""
    return (
        f"  <entry>\n    <id>http://arxiv.org/abs/{_v(p)}</id>\n    <title>{escape(p.title)}</title>\n"
        f"    <updated>{_zulu(p.updated or p.published)}</updated>\n"
        f'    <link href="https://arxiv.org/abs/{_v(p)}" rel="alternate" type="text/html"/>\n'
        f'    <link href="https://arxiv.org/pdf/{_v(p)}" rel="related" type="application/pdf" title="pdf"/>\n'
        f"    <summary>{escape(p.abstract)}</summary>\n{cats}    <published>{_zulu(p.published)}</published>\n"
        f"{opt('comment', p.comment)}{primary}{opt('journal_ref', p.journal_ref)}{authors}{opt('doi', p.doi)}{doi}"
        "  </entry>\n"
    )


def api_feed(entries: Iterable[str], *, total: int, start: int = 0, per_page: int = 10, query: str = "") -> bytes:
    """An API response around already-rendered entries (real feed header, opensearch echo)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    title = escape(f"arXiv Query: {query}&start={start}&max_results={per_page}")
    return (
        f"<?xml version='1.0' encoding='UTF-8'?>\n<feed {_API_FEED_NS}>\n"
        f"  <id>https://arxiv.org/api/{abs(hash((query, start))) % 10**12:012d}</id>\n  <title>{title}</title>\n"
        f"  <updated>{now}</updated>\n"
        f'  <link href="https://arxiv.org/api/query?{escape(query)}&amp;start={start}" type="application/atom+xml"/>\n'
        f"  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n{''.join(entries)}</feed>\n"
    ).encode()


def render_api_feed(papers: Iterable[Paper], *, total: int | None = None, start: int = 0, per_page: int = 10) -> bytes:
    """Papers as an arXiv API Atom response."""
    entries = [api_entry(p) for p in papers]
    return api_feed(entries, total=len(entries) if total is None else total, start=start, per_page=per_page)


def api_error_feed(message: str) -> bytes:
    """The HTTP 400 error feed of the 2026 API (``error_idlist_abc_http400.xml`` shape)."""
    anchor = re.sub(r"\W", "_", message)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"<?xml version='1.0' encoding='UTF-8'?>\n<feed {_API_FEED_NS}>\n  <id>https://arxiv.org/</id>\n"
        f"  <title>arXiv Search Results</title>\n  <updated>{now}</updated>\n"
        "  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>\n"
        "  <opensearch:totalResults>1</opensearch:totalResults>\n"
        "  <opensearch:startIndex>0</opensearch:startIndex>\n  <entry>\n"
        f"    <id>https://arxiv.org/api/errors#{anchor}</id>\n    <title>Error</title>\n    <updated>{now}</updated>\n"
        f'    <link href="https://arxiv.org/api/errors#{anchor}" rel="alternate" type="text/html"/>\n'
        f"    <summary>{escape(message)}</summary>\n    <author>\n      <name>arXiv api core</name>\n    </author>\n"
        "  </entry>\n</feed>\n"
    ).encode()


def _announce_fields(p: Paper) -> tuple[str, str]:
    kind = p.announce_type or "new"
    return kind, f"arXiv:{_v(p)} Announce Type: {kind} \nAbstract: {p.abstract}"


def _item_extras(p: Paper, kind: str, pad: str) -> str:
    """The trailing elements of an RSS item / Atom entry, in the observed order."""
    lines = [f"<arxiv:announce_type>{kind}</arxiv:announce_type>"]
    lines.append("<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>")
    lines += [f"<arxiv:DOI>{escape(p.doi)}</arxiv:DOI>"] if p.doi else []
    lines += [f"<arxiv:journal_reference>{escape(p.journal_ref)}</arxiv:journal_reference>"] if p.journal_ref else []
    lines.append(f"<dc:creator>{escape(', '.join(p.authors))}</dc:creator>")
    return "".join(f"{pad}{line}\n" for line in lines)


def render_rss_feed(papers: Iterable[Paper], *, announced: date, cats: str = "cs.AI") -> bytes:
    """Papers as an ``rss.arxiv.org/rss/<cats>`` RSS 2.0 feed announced on ``announced`` (no papers = empty day)."""
    day = format_datetime(_eastern_midnight(announced))
    items = []
    for p in papers:
        kind, desc = _announce_fields(p)
        cats_xml = "".join(f"      <category>{c}</category>\n" for c in p.categories)
        items.append(
            f"    <item>\n      <title>{escape(p.title)}</title>\n      <link>https://arxiv.org/abs/{p.id}</link>\n"
            f"      <description>{escape(desc)}</description>\n"
            f'      <guid isPermaLink="false">oai:arXiv.org:{_v(p)}</guid>\n{cats_xml}      <pubDate>{day}</pubDate>\n'
            f"{_item_extras(p, kind, '      ')}    </item>\n"
        )
    built = format_datetime(_eastern_midnight(announced).astimezone(UTC) + timedelta(seconds=2), usegmt=False)
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'version="2.0">\n'
        f"  <channel>\n    <title>{cats} updates on arXiv.org</title>\n    <link>http://rss.arxiv.org/rss/{cats}</link>\n"
        f"    <description>{cats} updates on the arXiv.org e-print archive.</description>\n"
        f'    <atom:link href="http://rss.arxiv.org/rss/{cats}" rel="self" type="application/rss+xml"/>\n'
        "    <docs>http://www.rssboard.org/rss-specification</docs>\n    <language>en-us</language>\n"
        f"    <lastBuildDate>{built}</lastBuildDate>\n    <managingEditor>rss-help@arxiv.org</managingEditor>\n"
        f"    <pubDate>{day}</pubDate>\n    <skipDays>\n      <day>Sunday</day>\n      <day>Saturday</day>\n"
        f"    </skipDays>\n{''.join(items)}  </channel>\n</rss>\n"
    ).encode()


def render_atom_feed(papers: Iterable[Paper], *, announced: date, cats: str = "cs.AI") -> bytes:
    """Papers as an ``rss.arxiv.org/atom/<cats>`` announcement feed (entries carry only ``dc:creator``)."""
    midnight = _eastern_midnight(announced)
    stamp = (midnight.astimezone(UTC) + timedelta(seconds=19)).isoformat(timespec="microseconds")
    entries = []
    for p in papers:
        kind, desc = _announce_fields(p)
        cats_xml = "".join(f'    <category term="{c}"/>\n' for c in p.categories)
        entries.append(
            f"  <entry>\n    <id>oai:arXiv.org:{_v(p)}</id>\n    <title>{escape(p.title)}</title>\n"
            f"    <updated>{stamp}</updated>\n"
            f'    <link href="https://arxiv.org/abs/{p.id}" rel="alternate" type="text/html"/>\n'
            f"    <summary>{escape(desc)}</summary>\n{cats_xml}    <published>{midnight.isoformat()}</published>\n"
            f"{_item_extras(p, kind, '    ')}  </entry>\n"
        )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns="http://www.w3.org/2005/Atom" xml:lang="en-us">\n'
        f"  <id>http://rss.arxiv.org/atom/{cats}</id>\n  <title>{cats} updates on arXiv.org</title>\n"
        f"  <updated>{stamp}</updated>\n"
        f'  <link href="http://rss.arxiv.org/atom/{cats}" rel="self" type="application/atom+xml"/>\n'
        f"  <subtitle>{cats} updates on the arXiv.org e-print archive.</subtitle>\n{''.join(entries)}</feed>\n"
    ).encode()


def render_hf_daily(papers: Iterable[Paper], *, day: date) -> bytes:
    """Papers as one day of ``/api/daily_papers`` (compact JSON, optional keys absent when unset)."""
    items = []
    for p in papers:
        published = _zulu(p.published or datetime.combine(day, dtime(0), UTC)).replace("Z", ".000Z")
        paper: dict = {
            "id": p.id,
            "authors": [{"_id": f"a{i:023x}", "name": n, "hidden": False} for i, n in enumerate(p.authors)],
            "publishedAt": published,
            "submittedOnDailyAt": f"{(p.hf_date or day).isoformat()}T00:00:00.000Z",
            "title": p.title,
            "summary": p.abstract,
            "upvotes": p.hf_upvotes or 0,
            "discussionId": f"d{abs(hash(p.id)) % 10**12:012d}",
        }
        if p.hf_repo:
            paper.update(githubRepo=p.hf_repo, githubRepoAddedBy="auto", githubStars=1)
        paper.update(ai_summary=p.abstract[:120], ai_keywords=list(p.hf_keywords), ai_summary_model="fake")
        items.append(
            {
                "paper": paper,
                "publishedAt": published,
                "title": p.title,
                "summary": p.abstract,
                "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{p.id}.png",
                "numComments": 0,
                "submittedBy": {"_id": "u1", "fullname": "Fake User", "name": "fake", "type": "user"},
                "isAuthorParticipating": False,
            }
        )
    return json.dumps(items, separators=(",", ":")).encode()


# ---------------------------------------------------------------- server


class FakeSources:
    """The fake server. Use as a context manager; set bodies/papers/queues before or between requests."""

    def __init__(self, fixtures_dir: Path = FIXTURES, *, delay: float = 0.0) -> None:
        self.fixtures = fixtures_dir
        rss_dir = fixtures_dir / "arxiv_rss"
        self.default_rss = (rss_dir / "reconstructed_rss_cs.AI_2025-08-20_all_announce_types.xml").read_bytes()
        self.default_atom = (rss_dir / "reconstructed_atom_cs.AI_2025-08-20_wellformed.xml").read_bytes()
        self.rss: dict[str, bytes] = {}  # "/rss/<cats>" body per category string
        self.atom: dict[str, bytes] = {}
        hf = (fixtures_dir / "hf_daily_papers" / "daily_papers_limit100_latest_2026-06-12.json").read_bytes()
        self.hf_days: dict[str, bytes] = {"2026-06-12": hf}  # other dates answer []
        self.api_papers: list[Paper] = []  # searchable by cat:/submittedDate and id_list
        self.api_page_cap: int | None = None  # serve at most this many entries per page (short pages)
        self.delay = delay  # seconds every answer is held back, to make overlaps observable
        self.enforce_interval: float | None = None  # 429 arXiv requests closer than this to the previous one
        self._last_arxiv: float | None = None
        self.requests: list[Request] = []
        self.max_concurrent = 0
        self._active = 0
        self._queues: dict[str, deque[Reply]] = {r: deque() for r in ROUTES}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fixture_replies, self._fixture_entries = self._load_api_fixtures()
        self._server: _QuietServer | None = None

    # -- lifecycle
    def __enter__(self) -> FakeSources:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeSources:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-sources", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- addresses
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def rss_url(self) -> str:
        return f"{self.base_url}/rss"

    @property
    def atom_url(self) -> str:
        return f"{self.base_url}/atom"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/query"

    @property
    def hf_url(self) -> str:
        return f"{self.base_url}/api/daily_papers"

    # -- scripting and inspection
    def queue(self, route: str, *replies: Reply) -> None:
        """Answer the next requests on ``route`` ("rss", "atom", "api", "hf") with ``replies``, in order."""
        self._queues[route].extend(replies)

    def requests_for(self, route: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # -- fixtures
    def _load_api_fixtures(self) -> tuple[dict[tuple[str, str, int], tuple[int, bytes]], dict[str, str]]:
        api_dir = self.fixtures / "arxiv_api"
        index = json.loads((api_dir / "index.json").read_text())
        replies: dict[tuple[str, str, int], tuple[int, bytes]] = {}
        entries: dict[str, str] = {}
        for rec in index["responses"]:
            q = {k: v[0] for k, v in parse_qs(urlsplit(rec.get("url") or rec["url_reconstructed"]).query).items()}
            body = (api_dir / rec["file"]).read_bytes()
            key = (_canonical(q.get("search_query", "")), q.get("id_list", ""), int(q.get("start", 0)))
            replies[key] = (rec["status"], body)
            for m in _ENTRY_RE.finditer(body.decode("utf-8")):
                entries.setdefault(split_arxiv_id(m.group("id"))[0], m.group(0))
        return replies, entries

    # -- routes
    def answer(self, route: str, path: str, query: dict[str, str]) -> Reply:
        """The unscripted answer for a request (what the real service would say)."""
        if route in ("rss", "atom"):
            cats = unquote(path.split("/", 2)[2])
            bodies, default = (self.rss, self.default_rss) if route == "rss" else (self.atom, self.default_atom)
            return Reply(body=bodies.get(cats, default))
        if route == "hf":
            day = query.get("date") or max(self.hf_days, default="2026-06-12")
            try:
                date.fromisoformat(day)
            except ValueError:
                return Reply(400, json.dumps({"error": f"Invalid date: {day}"}), content_type=CONTENT_TYPES["hf"])
            return Reply(body=self.hf_days.get(day, b"[]"))
        return self._api(query)

    def _api(self, q: dict[str, str]) -> Reply:
        try:
            start, per_page = int(q.get("start", 0)), int(q.get("max_results", 10))
        except ValueError:
            return Reply(400, api_error_feed("start and max_results must be integers"))
        if per_page > 30000 or start < 0:
            return Reply(400, api_error_feed(f"max_results must be at most 30000, got {per_page}"))
        search, id_list = _canonical(q.get("search_query", "")), q.get("id_list", "")
        if (search, id_list, start) in self._fixture_replies:
            status, body = self._fixture_replies[(search, id_list, start)]
            return Reply(status, body)
        limit = per_page if self.api_page_cap is None else min(per_page, self.api_page_cap)
        echo = f"search_query={search}&id_list={id_list}"
        if id_list:
            found = []
            for raw in id_list.split(","):
                try:
                    base, _ = split_arxiv_id(raw)
                except ValueError:
                    return Reply(400, api_error_feed(f"incorrect id format for {raw}"))
                found += self._entries_for(base)
            chosen = found[start : start + limit]
            return Reply(body=api_feed(chosen, total=len(found), start=start, per_page=per_page, query=echo))
        if search == "all:testing":  # the fixture query beyond its recorded pages
            return Reply(body=api_feed([], total=214881, start=start, per_page=per_page, query=echo))
        matches = _search(self.api_papers, search, q.get("sortOrder", "descending"))
        if matches is None:
            return Reply(400, api_error_feed(f"unsupported search_query {search!r}"))
        chosen = [api_entry(p) for p in matches[start : start + limit]]
        return Reply(body=api_feed(chosen, total=len(matches), start=start, per_page=per_page, query=echo))

    def _entries_for(self, base: str) -> list[str]:
        for p in self.api_papers:
            if p.id == base:
                return [api_entry(p)]
        entry = self._fixture_entries.get(base)
        return [entry] if entry else []


def _canonical(search: str) -> str:
    """A bare term means ``all:term`` (the API echoes ``search_query=all:testing``)."""
    return f"all:{search}" if search and ":" not in search else search


def _search(papers: list[Paper], query: str, order: str) -> list[Paper] | None:
    """``cat:`` terms (OR-ed) and an optional ``submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`` range."""
    cats = set(re.findall(r"\bcat:([\w.-]+)", query))
    span = re.search(r"submittedDate:\[(\d{12}) TO (\d{12})\]", query)
    if "submittedDate" in query and span is None:
        return None  # the 2026 backend insists on the bracketed range
    if not cats and span is None:
        return None
    out = [p for p in papers if not cats or cats & set(p.categories)]
    if span:
        lo, hi = (datetime.strptime(s, "%Y%m%d%H%M").replace(tzinfo=UTC) for s in span.groups())
        hi += timedelta(seconds=59)
        out = [p for p in out if p.published and lo <= p.published.astimezone(UTC) <= hi]
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(out, key=lambda p: p.published or epoch, reverse=order == "descending")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets and hangs are deliberate; the client side reports them


class _Handler(BaseHTTPRequestHandler):
    owner: FakeSources
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        fake = self.owner
        parts = urlsplit(self.path)
        route = _route(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        now = time.monotonic()
        with fake._lock:
            fake.requests.append(Request(route or "?", parts.path, query, dict(self.headers.items()), now))
            fake._active += 1
            fake.max_concurrent = max(fake.max_concurrent, fake._active)
            scripted = fake._queues[route].popleft() if route and fake._queues[route] else None
            if route in ("rss", "atom", "api"):
                last, fake._last_arxiv, limit = fake._last_arxiv, now, fake.enforce_interval
                if scripted is None and limit is not None and last is not None and now - last < limit:
                    scripted = Reply.limited(429)
        try:
            if route is None:
                reply = Reply(404, "Not Found\n", content_type="text/plain")
            else:
                reply = scripted or fake.answer(route, parts.path, query)
                if reply.body is None:
                    reply.body = fake.answer(route, parts.path, query).body
            if reply.fault == "hang":
                fake._stop.wait()
                self.close_connection = True
                return
            if reply.delay or fake.delay:
                time.sleep(reply.delay or fake.delay)
        finally:
            with fake._lock:
                fake._active -= 1
        self._send(reply, route or "rss")

    def _send(self, reply: Reply, route: str) -> None:
        if reply.fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        body = reply.body.encode() if isinstance(reply.body, str) else (reply.body or b"")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type or CONTENT_TYPES[route])
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.fault == "truncate":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if reply.fault == "truncate" else body)
        if reply.fault == "truncate":
            self.close_connection = True


def _route(path: str) -> str | None:
    if path.startswith("/rss/"):
        return "rss"
    if path.startswith("/atom/"):
        return "atom"
    return {"/api/query": "api", "/api/daily_papers": "hf"}.get(path)


class FakeClock:
    """A monotonic clock whose ``sleep`` only advances time and records the request."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fast_client(clock: FakeClock | None = None, *, read: float = 5.0, retries: int = 3) -> HttpClient:
    """An ``HttpClient`` with the production pacing and back-off rules on a fake clock (no real waits)."""
    clock = clock or FakeClock()
    profiles = {
        name: SourceProfile(Pacer(interval, clock=clock.clock, sleep=clock.sleep), RetryPolicy(retries, backoff, cap))
        for name, interval, backoff, cap in (
            ("arxiv", 3.0, (3.0, 10.0, 30.0), 300.0),
            ("huggingface", 1.0, (5.0, 15.0), 60.0),
        )
    }
    return HttpClient(profiles=profiles, timeouts=Timeouts(connect=2.0, read=read, total=30.0))


@pytest.fixture
def fake_sources(fixtures_dir: Path) -> Iterator[FakeSources]:
    """A started ``FakeSources`` serving the shared fixtures; stopped after the test."""
    with FakeSources(fixtures_dir) as fake:
        yield fake
