"""The services handed to Slack listeners: the core (settings, store, index, delivery) plus executors.

Built once by the composition root; ``handlers`` receive it in ``register(app, services)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.jobs import Core
from bot.lanes import Lanes


@dataclass
class Services:
    core: Core
    bot_user_id: str = ""
    # BM25 searches and Slack posts for interactive answers run here, never on Bolt's listener pool,
    # so acks are never starved (reliability.md F-S2); one lane per channel, so a busy channel's
    # paced posts never hold up answers in the others.
    work: Lanes = field(default_factory=lambda: Lanes(8, "answer"))
