"""Interactivity: binds the "More results" button (``papers_more``) to its callback."""

from __future__ import annotations

from slack_bolt import App

from bot.render_search import MORE_ACTION_ID
from bot.services import Services
from handlers.actions import papers_more


def register(app: App, services: Services) -> None:
    app.action(MORE_ACTION_ID)(papers_more.make_papers_more(services))
