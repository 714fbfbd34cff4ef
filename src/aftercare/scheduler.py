"""The embedded-mode ticker: an APScheduler 3 BackgroundScheduler running a few named jobs every tick.

The schedule of every patient lives in the database (touchpoints); the ticker only wakes the service functions
that act on it, so losing its in-memory job store loses nothing. Run exactly one ticker per database: one
`aftercare serve` process with a single uvicorn worker (APScheduler job stores cannot be shared between processes).

To add a job, add one line to JOBS (or call `register_job`): a plain function of (settings).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aftercare.bookings.tick import bookings_tick
from aftercare.dispatch.service import dispatch_due
from aftercare.flags.ticker import flags_tick
from aftercare.orchestration import plan_stragglers
from aftercare.settings import Settings
from aftercare.surveys.service import surveys_tick
from aftercare.webhooks.worker import inbound_tick

log = logging.getLogger(__name__)

JobFunc = Callable[[Settings], object]


@dataclass(frozen=True)
class Job:
    """A named job: `func(settings)` every `every_seconds` (default: settings.tick_seconds)."""

    name: str
    func: JobFunc
    every_seconds: float | None = None


# The ticker's jobs, run in this order at start and then every tick.
JOBS: list[Job] = [
    Job("plan-stragglers", plan_stragglers),
    Job("dispatch-due", dispatch_due),
    Job("inbound-tick", inbound_tick),  # inbound SMS no web process's worker has read yet
    Job("surveys-tick", surveys_tick),  # survey conversations: first questions, reminders, closing windows, misses
    Job("flags-tick", flags_tick),  # triage stragglers, escalation timers of unacknowledged flags, page retries
    Job("bookings-tick", bookings_tick),  # booking offers: expire, re-offer once, then a coordinator task
]


def register_job(name: str, func: JobFunc, every_seconds: float | None = None) -> Job:
    """Add a job to JOBS (replacing one of the same name). Call it before the ticker starts."""
    job = Job(name, func, every_seconds)
    JOBS[:] = [j for j in JOBS if j.name != name] + [job]
    return job


def run_job(job: Job, settings: Settings) -> bool:
    """Run one job once. Never raises: a failing job is logged and the next tick tries again."""
    started = time.perf_counter()
    try:
        result = job.func(settings)
    except Exception:
        log.exception("job %s failed after %.3f s; it runs again next tick", job.name, time.perf_counter() - started)
        return False
    log.debug("job %s finished in %.3f s (result %r)", job.name, time.perf_counter() - started, result)
    return True


def build_scheduler(settings: Settings, jobs: Iterable[Job] | None = None) -> BackgroundScheduler:
    """A scheduler (not started) with one interval job per entry; the first run is due at once."""
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={
            "coalesce": True,  # after a pause, run once, not once per missed tick
            "max_instances": 1,  # a slow tick is never overlapped by the next
            "misfire_grace_time": max(1, settings.tick_seconds),
        },
        timezone=UTC,
    )
    now = datetime.now(UTC)
    for job in JOBS if jobs is None else jobs:
        seconds = job.every_seconds if job.every_seconds is not None else settings.tick_seconds
        scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            args=(job, settings),
            id=job.name,
            name=job.name,
            next_run_time=now,
            replace_existing=True,
        )
    return scheduler


def start(settings: Settings, jobs: Iterable[Job] | None = None) -> BackgroundScheduler:
    """Build and start the ticker (daemon thread). Stop it with `scheduler.shutdown()`."""
    scheduler = build_scheduler(settings, jobs)
    scheduler.start()
    jobs_text = ", ".join(f"{job.name} every {job.trigger.interval}" for job in scheduler.get_jobs())
    log.info("scheduler started: %s", jobs_text)
    return scheduler
