"""Validation of the composed YAML tree of ``config/paperboy.yaml``.

Each check records ``file:line: key: problem`` so one run of the loader reports every mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

if TYPE_CHECKING:
    from bot.settings import ChannelConfig

DEFAULT_DB_PATH = "data/paperboy.db"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = DAYS[:5]
CHANNEL_ID_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")
CATEGORY_RE = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z-]+)?$")
SECRET_KEY_RE = re.compile(r"(token|secret|password|database_url|api_key)", re.IGNORECASE)
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
Nodes = dict[str, tuple[yaml.Node, yaml.Node]]


@dataclass(frozen=True)
class SourcesConfig:
    categories: tuple[str, ...] = ("cs.CL",)
    cross_lists: bool = True
    replacements: bool = False
    huggingface: bool = True


class Validator:
    """Walks the composed YAML nodes, converting values and collecting ``file:line: key: problem`` lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.problems.append(f"{self.source}{line}: {key or '(top level)'}: {problem}")

    def mapping(self, node: yaml.Node, key: str, *, required: bool = True) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, key, "must be a mapping of keys to values")
            return {}
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, val in node.value:
            name = str(k.value)
            if SECRET_KEY_RE.search(name):
                self.fail(k, _join(key, name), "secrets do not belong in the config file; set them in the environment")
            elif name in out:
                self.fail(k, _join(key, name), "is given twice")
            out[name] = (k, val)
        return out

    def unknown(self, m: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str, allowed: set[str]) -> None:
        for name, (knode, _) in m.items():
            if name not in allowed and not SECRET_KEY_RE.search(name):
                self.fail(knode, _join(key, name), f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, key, "must be a single value")
            return None
        return yaml.safe_load(yaml.serialize(node))

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            self.fail(node, key, f"must be true or false, not {value!r}")
            return False
        return value

    def str_list(self, node: yaml.Node, key: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.ScalarNode) and node.value == "" and node.tag.endswith("null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, key, "must be a list")
            return []
        out = []
        for item in node.value:
            value = self.scalar(item, key)
            if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
                self.fail(item, key, f"list items must be non-empty text, not {value!r}")
                continue
            out.append((item, str(value).strip()))
        return out

    def zone(self, node: yaml.Node, key: str) -> str | None:
        value = self.scalar(node, key)
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            self.fail(node, key, f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)")
            return None
        return str(value)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def parse_sources(v: Validator, entry: tuple[yaml.Node, yaml.Node] | None) -> SourcesConfig:
    if entry is None:
        return SourcesConfig()
    m = v.mapping(entry[1], "sources")
    v.unknown(m, "sources", {"arxiv", "huggingface"})
    categories: tuple[str, ...] = SourcesConfig.categories
    cross, replace, hf = True, False, True
    if "arxiv" in m:
        a = v.mapping(m["arxiv"][1], "sources.arxiv")
        v.unknown(a, "sources.arxiv", {"categories", "cross_lists", "replacements"})
        if "categories" in a:
            cats = []
            for node, cat in v.str_list(a["categories"][1], "sources.arxiv.categories"):
                if CATEGORY_RE.match(cat):
                    cats.append(cat)
                else:
                    v.fail(node, "sources.arxiv.categories", f"{cat!r} is not an arXiv category such as cs.CL")
            if not cats and not v.problems:
                v.fail(a["categories"][1], "sources.arxiv.categories", "list at least one category")
            categories = tuple(dict.fromkeys(cats))
        if "cross_lists" in a:
            cross = v.boolean(a["cross_lists"][1], "sources.arxiv.cross_lists")
        if "replacements" in a:
            replace = v.boolean(a["replacements"][1], "sources.arxiv.replacements")
    if "huggingface" in m:
        node = m["huggingface"][1]
        if isinstance(node, yaml.MappingNode):
            h = v.mapping(node, "sources.huggingface")
            v.unknown(h, "sources.huggingface", {"enabled"})
            hf = v.boolean(h["enabled"][1], "sources.huggingface.enabled") if "enabled" in h else True
        else:
            hf = v.boolean(node, "sources.huggingface")
    return SourcesConfig(categories, cross, replace, hf)


def parse_channels(v: Validator, entry: tuple[yaml.Node, yaml.Node] | None, default_tz: str) -> list[ChannelConfig]:
    from bot.settings import ChannelConfig

    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode):
        v.fail(node, "channels", "must be a list of channel entries")
        return []
    out: list[ChannelConfig] = []
    seen: set[str] = set()
    allowed = {"channel", "time", "days", "timezone", "keywords", "exclude", "max_papers"}
    for i, item in enumerate(node.value):
        key = f"channels[{i}]"
        m = v.mapping(item, key)
        if not m:
            continue
        v.unknown(m, key, allowed)
        fields: dict[str, Any] = {"timezone": default_tz}
        if "channel" not in m:
            v.fail(item, f"{key}.channel", "is required (a Slack channel id such as C0123ABCD)")
        else:
            cid = str(v.scalar(m["channel"][1], f"{key}.channel") or "")
            if not CHANNEL_ID_RE.match(cid):
                v.fail(
                    m["channel"][1],
                    f"{key}.channel",
                    f"{cid!r} is not a Slack channel id (like C0123ABCD; "
                    "copy it from the channel's details, not its #name)",
                )
            elif cid in seen:
                v.fail(m["channel"][1], f"{key}.channel", f"{cid} is configured twice")
            seen.add(cid)
            fields["channel"] = cid
        if "time" not in m:
            v.fail(item, f"{key}.time", 'is required ("HH:MM", 24-hour, in the channel\'s timezone)')
        else:
            raw = v.scalar(m["time"][1], f"{key}.time")
            if isinstance(raw, int) and not isinstance(raw, bool):  # YAML 1.1 reads 08:30 as sexagesimal 510
                raw = f"{raw // 60:02d}:{raw % 60:02d}"
            match = TIME_RE.match(str(raw))
            if not match:
                v.fail(m["time"][1], f"{key}.time", f'{raw!r} is not a time like "08:30"')
            else:
                fields["time"] = time(int(match.group(1)), int(match.group(2)))
        if "days" in m:
            days = []
            for dnode, d in v.str_list(m["days"][1], f"{key}.days"):
                d3 = d.lower()[:3]
                if d3 in DAYS:
                    days.append(d3)
                else:
                    v.fail(dnode, f"{key}.days", f"{d!r} is not a day (use mon, tue, wed, thu, fri, sat, sun)")
            fields["days"] = tuple(sorted(set(days), key=DAYS.index)) or WEEKDAYS
        if "timezone" in m:
            fields["timezone"] = v.zone(m["timezone"][1], f"{key}.timezone") or default_tz
        for name in ("keywords", "exclude"):
            if name in m:
                fields[name] = tuple(dict.fromkeys(s for _, s in v.str_list(m[name][1], f"{key}.{name}")))
        if "max_papers" in m:
            n = v.scalar(m["max_papers"][1], f"{key}.max_papers")
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 40:
                v.fail(m["max_papers"][1], f"{key}.max_papers", f"must be a whole number from 1 to 40, not {n!r}")
            else:
                fields["max_papers"] = n
        if "channel" in fields and "time" in fields:
            out.append(ChannelConfig(**fields))
    return out
