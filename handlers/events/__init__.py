"""Events API: binds ``app_mention`` (the bot @-mentioned in a channel or thread) to its callback."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services
from handlers.events import app_mention


def register(app: App, services: Services) -> None:
    app.event("app_mention")(app_mention.make_app_mention(services))
