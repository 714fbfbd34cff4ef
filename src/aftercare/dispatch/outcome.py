"""Recording what a provider said about a send, by failure class (messaging.md §7).

- success    -> sent, with the provider id stored at once
- retryable  -> scheduled again after a back-off with jitter (at least the provider's Retry-After); after
                `dispatch_max_attempts` calls -> failed + coordinator task
- permanent  -> failed; the channel revoked for the patient (consent ledger, source "provider", plus a
                suppression); the message re-planned on the other channel when possible; a task
- rejected   -> failed + task (not retried; the address is not blamed)
- ambiguous  -> stays `sending` with `ambiguous_at` set; reconcile decides later, never a blind resend
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col

from aftercare import audit, tasks
from aftercare.consent import revoke_channel
from aftercare.dispatch.fallback import replan_on_other_channel
from aftercare.messaging.base import DeliveryError, FailureKind, SendReceipt
from aftercare.models import Channel, Patient, Procedure, Touchpoint, TouchpointStatus
from aftercare.settings import Settings

log = logging.getLogger(__name__)
ACTOR = "dispatcher"
AMBIGUOUS_SETTLE_SECONDS = 5.0  # the provider gets a moment before reconcile looks the message up
CHANNEL_WORD = {Channel.sms: "SMS", Channel.email: "Email"}


class Outcome(StrEnum):
    sent = "sent"
    retry = "retry"
    failed = "failed"
    ambiguous = "ambiguous"
    lost_lease = "lost_lease"  # the row was no longer ours to record on (logged)


@dataclass(frozen=True)
class Attempt:
    """Which row and attempt a result belongs to."""

    touchpoint_id: int
    owner: str
    attempts: int
    channel: Channel


def backoff_seconds(attempts: int, settings: Settings, retry_after: float | None = None) -> float:
    """Exponential back-off with +-25% jitter, never shorter than what the provider asked for."""
    base = settings.dispatch_retry_base_seconds * (2 ** max(0, attempts - 1))
    delay = min(base, settings.dispatch_retry_max_seconds) * random.uniform(0.75, 1.25)
    return max(delay, retry_after or 0.0)


_MARK_SENT = (
    update(Touchpoint)
    .where(
        col(Touchpoint.id) == bindparam("tp_id"),
        col(Touchpoint.provider_id).is_(None),
        col(Touchpoint.status).in_([TouchpointStatus.sending, TouchpointStatus.scheduled, TouchpointStatus.held]),
    )
    .values(
        status=TouchpointStatus.sent, provider_id=bindparam("provider_id"), provider=bindparam("provider"),
        provider_status=bindparam("provider_status"), sent_at=bindparam("now"), updated_at=bindparam("now"),
        lease_owner=None, lease_expires_at=None, ambiguous_at=None, error_code=None, error_detail=None,
    )
    .execution_options(synchronize_session=False)
)  # built once: the dispatcher's hot path


def record_sent(
    db: Session | Connection, attempt: Attempt, receipt: SendReceipt, provider: str, now: datetime
) -> Outcome:
    """Store the provider id right after the create call (even if the lease was lost meanwhile)."""
    params = {"tp_id": attempt.touchpoint_id, "provider_id": receipt.provider_id, "provider": provider,
              "provider_status": receipt.status[:20], "now": now}
    result = db.execute(_MARK_SENT, params)
    if not getattr(result, "rowcount", 0):
        stored = db.execute(
            select(col(Touchpoint.provider_id)).where(col(Touchpoint.id) == attempt.touchpoint_id)
        ).scalar_one_or_none()
        if stored == receipt.provider_id:  # its status callback was faster and tied it already
            return Outcome.sent
        log.error("touchpoint %s was sent (%s) but the row had moved on; check it", attempt.touchpoint_id,
                  receipt.provider_id)
        return Outcome.lost_lease
    return Outcome.sent


def _mine(session: Session, attempt: Attempt) -> Touchpoint | None:
    tp = session.get(Touchpoint, attempt.touchpoint_id, with_for_update=True)
    if tp is None or tp.status != TouchpointStatus.sending or tp.lease_owner != attempt.owner or tp.provider_id:
        log.warning("touchpoint %s: result of attempt %s ignored, row no longer ours", attempt.touchpoint_id,
                    attempt.attempts)
        return None
    return tp


def record_failure(
    session: Session, attempt: Attempt, error: DeliveryError, provider: str, settings: Settings, now: datetime
) -> Outcome:
    tp = _mine(session, attempt)
    if tp is None:
        return Outcome.lost_lease
    tp.error_code = (str(error.code) if error.code is not None else error.kind.value)[:40]
    tp.error_detail = str(error)[:300]
    tp.updated_at = now
    if error.kind == FailureKind.ambiguous:
        tp.ambiguous_at = now
        tp.lease_owner, tp.lease_expires_at = None, now + timedelta(seconds=AMBIGUOUS_SETTLE_SECONDS)
        session.add(tp)
        log.warning("touchpoint %s: maybe sent (%s); reconcile before any resend", tp.id, tp.error_code)
        return Outcome.ambiguous
    tp.lease_owner, tp.lease_expires_at = None, None
    if error.kind == FailureKind.retryable and tp.attempts < settings.dispatch_max_attempts:
        tp.status = TouchpointStatus.scheduled
        tp.due_at = now + timedelta(seconds=backoff_seconds(tp.attempts, settings, error.retry_after))
        session.add(tp)
        return Outcome.retry
    if error.kind == FailureKind.permanent:
        fail_permanently(session, tp, reason=f"{provider}_{tp.error_code}", detail=tp.error_detail, now=now)
        return Outcome.failed
    fail(session, tp, why=f"{error.kind.value} after {tp.attempts} attempt(s): {tp.error_detail}", now=now)
    return Outcome.failed


def fail(session: Session, tp: Touchpoint, *, why: str, now: datetime, switched_to: Channel | None = None) -> None:
    """Mark failed and open a coordinator task (one per touchpoint)."""
    tp.status, tp.updated_at = TouchpointStatus.failed, now
    tp.lease_owner, tp.lease_expires_at = None, None
    session.add(tp)
    procedure = session.get(Procedure, tp.procedure_id)
    word = CHANNEL_WORD[tp.channel]
    title = f"{word} '{tp.key}' was not delivered"
    if switched_to is not None:
        title += f"; sent by {CHANNEL_WORD[switched_to].lower()} instead"
    tasks.open_task(
        session,
        kind="delivery_failed",
        title=title,
        clinic_id=procedure.clinic_id if procedure else None,
        patient_id=tp.patient_id,
        touchpoint_id=tp.id,
        detail=why,
        dedupe_key=f"delivery_failed:tp:{tp.id}",
    )
    audit.record(session, actor=ACTOR, action="touchpoint.failed", entity_type="touchpoint", entity_id=tp.id,
                 error_code=tp.error_code)


def fail_permanently(session: Session, tp: Touchpoint, *, reason: str, detail: str | None, now: datetime) -> None:
    """The address cannot receive this channel: revoke it, re-plan on the other channel, tell a person."""
    patient = session.get(Patient, tp.patient_id)
    assert patient is not None
    revoke_channel(
        session, patient=patient, channel=tp.channel, reason=reason[:40], source="provider", actor=ACTOR,
        detail=detail,
    )
    replacement = replan_on_other_channel(session, tp, patient, now)
    fail(
        session, tp, why=f"permanent: {detail or reason}", now=now,
        switched_to=replacement.channel if replacement else None,
    )
