"""What every answer needs: who asked (:class:`Origin`), what was delivered (:class:`Answer`), how to
post in a channel or thread, how to tell the requester privately, and how a failure becomes words.

Private answers go through the slash command's or button's ``response_url`` (ephemeral; it works
where the bot is not a member), into the mention's thread, or else as an ephemeral message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.delivery import SlackDelivery
from bot.errors import BotError, DeliveryError, QueryError, StoreError
from bot.jobs import Core
from bot.models import Message
from bot.render_blocks import context, message, section
from bot.render_commands import render_not_in_channel_help
from bot.render_search import render_query_error
from bot.settings import ChannelConfig
from bot.slack_text import esc

log = logging.getLogger("bot.answers")

# Slack's answers when the bot may not post in a conversation (not a member, a DM, a private channel).
CANNOT_POST = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "method_not_supported_for_channel_type"}
)
APOLOGY = "Sorry, something went wrong on my side while answering that. It has been logged; please try again."
NOT_CONFIGURED = (
    "This channel has no daily digest (it is not in the config file), so its keywords are used only by "
    "`/papers since &lt;day&gt;`."
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, in which channel, and how to answer them privately."""

    channel: str
    user: str
    response_url: str | None = None  # slash commands and buttons: ephemeral answers
    thread_ts: str | None = None  # mentions: the thread to answer in


@dataclass(frozen=True, slots=True)
class Post:
    """One message posted in a channel (``thread_ts`` set for a thread reply)."""

    ts: str
    thread_ts: str | None
    message: Message


@dataclass
class Answer:
    """What was delivered: channel posts in order, and the messages only the requester saw."""

    posts: list[Post] = field(default_factory=list)
    private: list[Message] = field(default_factory=list)
    duplicate: bool = False  # a redelivery (or a double click) that was already answered
    fell_back: bool = False  # the bot could not post in the channel; the answer went to the requester

    @property
    def parent(self) -> Post | None:
        return next((p for p in self.posts if p.thread_ts is None), None)

    @property
    def replies(self) -> list[Post]:
        return [p for p in self.posts if p.thread_ts is not None]


def delivery(core: Core) -> SlackDelivery:
    assert isinstance(core.delivery, SlackDelivery), "answers need a Slack delivery"
    return core.delivery


def channel_config(core: Core, channel: str) -> ChannelConfig | None:
    return core.settings.channel(channel)


def channel_zone(core: Core, channel: str) -> ZoneInfo:
    ch = channel_config(core, channel)
    return ch.tz if ch else ZoneInfo(core.settings.timezone)


def notice(mrkdwn: str) -> Message:
    """A one-section message of our own words (``mrkdwn`` must already be escaped)."""
    return message(mrkdwn, [section(mrkdwn)])


def with_note(msg: Message, mrkdwn: str) -> Message:
    """``msg`` with a context line appended (``mrkdwn`` must already be escaped)."""
    return Message(text=msg.text, blocks=(*msg.blocks, context(mrkdwn)), paper_ids=msg.paper_ids)


def post(core: Core, channel: str, msg: Message, thread_ts: str | None, answer: Answer) -> str:
    ts = delivery(core).post(channel, msg, thread_ts=thread_ts)
    answer.posts.append(Post(ts, thread_ts, msg))
    return ts


def tell(core: Core, origin: Origin, msg: Message, answer: Answer) -> None:
    """Answer the requester: ephemerally via ``response_url``, in the mention's thread, or ephemerally."""
    if origin.response_url:
        delivery(core).respond(origin.response_url, msg)
        answer.private.append(msg)
    elif origin.thread_ts:
        post(core, origin.channel, msg, origin.thread_ts, answer)
    else:
        delivery(core).post_ephemeral(origin.channel, origin.user, msg)
        answer.private.append(msg)


def start_thread(core: Core, origin: Origin, parent: Message, answer: Answer) -> str | None:
    """The thread to answer in: the mention's, or a new one under ``parent`` posted in the channel.

    None when the bot may not post there and the requester can be answered privately instead
    (``answer.fell_back`` is set; call :func:`finish` once the replies are out).
    """
    if origin.thread_ts:
        return origin.thread_ts
    try:
        return post(core, origin.channel, parent, None, answer)
    except DeliveryError as exc:
        if exc.code not in CANNOT_POST or not origin.response_url:
            raise
        log.info("cannot post in %s (%s); answering %s ephemerally", origin.channel, exc.code, origin.user)
        answer.fell_back = True
        return None


def reply(core: Core, origin: Origin, thread_ts: str | None, msg: Message, answer: Answer) -> None:
    """Post ``msg`` in the thread, or privately when :func:`start_thread` fell back."""
    if thread_ts:
        post(core, origin.channel, msg, thread_ts, answer)
    else:
        tell(core, origin, msg, answer)


def finish(core: Core, origin: Origin, answer: Answer) -> None:
    """After a fallback, say why the answer is private and how to invite the bot."""
    if answer.fell_back:
        tell(core, origin, render_not_in_channel_help(origin.channel), answer)


def fail(core: Core, origin: Origin, exc: BaseException, answer: Answer, *, query: str | None = None) -> None:
    """Turn a failure into a message for the requester; log what an operator needs. Never raises."""
    if isinstance(exc, QueryError):
        msg = render_query_error(query, str(exc)) if query else notice(f"⚠️ {esc(str(exc), 600)}")
    elif isinstance(exc, DeliveryError) and exc.code in CANNOT_POST:
        msg = render_not_in_channel_help(origin.channel)
    elif isinstance(exc, DeliveryError):
        log.warning("answer to %s in %s not delivered: %s", origin.user, origin.channel, exc)
        msg = notice(f"⚠️ Slack did not take my answer ({esc(exc.code, 60)}). Please try again in a minute.")
    elif isinstance(exc, StoreError):
        log.warning("answer to %s in %s failed on the database: %s", origin.user, origin.channel, exc)
        msg = notice("⚠️ The paper database is not answering right now. Please try again in a minute.")
    elif isinstance(exc, BotError):
        log.warning("answer to %s in %s failed: %s", origin.user, origin.channel, exc)
        msg = notice(f"⚠️ {esc(str(exc), 600)}")
    else:
        log.exception("answering %s in %s failed unexpectedly", origin.user, origin.channel, exc_info=exc)
        msg = notice(APOLOGY)
    _tell_safely(core, origin, msg, answer)


def apologise(core: Core, origin: Origin) -> Answer:
    """The short apology for a failure already logged elsewhere (the listeners' error backstop). Never raises."""
    answer = Answer()
    _tell_safely(core, origin, notice(APOLOGY), answer)
    return answer


def _tell_safely(core: Core, origin: Origin, msg: Message, answer: Answer) -> None:
    try:
        tell(core, origin, msg, answer)
    except Exception as again:  # nowhere left to report it but the log
        log.warning("could not tell %s in %s about a failure: %s", origin.user, origin.channel, again)
