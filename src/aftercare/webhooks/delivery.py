"""Delivery reports from providers (Twilio status callbacks, SendGrid events) applied to our rows.

Every report is stored once in `delivery_event` under its natural key (Twilio `MessageSid:MessageStatus`,
SendGrid `sg_event_id`); a replay hits the unique key and changes nothing. States only move forward:
queued/accepted < sending < sent < delivered (< read); failed and undelivered are final, so a late
`sent` never undoes `delivered` and a `failed` after `delivered` is ignored. A report for an id we do not
know is kept and answered 200 (so the provider stops retrying). The first report for a message whose
create response was lost ties it to its row through our id (`?m=` on the callback URL, `custom_args.m`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from aftercare import audit, tasks
from aftercare.consent import revoke_channel
from aftercare.dispatch.outcome import fail, fail_permanently
from aftercare.models import (
    OPEN_TOUCHPOINT_STATUSES,
    Channel,
    DeliveryEvent,
    OutboundReply,
    Patient,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
ACTOR = "webhook"

TWILIO_RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "read": 5,
}
TWILIO_PERMANENT = frozenset({"30005", "30006", "21211", "21614", "21610", "21635"})
SENDGRID_RANK = {"processed": 1, "deferred": 2, "delivered": 4, "bounce": 4, "dropped": 4}
SENDGRID_SUPPRESSING = frozenset({"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"})
OPEN_FOR_REPORTS = (TouchpointStatus.sent, TouchpointStatus.delivered, TouchpointStatus.answered)


@dataclass
class Applied:
    duplicate: bool = False
    known: bool = False
    changed: bool = False


def _record(session: Session, event: DeliveryEvent) -> bool:
    """Store the report; False when its key was seen before (nothing else must happen then)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = event.model_dump(exclude={"id"})
    statement = insert(DeliveryEvent).values(**values).on_conflict_do_nothing().returning(col(DeliveryEvent.id))
    return session.execute(statement).first() is not None


def _by_message_id(session: Session, message_id: str | None) -> Touchpoint | OutboundReply | None:
    if not message_id:
        return None
    prefix, _, number = message_id.partition("-")
    if not number.isdigit():
        return None
    if prefix == "tp":
        return session.get(Touchpoint, int(number))
    if prefix == "re":
        return session.get(OutboundReply, int(number))
    return None


def _find(session: Session, provider_id: str, message_id: str | None) -> Touchpoint | OutboundReply | None:
    """The row a report is about: by provider id, else by our id when the row has no provider id yet."""
    row: Touchpoint | OutboundReply | None = session.exec(
        select(Touchpoint).where(Touchpoint.provider_id == provider_id)
    ).first()
    if row is None:
        row = session.exec(select(OutboundReply).where(OutboundReply.provider_id == provider_id)).first()
    if row is not None:
        return row
    candidate = _by_message_id(session, message_id)
    if candidate is not None and candidate.provider_id is None:
        _tie(session, candidate, provider_id)
        return candidate
    if candidate is not None:
        log.warning("report for %s names %s but the row has %s", provider_id, message_id, candidate.provider_id)
    return None


def _tie(session: Session, row: Touchpoint | OutboundReply, provider_id: str) -> None:
    """The create response was lost (or not yet recorded): the provider has the message, so it is sent."""
    now = utcnow()
    row.provider_id, row.updated_at = provider_id, now
    if isinstance(row, Touchpoint) and row.status in (TouchpointStatus.sending, *OPEN_TOUCHPOINT_STATUSES):
        row.status, row.sent_at = TouchpointStatus.sent, row.sent_at or now
        row.lease_owner, row.lease_expires_at, row.ambiguous_at = None, None, None
        audit.record(session, actor=ACTOR, action="touchpoint.tied_by_report", entity_type="touchpoint",
                     entity_id=row.id, provider_id=provider_id)
    elif isinstance(row, OutboundReply) and row.status == TouchpointStatus.sending:
        row.status, row.sent_at = TouchpointStatus.sent, row.sent_at or now
    session.add(row)
    log.info("%s %s tied to provider id %s by a delivery report", type(row).__name__, row.id, provider_id)


def _advance(row: Touchpoint, provider_status: str, rank: dict[str, int], now: datetime) -> bool:
    """Move the row forward to `provider_status`; False when that would be a step back."""
    current = rank.get(row.provider_status or "", 0)
    new = rank.get(provider_status, 0)
    if new <= current or row.status not in OPEN_FOR_REPORTS or row.status == TouchpointStatus.failed:
        return False
    row.provider_status, row.updated_at = provider_status[:20], now
    return True


def apply_twilio_status(
    session: Session, *, message_sid: str, status: str, error_code: str | None, message_id: str | None
) -> Applied:
    """One Twilio status callback, in the caller's transaction (see the module docstring)."""
    now = utcnow()
    status = status.strip().lower()
    key = f"{message_sid}:{status}"[:200]
    event = DeliveryEvent(provider="twilio", event_key=key, provider_id=message_sid, event=status[:40],
                          error_code=error_code or None, received_at=now)
    if not _record(session, event):
        return Applied(duplicate=True)
    row = _find(session, message_sid, message_id)
    result = Applied(known=row is not None)
    if isinstance(row, OutboundReply):
        result.changed = _reply_report(row, status in ("failed", "undelivered"), status, now)
        session.add(row)
    elif isinstance(row, Touchpoint):
        result.changed = _twilio_touchpoint(session, row, status, error_code, now)
    _finish(session, "twilio", key, row, result.changed)
    return result


