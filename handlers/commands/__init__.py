"""Slash commands: binds ``/papers`` to its callback."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services
from handlers.commands import papers

COMMAND = "/papers"


def register(app: App, services: Services) -> None:
    app.command(COMMAND)(papers.make_papers_command(services))
