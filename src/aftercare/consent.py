"""Who we may contact on which channel: suppressions, opt-out and opt-in, applied at once.

The consent ledger (`patients.consent_state`) says whether the patient agreed to a channel; a
suppression says we must not use it anyway (opted out, unsubscribed, bounced, invalid number). The
dispatcher checks both when it claims a touchpoint, so a change here holds for everything queued.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.models import OPEN_TOUCHPOINT_STATUSES, Channel, Patient, Suppression, Touchpoint, TouchpointStatus
from aftercare.patients import set_consent
from aftercare.timeutil import utcnow

OPTED_OUT = "patient opted out"
OPT_OUT_REASON = "opt_out"


def address_of(patient: Patient, channel: Channel) -> str | None:
    return patient.phone_e164 if channel == Channel.sms else patient.email


def active_suppressions(session: Session, patient_ids: Iterable[int]) -> dict[int, list[Suppression]]:
    """Suppressions not lifted, per patient."""
    ids = list(set(patient_ids))
    found: dict[int, list[Suppression]] = defaultdict(list)
    if not ids:
        return found
    rows = session.exec(
        select(Suppression).where(col(Suppression.patient_id).in_(ids), col(Suppression.lifted_at).is_(None))
    )
    for row in rows:
        found[row.patient_id].append(row)
    return found


def blocking(suppressions: Iterable[Suppression], channel: Channel, address: str | None) -> Suppression | None:
    """The suppression that stops `channel` to `address`. One about an old address does not."""
    for row in suppressions:
        if row.channel == channel and (row.address is None or row.address == address):
            return row
    return None


def suppress(
    session: Session,
    *,
    patient: Patient,
    channel: Channel,
    reason: str,
    source: str,
    actor: str,
    address: str | None = None,
    detail: str | None = None,
) -> Suppression:
    """Stop using a channel for a patient (idempotent per reason and address)."""
    assert patient.id is not None
    for row in active_suppressions(session, [patient.id])[patient.id]:
        if row.channel == channel and row.reason == reason and row.address == address:
            return row
    row = Suppression(
        patient_id=patient.id, channel=channel, reason=reason, source=source, address=address,
        detail=detail[:300] if detail else None,
    )
    session.add(row)
    audit.record(
        session, actor=actor, action="channel.suppressed", entity_type="patient", entity_id=patient.id,
        channel=channel.value, reason=reason, source=source,
    )
    session.flush()
    return row


def lift(session: Session, *, patient_id: int, channel: Channel, reasons: set[str], actor: str) -> int:
    """Lift the patient's active suppressions of `channel` with one of `reasons`. Returns how many."""
    result = session.execute(
        update(Suppression)
        .where(
            col(Suppression.patient_id) == patient_id,
            col(Suppression.channel) == channel,
            col(Suppression.reason).in_(reasons),
            col(Suppression.lifted_at).is_(None),
        )
        .values(lifted_at=utcnow(), lifted_by=actor)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        audit.record(
            session, actor=actor, action="channel.unsuppressed", entity_type="patient", entity_id=patient_id,
            channel=channel.value, reasons=sorted(reasons),
        )
    return count


def revoke_channel(
    session: Session,
    *,
    patient: Patient,
    channel: Channel,
    reason: str,
    source: str,
    actor: str,
    detail: str | None = None,
    any_address: bool = False,
) -> Suppression:
    """A permanent problem with one channel: consent ledger entry plus a suppression record."""
    set_consent(session, patient, channel, False, source=source, actor=actor)
    address = None if any_address else address_of(patient, channel)
    return suppress(
        session, patient=patient, channel=channel, reason=reason, source=source, actor=actor, address=address,
        detail=detail,
    )


@dataclass
class OptOutResult:
    patients: int
    touchpoints_cancelled: int


def opt_out(
    session: Session, *, patients: list[Patient], source: str, actor: str, detail: str | None = None
) -> OptOutResult:
    """The patient wants no more messages: every channel revoked and every queued touchpoint cancelled.

    Applies in the caller's transaction, before any survey or booking conversation looks at the message.
    """
    now = utcnow()
    cancelled = 0
    for patient in patients:
        assert patient.id is not None
        for channel in Channel:
            revoke_channel(
                session, patient=patient, channel=channel, reason=OPT_OUT_REASON, source=source, actor=actor,
                detail=detail, any_address=True,
            )
        result = session.execute(
            update(Touchpoint)
            .where(col(Touchpoint.patient_id) == patient.id, col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES))
            .values(status=TouchpointStatus.cancelled, cancel_reason=OPTED_OUT, updated_at=now)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        cancelled += count
        audit.record(
            session, actor=actor, action="patient.opted_out", entity_type="patient", entity_id=patient.id,
            source=source, touchpoints_cancelled=count,
        )
    return OptOutResult(patients=len(patients), touchpoints_cancelled=cancelled)


def opt_in_sms(session: Session, *, patients: list[Patient], source: str, actor: str) -> int:
    """START/UNSTOP: SMS consent again and the SMS opt-out lifted (email stays as it is). Returns patients."""
    for patient in patients:
        assert patient.id is not None
        set_consent(session, patient, Channel.sms, True, source=source, actor=actor)
        lift(session, patient_id=patient.id, channel=Channel.sms, reasons={OPT_OUT_REASON, "twilio_21610"},
             actor=actor)
    return len(patients)