def _twilio_touchpoint(session: Session, tp: Touchpoint, status: str, error_code: str | None, now: datetime) -> bool:
    if not _advance(tp, status, TWILIO_RANK, now):
        return False
    if status in ("delivered", "read") and tp.status in (TouchpointStatus.sent, TouchpointStatus.sending):
        tp.status, tp.delivered_at = TouchpointStatus.delivered, tp.delivered_at or now
    elif status in ("failed", "undelivered", "canceled") and tp.status != TouchpointStatus.answered:
        tp.error_code = error_code or status
        tp.error_detail = f"Twilio reported {status}" + (f" (error {error_code})" if error_code else "")
        if error_code in TWILIO_PERMANENT:
            fail_permanently(session, tp, reason=f"twilio_{error_code}", detail=tp.error_detail, now=now)
        else:
            fail(session, tp, why=tp.error_detail, now=now)
    session.add(tp)
    return True


def _reply_report(reply: OutboundReply, failed: bool, status: str, now: datetime) -> bool:
    if reply.status in (TouchpointStatus.delivered, TouchpointStatus.failed):
        return False
    if failed:
        reply.status, reply.error_code = TouchpointStatus.failed, status[:40]
    elif status in ("delivered", "read"):
        reply.status = TouchpointStatus.delivered
    elif reply.status == TouchpointStatus.sending:
        reply.status, reply.sent_at = TouchpointStatus.sent, reply.sent_at or now
    else:
        return False
    reply.updated_at = now
    return True


def _finish(session: Session, provider: str, key: str, row: Touchpoint | OutboundReply | None, changed: bool) -> None:
    """Link the stored report to its touchpoint and note whether it changed anything."""
    stored = session.exec(
        select(DeliveryEvent).where(DeliveryEvent.provider == provider, DeliveryEvent.event_key == key)
    ).one()
    stored.touchpoint_id = row.id if isinstance(row, Touchpoint) else None
    stored.applied = changed
    session.add(stored)


def apply_sendgrid_event(session: Session, event: dict[str, Any]) -> Applied:
    """One SendGrid event, in the caller's transaction. Events without `sg_event_id` are ignored."""
    now = utcnow()
    event_id = str(event.get("sg_event_id") or "")
    kind = str(event.get("event") or "").strip().lower()
    if not event_id or not kind:
        return Applied(duplicate=False)
    sg_message_id = str(event.get("sg_message_id") or "")
    provider_id = sg_message_id.split(".", 1)[0]
    message_id = event.get("m") if isinstance(event.get("m"), str) else None
    key = event_id[:200]
    stored = DeliveryEvent(
        provider="sendgrid", event_key=key, provider_id=provider_id[:100] or None, event=kind[:40],
        error_code=str(event.get("type") or event.get("status") or "")[:40] or None, received_at=now,
    )
    if not _record(session, stored):
        return Applied(duplicate=True)
    row = _find(session, provider_id, message_id) if provider_id else _by_message_id(session, message_id)
    tp = row if isinstance(row, Touchpoint) else None
    result = Applied(known=row is not None)
    if isinstance(row, OutboundReply):
        result.changed = _reply_report(row, kind in ("bounce", "dropped"), kind, now)
        session.add(row)
    elif tp is not None:
        result.changed = _sendgrid_touchpoint(session, tp, kind, event, now)
    if kind in SENDGRID_SUPPRESSING:
        result.changed = _suppress_email(session, tp, kind, event, now) or result.changed
    _finish(session, "sendgrid", key, row, result.changed)
    return result


def _sendgrid_touchpoint(session: Session, tp: Touchpoint, kind: str, event: dict[str, Any], now: datetime) -> bool:
    if kind not in SENDGRID_RANK or not _advance(tp, kind, SENDGRID_RANK, now):
        return False
    if kind == "delivered":
        tp.status, tp.delivered_at = TouchpointStatus.delivered, tp.delivered_at or now
    elif kind in ("bounce", "dropped") and tp.status != TouchpointStatus.answered:
        tp.error_code = f"sendgrid_{kind}"
        tp.error_detail = f"SendGrid {kind}: {event.get('reason') or event.get('type') or ''}"[:300]
        if kind == "bounce" and event.get("type") == "blocked":  # a block can be temporary: not the address
            fail(session, tp, why=tp.error_detail, now=now)
        else:
            fail_permanently(session, tp, reason=f"sendgrid_{kind}", detail=tp.error_detail, now=now)
    session.add(tp)
    return True


def _suppress_email(session: Session, tp: Touchpoint | None, kind: str, event: dict[str, Any], now: datetime) -> bool:
    """Unsubscribes, spam reports, bounces and drops stop email to that address for every patient using it."""
    if kind == "bounce" and event.get("type") == "blocked":
        return False
    address = str(event.get("email") or "").strip()
    if tp is not None:
        patients = [p for p in [session.get(Patient, tp.patient_id)] if p is not None]
    elif address:
        patients = list(session.exec(select(Patient).where(col(Patient.email) == address)))
    else:
        patients = []
    for patient in patients:
        revoke_channel(session, patient=patient, channel=Channel.email, reason=f"sendgrid_{kind}"[:40],
                       source="provider", actor=ACTOR, detail=str(event.get("reason") or kind))
        if kind in ("unsubscribe", "group_unsubscribe", "spamreport"):
            tasks.open_task(
                session, kind="email_unsubscribed", title=f"Patient stopped email ({kind.replace('_', ' ')})",
                clinic_id=patient.clinic_id, patient_id=patient.id,
                detail="Email is suppressed; messages go by SMS where the patient consented.",
                dedupe_key=f"email_unsubscribed:{patient.id}:{event.get('sg_event_id')}"[:120],
            )
    return bool(patients)
