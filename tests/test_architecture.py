"""The one-way architecture holds: bot/ never imports Slack's Bolt or handlers, and each third-party
package lives in one place."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# package -> the only modules (path prefixes, relative to the repo) allowed to import it
OWNERS = {
    "rank_bm25": ("bot/search.py",),
    "apscheduler": ("bot/scheduler.py",),
    "yaml": ("bot/settings/",),
    "httpx": ("bot/sources/",),
    "feedparser": ("bot/sources/",),
    "slack_sdk": ("bot/delivery.py", "handlers/", "bot/__main__.py"),
    "slack_bolt": ("handlers/", "bot/__main__.py"),
    "sqlalchemy": ("bot/store/",),
    "tqdm": ("bot/cli.py", "bot/cli_"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[tuple[str, set[str]]]:
    out = []
    for top in ("bot", "handlers"):
        for path in sorted((REPO / top).rglob("*.py")):
            out.append((path.relative_to(REPO).as_posix(), _imports(path)))
    return out


def test_bot_never_imports_handlers_or_bolt() -> None:
    offenders = [
        (rel, name)
        for rel, names in _modules()
        if rel.startswith("bot/") and rel not in ("bot/__main__.py")
        for name in names
        if name.split(".")[0] in ("handlers", "slack_bolt")
    ]
    assert offenders == []


def test_each_third_party_package_lives_in_one_place() -> None:
    offenders = [
        (rel, name)
        for rel, names in _modules()
        for name in names
        if (owners := OWNERS.get(name.split(".")[0])) is not None and not rel.startswith(owners)
    ]
    assert offenders == []


def test_every_module_starts_with_a_docstring() -> None:
    missing = [rel for rel, _ in _modules() if ast.get_docstring(ast.parse((REPO / rel).read_text())) is None]
    assert missing == []
