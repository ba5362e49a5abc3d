"""APScheduler 3.x wiring (the only module importing apscheduler): wake-ups for the morning digests.

The scheduler only wakes the bot up; the database decides what is due (``bot.jobs.run_due_digests``).
Each channel gets a CronTrigger at its local time and days with an explicit time zone, a generous
misfire grace time and coalescing. A periodic sweep catches anything a wake-up missed (a restart
around the slot, a source that was late, a post that must be retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.settings import ChannelConfig, Settings

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 3 * 3600
SWEEP_SECONDS = 60.0


def channel_trigger(ch: ChannelConfig) -> CronTrigger:
    """Fire at the channel's wall-clock time on its days, in its own time zone (DST-safe)."""
    return CronTrigger(
        day_of_week=",".join(ch.days), hour=ch.time.hour, minute=ch.time.minute, second=0, timezone=ch.tz
    )


def next_fire_times(ch: ChannelConfig, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after`` (used by tests and the start-up log)."""
    trigger, out, prev = channel_trigger(ch), [], None
    now = after
    for _ in range(count):
        nxt = trigger.get_next_fire_time(prev, now)
        if nxt is None:
            break
        out.append(nxt)
        prev, now = nxt, nxt
    return out


def _on_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning(
            "scheduled job %s missed its run time %s; the sweep will catch up", event.job_id, event.scheduled_run_time
        )
    elif event.exception is not None:
        log.error("scheduled job %s failed", event.job_id, exc_info=event.exception)


def build_scheduler(
    settings: Settings, wake: Callable[[], object], *, sweep_seconds: float = SWEEP_SECONDS
) -> BackgroundScheduler:
    """A BackgroundScheduler calling ``wake()`` at every channel's slot and every ``sweep_seconds``."""
    scheduler = BackgroundScheduler(
        timezone=settings.timezone,
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True, "max_instances": 1},
    )
    for ch in settings.channels:
        scheduler.add_job(wake, channel_trigger(ch), id=f"digest:{ch.channel}", replace_existing=True)
    scheduler.add_job(wake, IntervalTrigger(seconds=sweep_seconds), id="sweep", replace_existing=True)
    scheduler.add_listener(_on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return scheduler
