"""The services handed to Slack listeners: the core (settings, store, index, delivery) plus executors.

Built once by the composition root; ``handlers`` receive it in ``register(app, services)``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.jobs import Core


@dataclass
class Services:
    core: Core
    bot_user_id: str = ""
    # BM25 searches and Slack posts for interactive answers run here, never on Bolt's listener pool,
    # so acks are never starved (reliability.md F-S2).
    work: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="answer"))
