"""Sending one claimed touchpoint: compose, wait for its rate slot, call the provider once, record.

Runs in a worker thread, outside any transaction; the result is written in its own short transaction
right after the provider answers, so a provider id is stored at once. Anything the provider raises
that is not a classified DeliveryError counts as ambiguous (maybe sent): never a blind resend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from aftercare.dispatch.claim import Job
from aftercare.dispatch.outcome import Attempt, Outcome, fail, record_failure, record_sent
from aftercare.dispatch.ratelimit import wait_until
from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, Provider
from aftercare.models import Touchpoint, TouchpointStatus
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
Composer = Callable[[Job], OutboundMessage]


def send_job(
    job: Job,
    *,
    provider: Provider,
    compose: Composer,
    engine: Engine,
    settings: Settings,
    owner: str,
    slot: float | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Outcome:
    attempt = Attempt(job.touchpoint_id, owner, job.attempts, job.channel)
    try:
        message = compose(job)
    except Exception as exc:  # a missing or broken template: nothing was sent
        log.exception("touchpoint %s: cannot compose %s/%s", job.touchpoint_id, job.template, job.channel.value)
        return _not_composed(engine, attempt, f"cannot compose the message: {exc}", clock())
    if slot is not None:
        wait_until(slot)
    try:
        receipt = provider.send(message)
    except DeliveryError as error:
        with Session(engine, expire_on_commit=False) as session:
            outcome = record_failure(session, attempt, error, provider.name, settings, clock())
            session.commit()
        return outcome
    except Exception as exc:  # unexpected: it may have reached the provider
        log.exception("touchpoint %s: provider %s raised unexpectedly", job.touchpoint_id, provider.name)
        unexpected = DeliveryError(f"unexpected {type(exc).__name__}: {exc}", FailureKind.ambiguous)
        with Session(engine, expire_on_commit=False) as session:
            outcome = record_failure(session, attempt, unexpected, provider.name, settings, clock())
            session.commit()
        return outcome
    with engine.begin() as conn:
        return record_sent(conn, attempt, receipt, provider.name, clock())


def _not_composed(engine: Engine, attempt: Attempt, why: str, now: datetime) -> Outcome:
    with Session(engine, expire_on_commit=False) as session:
        tp = session.get(Touchpoint, attempt.touchpoint_id)
        if tp is None or tp.status != TouchpointStatus.sending or tp.lease_owner != attempt.owner:
            return Outcome.lost_lease
        tp.error_code, tp.error_detail = "compose", why[:300]
        fail(session, tp, why=why, now=now)
        session.commit()
    return Outcome.failed
