"""`dispatch_due(settings)`: one dispatcher run. The flow, the ticker and `aftercare dispatch --once` call it.

A run (1) reconciles maybe-sent touchpoints, (2) sends pending SMS replies, then (3) repeats: claim a
batch (lease + policy re-check in one short transaction), reserve send-rate slots, hand the messages to
a thread pool, record each result as it arrives, until nothing is due or `dispatch_max_seconds` is
used up. The next batch is claimed while the previous one is still being sent (at most two in flight),
so the pool never waits for the database. Any number of runs may overlap, in any number of processes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from aftercare.db import get_engine
from aftercare.dispatch import replies
from aftercare.dispatch.claim import Job, claim_batch, job_for
from aftercare.dispatch.outcome import Outcome
from aftercare.dispatch.ratelimit import reserve
from aftercare.dispatch.reconcile import ReconcileReport, reconcile
from aftercare.dispatch.send import Composer, send_job
from aftercare.messaging.base import Provider
from aftercare.models import Channel
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
IN_FLIGHT_BATCHES = 2


@dataclass
class DispatchReport:
    """Counts of one run (printed by the CLI and the flow)."""

    claimed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    switched: int = 0
    reconcile: ReconcileReport = field(default_factory=ReconcileReport)
    replies: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "sent": self.outcomes["sent"],
            "retry": self.outcomes["retry"],
            "failed": self.outcomes["failed"],
            "ambiguous": self.outcomes["ambiguous"],
            "held": self.verdicts["hold"],
            "deferred": self.verdicts["defer"],
            "skipped": self.verdicts["skip"],
            "cancelled": self.verdicts["cancel"],
            "switched": self.switched,
            "reconciled_found": self.reconcile.found,
            "reconciled_resent": self.reconcile.resent,
            "reconciled_failed": self.reconcile.failed,
            "replies_sent": self.replies["sent"],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in self.as_dict().items())


def default_owner() -> str:
    """A lease owner unique to this run: host, process and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _rate(settings: Settings, channel: Channel) -> float:
    return settings.sms_rate_per_second if channel == Channel.sms else settings.email_rate_per_second


def sender_key(provider: Provider) -> str:
    """Whose rate a send counts against: the provider and its sender identity."""
    identity = getattr(provider, "messaging_service_sid", None) or getattr(provider, "from_number", None) or getattr(
        provider, "from_email", None
    )
    return f"{provider.name}:{provider.channel.value}:{identity or 'default'}"


def batch_limit(settings: Settings) -> int:
    """Claim no more than the slowest limited sender can send well within a lease."""
    rates = [r for r in (settings.sms_rate_per_second, settings.email_rate_per_second) if r > 0]
    if not rates:
        return settings.dispatch_batch_size
    fits = int(min(rates) * settings.dispatch_lease_seconds / (2 * IN_FLIGHT_BATCHES))
    return max(1, min(settings.dispatch_batch_size, fits))


def dispatch_due(
    settings: Settings,
    *,
    engine: Engine | None = None,
    providers: Mapping[Channel, Provider] | None = None,
    compose: Composer | None = None,
    owner: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    max_seconds: float | None = None,
) -> DispatchReport:
    """Send everything due now (see the module docstring). Safe to run concurrently anywhere."""
    from aftercare.dispatch.compose import composer
    from aftercare.messaging.registry import providers as configured_providers

    started = time.monotonic()
    engine = engine or get_engine()
    providers = providers or configured_providers(settings, engine=engine)
    compose = compose or composer(settings)
    owner = owner or default_owner()
    report = DispatchReport()
    report.reconcile = reconcile(
        engine, owner=owner, providers=providers, compose=job_for, to_message=compose, settings=settings,
        now=clock(),
    )
    report.replies = replies.send_replies(settings, engine=engine, providers=providers, owner=owner, clock=clock)
    deadline = started + (settings.dispatch_max_seconds if max_seconds is None else max_seconds)
    in_flight: deque[list[Future[Outcome]]] = deque()
    with ThreadPoolExecutor(settings.dispatch_workers, thread_name_prefix="dispatch") as pool:
        while time.monotonic() < deadline:
            with Session(engine, expire_on_commit=False) as session:
                claimed = claim_batch(
                    session, owner=owner, now=clock(), limit=batch_limit(settings),
                    lease_seconds=settings.dispatch_lease_seconds, daily_cap=settings.daily_message_cap,
                )
                session.commit()
            total = sum(claimed.verdicts.values())
            if total == 0:
                if not in_flight:
                    break
                while in_flight:  # their outcomes may make more due now (a replacement on the other channel)
                    _collect(in_flight.popleft(), report)
                continue
            report.claimed += total
            report.verdicts.update({k.value: v for k, v in claimed.verdicts.items()})
            report.switched += claimed.switched
            in_flight.append(_submit(pool, claimed.jobs, providers, compose, engine, settings, owner, clock))
            if len(in_flight) >= IN_FLIGHT_BATCHES:
                _collect(in_flight.popleft(), report)
        while in_flight:
            _collect(in_flight.popleft(), report)
    report.seconds = time.monotonic() - started
    if report.claimed or report.reconcile.checked or sum(report.replies.values()):
        log.info("dispatch %s: %s", owner, report.summary())
    return report


def _submit(
    pool: ThreadPoolExecutor,
    jobs: list[Job],
    providers: Mapping[Channel, Provider],
    compose: Composer,
    engine: Engine,
    settings: Settings,
    owner: str,
    clock: Callable[[], datetime],
) -> list[Future[Outcome]]:
    """Reserve rate slots per sender for the batch, then queue every send in slot order."""
    slots: dict[int, float | None] = {}
    by_channel: dict[Channel, list[Job]] = {}
    for job in jobs:
        by_channel.setdefault(job.channel, []).append(job)
    for channel, group in by_channel.items():
        rate = _rate(settings, channel)
        if rate <= 0:
            slots.update({job.touchpoint_id: None for job in group})
            continue
        times = reserve(engine, sender=sender_key(providers[channel]), rate=rate, count=len(group))
        slots.update({job.touchpoint_id: at for job, at in zip(group, times, strict=True)})
    ordered = sorted(jobs, key=lambda job: slots[job.touchpoint_id] or 0.0)
    return [
        pool.submit(
            send_job, job, provider=providers[job.channel], compose=compose, engine=engine, settings=settings,
            owner=owner, slot=slots[job.touchpoint_id], clock=clock,
        )
        for job in ordered
    ]


def _collect(futures: list[Future[Outcome]], report: DispatchReport) -> None:
    for future in futures:
        try:
            report.outcomes[future.result().value] += 1
        except Exception:  # recording failed (database down): the lease runs out and reconcile settles it
            log.exception("a send could not be recorded; reconcile will settle it")
            report.outcomes["unrecorded"] += 1
