"""Composition root: ``python -m bot`` starts the Slack worker; ``python -m bot COMMAND`` runs the CLI.

This is the one module that imports both sides (``bot`` and ``handlers``/``slack_bolt``). Start-up
order: settings and tokens -> refuse ephemeral SQLite on a PaaS -> store (schema check) -> search
index -> Slack auth -> Bolt app and listeners -> Socket Mode -> scheduler and catch-up. A missing or
invalid token, or an outdated schema, exits non-zero with one clear line.

SIGTERM: stop taking new work, let the post in flight finish, close the socket, exit 0 within 25 s.

Fatal at run time (the platform then shows the worker as crashed and restarts it): a socket the
watchdog cannot restore (exit 3), and a Slack token rejected while running (exit 4): the bot token
is checked with ``auth.test`` every ``PAPERBOY_AUTH_CHECK_S`` seconds (default 60) and any digest or
answer call that meets an auth error reports it at once; a revoked app token fails the watchdog's
reconnect. Environment knobs (seconds): ``PAPERBOY_DIGEST_LEASE_S``, ``PAPERBOY_SWEEP_S``,
``PAPERBOY_AUTH_CHECK_S``, ``PAPERBOY_SOCKET_PING_S``, ``PAPERBOY_SOCKET_STALE_S``,
``PAPERBOY_SOCKET_GIVE_UP_S``, ``PAPERBOY_SOCKET_CHECK_S`` (defaults in ``handlers/socket.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import FrameType

from slack_bolt import App
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

import handlers
from bot.cli import main as cli_main
from bot.cli import open_index, open_store
from bot.delivery import SlackDelivery
from bot.errors import AuthError, BotError, ConfigError, DeliveryError
from bot.jobs import Core, run_due_digests
from bot.scheduler import build_scheduler
from bot.services import Services
from bot.settings import load_settings, load_slack_tokens, paas_name
from handlers import socket as sm

log = logging.getLogger("paperboy")
STOP_DEADLINE_S = 25.0
AUTH_CHECK_S = 60.0  # a revoked bot token is noticed within this (plus one auth.test)
EXIT_SOCKET_DEAD, EXIT_AUTH = 3, 4
_SECRET_RE = re.compile(r"\b(xox[abprs]-|xapp-|hf_)[A-Za-z0-9-]+")


class _Redact(logging.Filter):
    """Never let a token reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _SECRET_RE.sub(r"\1***", record.getMessage())
        record.args = ()
        return True


class _DropBoltTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that the ``client`` we pass (with our base URL) wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def limit_malloc_arenas() -> None:
    """Cap glibc at two malloc arenas, before threads start (bench_memory_soak: +41% RSS growth without it)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (the index build leaves ~130 MB of garbage behind)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def setup_logging(env: Mapping[str, str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    logging.basicConfig(level=env.get("LOG_LEVEL", "INFO").upper(), handlers=[handler], force=True)
    for noisy in ("slack_sdk", "slack_bolt", "apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # "skipped: maximum number of running instances" is the sweep meeting a digest in flight: expected.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {env.get(name)!r}") from None


def _socket_stale(env: Mapping[str, str]) -> float:
    """The watchdog's silence threshold; it must leave room for two pings, or a quiet healthy socket looks dead."""
    ping = _env_float(env, "PAPERBOY_SOCKET_PING_S", sm.PING_INTERVAL_S)
    stale = _env_float(env, "PAPERBOY_SOCKET_STALE_S", sm.STALE_AFTER_S)
    if ping <= 0 or stale <= 2 * ping:
        raise ConfigError(
            f"PAPERBOY_SOCKET_STALE_S ({stale:g}) must be more than twice PAPERBOY_SOCKET_PING_S ({ping:g}), "
            "and both positive: pongs arrive once per ping, so a shorter threshold sees a healthy socket as dead"
        )
    return stale


