"""Maybe-sent touchpoints: ask the provider before anything is sent again.

A row is maybe-sent when it is `sending` without a provider id and its lease has run out: either a
send ended ambiguously (read timeout, reset, 5xx: `ambiguous_at` set, lease shortened to a few
seconds) or the dispatcher died after the claim. For each, under a fresh lease:
- the provider has it (`find_sent`, or a status webhook tied it meanwhile) -> sent, with its id;
- it has no record and `dispatch_reconcile_grace_seconds` have passed since the attempt -> scheduled
  again (the policy is re-checked at the next claim), logged and audited as a resend;
- otherwise (too early, or the provider cannot be asked now) -> left for a later run.
A provider that cannot look messages up (`reconciles = False`, SendGrid without the Activity API)
answers "no record"; the grace period is then the time the event webhook had to tie the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from aftercare import audit
from aftercare.dispatch.claim import Job
from aftercare.dispatch.outcome import ACTOR, Attempt, fail, record_sent
from aftercare.messaging.base import DeliveryError, OutboundMessage, Provider, SendReceipt
from aftercare.models import Channel, Touchpoint, TouchpointStatus
from aftercare.settings import Settings

log = logging.getLogger(__name__)
RECHECK_SECONDS = 60.0  # how long a maybe-sent row rests between lookups


@dataclass
class ReconcileReport:
    checked: int = 0
    found: int = 0
    resent: int = 0
    failed: int = 0
    waiting: int = 0


def claim_maybe_sent(session: Session, *, owner: str, now: datetime, limit: int, lease_seconds: float) -> list[int]:
    """Take maybe-sent rows under a new lease (SKIP LOCKED on PostgreSQL, compare-and-set on SQLite)."""
    maybe = and_(
        col(Touchpoint.status) == TouchpointStatus.sending,
        col(Touchpoint.provider_id).is_(None),
        or_(col(Touchpoint.lease_expires_at).is_(None), col(Touchpoint.lease_expires_at) < now),
    )
    candidates = sa_select(col(Touchpoint.id)).where(maybe).order_by(col(Touchpoint.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(Touchpoint)
        .where(col(Touchpoint.id).in_(candidates.scalar_subquery()), maybe)
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(col(Touchpoint.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(row[0]) for row in session.execute(statement))


def reconcile(
    engine: Engine,
    *,
    owner: str,
    providers: Mapping[Channel, Provider],
    compose: Callable[[Session, Touchpoint], Job | None],
    to_message: Callable[[Job], OutboundMessage],
    settings: Settings,
    now: datetime,
    limit: int = 500,
) -> ReconcileReport:
    """Settle every maybe-sent row this run can take. Provider lookups happen outside transactions."""
    report = ReconcileReport()
    with Session(engine, expire_on_commit=False) as session:
        lease = settings.dispatch_lease_seconds
        ids = claim_maybe_sent(session, owner=owner, now=now, limit=limit, lease_seconds=lease)
        session.commit()
    for tp_id in ids:
        report.checked += 1
        with Session(engine, expire_on_commit=False) as session:
            tp = session.get(Touchpoint, tp_id)
            assert tp is not None
            job = compose(session, tp)
        provider = providers[tp.channel]
        since = tp.attempted_at or tp.updated_at
        found = None
        asked = True
        if job is not None:
            try:
                found = provider.find_sent(to_message(job), since - timedelta(seconds=60))
            except DeliveryError as exc:
                log.warning("touchpoint %s: cannot reconcile now (%s)", tp_id, exc)
                asked = False
        with Session(engine, expire_on_commit=False) as session:
            outcome = _settle(session, tp_id, owner=owner, found=found, asked=asked, provider=provider.name,
                              since=since, settings=settings, now=now, job_ok=job is not None)
            session.commit()
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _settle(
    session: Session,
    tp_id: int,
    *,
    owner: str,
    found: SendReceipt | None,
    asked: bool,
    provider: str,
    since: datetime,
    settings: Settings,
    now: datetime,
    job_ok: bool,
) -> str:
    tp = session.get(Touchpoint, tp_id, with_for_update=True)
    if tp is None or tp.status != TouchpointStatus.sending or tp.lease_owner != owner:
        return "waiting"
    if tp.provider_id:  # a status webhook tied it meanwhile
        return "found"
    if found is not None:
        record_sent(session, Attempt(tp_id, owner, tp.attempts, tp.channel), found, provider, now)
        audit.record(session, actor=ACTOR, action="touchpoint.reconciled", entity_type="touchpoint",
                     entity_id=tp_id, provider_id=found.provider_id)
        log.info("touchpoint %s: maybe-sent message found at %s (%s)", tp_id, provider, found.provider_id)
        return "found"
    if not job_ok:
        fail(session, tp, why="could not rebuild the message to look it up", now=now)
        return "failed"
    if not asked or now - since < timedelta(seconds=settings.dispatch_reconcile_grace_seconds):
        tp.lease_owner = None
        tp.lease_expires_at = now + timedelta(seconds=RECHECK_SECONDS)
        tp.ambiguous_at = tp.ambiguous_at or now
        session.add(tp)
        return "waiting"
    if tp.attempts >= settings.dispatch_max_attempts:
        fail(session, tp, why=f"maybe sent, not found at {provider}, {tp.attempts} attempt(s) used", now=now)
        return "failed"
    tp.status, tp.due_at, tp.updated_at = TouchpointStatus.scheduled, now, now
    tp.lease_owner, tp.lease_expires_at, tp.ambiguous_at = None, None, None
    session.add(tp)
    audit.record(session, actor=ACTOR, action="touchpoint.resend_after_reconcile", entity_type="touchpoint",
                 entity_id=tp_id, provider=provider, attempted_at=since.isoformat())
    log.warning("touchpoint %s: %s has no record %s after the attempt; sending again (a duplicate is possible "
                "only if the provider lost track of it)", tp_id, provider, now - since)
    return "resent"
