"""The typed error hierarchy of Paperboy.

Code in ``bot/`` raises these with enough context for an operator (or a Slack user) to act on;
``handlers/`` and the CLI map them to one-line messages. Anything that is not a ``BotError`` is a
bug and is logged with its traceback.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class of every expected failure."""


class ConfigError(BotError):
    """The configuration file or environment is invalid."""


class SourceError(BotError):
    """A paper source could not be fetched or its response could not be parsed.

    Attributes:
        source: short source name, e.g. ``"arxiv"`` or ``"huggingface"``.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class FeedFormatError(SourceError):
    """A response body was malformed, truncated, HTML instead of XML/JSON, or an API error entry."""


class RateLimitedError(SourceError):
    """The source kept answering 429/503 after our back-off budget was spent."""


class StoreError(BotError):
    """The database failed or holds something unexpected."""


class SchemaError(StoreError):
    """The database schema is older (or newer) than this code expects."""


class PlanConflict(StoreError):
    """Another digest of the channel planned some of the same papers first (two workers, two days)."""


class ImportFormatError(BotError):
    """A file given to ``python -m bot import`` is not in a supported format."""


class QueryError(BotError):
    """A search query or keyword could not be parsed; the message says what is wrong, in words."""


class DeliveryError(BotError):
    """Slack refused or failed a post.

    Attributes:
        code: Slack's error code (``not_in_channel``, ``ratelimited`` …) or a transport error name.
        permanent: True when retrying cannot help (channel gone, bot not invited, bad blocks).
        ambiguous: True when Slack may have accepted the post although we saw no response.
    """

    PERMANENT_CODES = frozenset(
        {
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "invalid_blocks",
            "invalid_blocks_format",
            "msg_too_long",
            "msg_blocks_too_long",
            "no_text",
            "restricted_action",
            "missing_scope",
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
            "user_not_in_channel",
            "used_url",
            "expired_url",
        }
    )

    def __init__(self, code: str, message: str = "", *, ambiguous: bool = False) -> None:
        super().__init__(message or code)
        self.code = code
        self.ambiguous = ambiguous

    @property
    def permanent(self) -> bool:
        return self.code in self.PERMANENT_CODES


class AuthError(DeliveryError):
    """A Slack token is missing, invalid or revoked; the process cannot do useful work."""