def run(env: Mapping[str, str] = os.environ) -> int:
    """Start the worker and block until SIGTERM/SIGINT or a dead socket; returns the exit status."""
    settings = load_settings(env=env)
    tokens = load_slack_tokens(env)
    ping, stale = _env_float(env, "PAPERBOY_SOCKET_PING_S", sm.PING_INTERVAL_S), _socket_stale(env)
    if (paas := paas_name(env)) and not settings.database_from_env and env.get("ALLOW_EPHEMERAL_SQLITE") != "1":
        raise ConfigError(
            f"{paas} is set, so this looks like a PaaS with an ephemeral disk, and DATABASE_URL is not set: "
            "the SQLite file would be lost on every restart (and papers reposted). Attach PostgreSQL and set "
            "DATABASE_URL, or set ALLOW_EPHEMERAL_SQLITE=1 if the disk is really persistent."
        )
    store = open_store(settings)
    saved = open_index(store, quiet=True)
    index = saved.index
    release_free_memory()
    log.info("index ready: %d papers", len(index))
    delivery = SlackDelivery(tokens.bot_token, base_url=settings.slack_api_url)
    auth = delivery.auth_test()  # AuthError on a bad bot token
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    lease = timedelta(seconds=_env_float(env, "PAPERBOY_DIGEST_LEASE_S", 120))
    core = Core(settings=settings, store=store, index=index, delivery=delivery, owner=owner, lease=lease)
    services = Services(core=core, bot_user_id=str(auth.get("user_id", "")))

    client = WebClient(token=tokens.bot_token, base_url=settings.slack_api_url)
    logging.getLogger("slack_bolt.App").addFilter(_DropBoltTokenWarning())
    app = App(client=client, listener_executor=ThreadPoolExecutor(16, thread_name_prefix="bolt"))
    handlers.register(app, services)
    socket_handler = sm.connect(app, tokens.app_token, ping_interval=ping)
    watchdog = sm.Watchdog(
        socket_handler,
        stale_after=stale,
        give_up_after=_env_float(env, "PAPERBOY_SOCKET_GIVE_UP_S", sm.GIVE_UP_AFTER_S),
        check_every=_env_float(env, "PAPERBOY_SOCKET_CHECK_S", sm.CHECK_EVERY_S),
    ).start()
    stop = threading.Event()  # handlers first: a SIGTERM right after the line below still exits 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the post in flight, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("connected to Slack as %s; %d channel(s) configured", auth.get("user", "?"), len(settings.channels))

    def wake() -> None:
        if not core.stopping.is_set():
            run_due_digests(core)
            saved.resave_if_behind()
            release_free_memory()  # searches fragment the heap; give the pages back every sweep

    scheduler = build_scheduler(settings, wake, sweep_seconds=_env_float(env, "PAPERBOY_SWEEP_S", 60))
    scheduler.start()
    threading.Thread(target=wake, name="catch-up", daemon=True).start()  # today's digest, if due and not posted

    keepalive = _env_float(env, "PAPERBOY_AUTH_CHECK_S", AUTH_CHECK_S)
    threading.Thread(target=_keepalive, args=(stop, delivery, keepalive), name="auth-keepalive", daemon=True).start()
    return _shutdown(core, services, scheduler, socket_handler, watchdog, fatal=_watch(stop, watchdog, delivery))


def _keepalive(stop: threading.Event, delivery: SlackDelivery, every: float) -> None:
    """``auth.test`` every ``every`` seconds, so a revoked bot token shows even when the bot is idle.

    Its own thread: a slow Slack must not delay the main loop's reaction to SIGTERM.
    """
    while not stop.wait(every):
        try:
            delivery.auth_test()
        except AuthError:
            return  # recorded in delivery.auth_failure; the main loop exits on it
        except DeliveryError as exc:  # Slack unreachable: not fatal, the next check retries
            log.warning("auth.test keepalive failed: %s", exc)


def _watch(stop: threading.Event, watchdog: sm.Watchdog, delivery: SlackDelivery) -> tuple[int, str]:
    """Block until a signal (``(0, "")``) or a fatal condition (exit code and the reason to log)."""
    while not stop.wait(0.5):
        if watchdog.failed.is_set():
            return EXIT_SOCKET_DEAD, watchdog.reason or "the Slack socket could not be kept alive"
        if delivery.auth_failure is not None:  # from the keepalive, a digest or an answer
            return EXIT_AUTH, f"{delivery.auth_failure} (token revoked or app uninstalled?)"
    return 0, ""


def _shutdown(
    core: Core,
    services: Services,
    scheduler: object,
    socket_handler: object,
    watchdog: sm.Watchdog,
    *,
    fatal: tuple[int, str] = (0, ""),
) -> int:
    """Stop taking work, wait (bounded) for the digest in flight, close the socket. Exit code 0 unless fatal."""
    code, reason = fatal
    if code:
        log.error("exiting with status %d: %s", code, reason)
    killer = threading.Timer(STOP_DEADLINE_S, lambda: os._exit(code))
    killer.daemon = True
    killer.start()
    core.stopping.set()
    watchdog.stop()
    scheduler.shutdown(wait=False)  # type: ignore[attr-defined]
    services.work.shutdown(wait=False, cancel_futures=True)
    if core.digest_lock.acquire(timeout=STOP_DEADLINE_S - 5):  # the post in flight finishes first
        core.digest_lock.release()
    try:
        socket_handler.close()  # type: ignore[attr-defined]
    except Exception:
        log.exception("closing the socket failed")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    limit_malloc_arenas()
    setup_logging(os.environ)
    if argv and argv[0] not in ("run",):
        return cli_main(argv)
    if argv[1:] and argv[1] in ("-h", "--help"):
        print("usage: python -m bot [run]\n\nStart the Slack worker (Socket Mode, scheduler, archive).")
        return 0
    try:
        return run()
    except BotError as exc:
        log.error("%s", " ".join(str(exc).split()))
        return 1
    except Exception:
        log.exception("start-up failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
