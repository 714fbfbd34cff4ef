"""Re-planning a message on the patient's other channel after a permanent failure on one.

A new touchpoint row is written (same procedure and key, the other channel, due now, same window),
and the failed row stays as it is: the history shows what failed and what replaced it
(`payload.replaces` on the new row). Nothing is written when the patient has no consent or address
for the other channel, it is suppressed, the plan already has that row, or the window has closed.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from aftercare import audit
from aftercare.consent import active_suppressions, address_of, blocking
from aftercare.dispatch.policy import channel_problem
from aftercare.models import Channel, Patient, Touchpoint, TouchpointStatus
from aftercare.patients import consent_state


def other_channel(channel: Channel) -> Channel:
    return Channel.email if channel == Channel.sms else Channel.sms


def usable(session: Session, patient: Patient, channel: Channel) -> str | None:
    """Why `channel` cannot be used for this patient now (None: it can)."""
    assert patient.id is not None
    found = blocking(active_suppressions(session, [patient.id])[patient.id], channel, address_of(patient, channel))
    return channel_problem(
        consented=consent_state(session, patient.id)[channel],
        address=address_of(patient, channel),
        suppressed=found.reason if found else None,
        channel=channel,
    )


def replan_on_other_channel(session: Session, tp: Touchpoint, patient: Patient, now: datetime) -> Touchpoint | None:
    """The replacement row, or None when the other channel cannot carry this message."""
    target = other_channel(tp.channel)
    if tp.window_end <= now or usable(session, patient, target) is not None:
        return None
    exists = session.exec(
        select(Touchpoint.id).where(
            Touchpoint.procedure_id == tp.procedure_id, Touchpoint.key == tp.key, Touchpoint.channel == target
        )
    ).first()
    if exists is not None:
        return None
    replacement = Touchpoint(
        procedure_id=tp.procedure_id,
        patient_id=tp.patient_id,
        key=tp.key,
        kind=tp.kind,
        template=tp.template,
        channel=target,
        clinical=tp.clinical,
        planned_at=tp.planned_at,
        due_at=now,
        window_end=tp.window_end,
        status=TouchpointStatus.scheduled,
        payload={**tp.payload, "replaces": tp.id},
        created_at=now,
        updated_at=now,
    )
    session.add(replacement)
    session.flush()
    audit.record(
        session, actor="dispatcher", action="touchpoint.replanned", entity_type="touchpoint",
        entity_id=replacement.id, replaces=tp.id, channel=target.value,
    )
    return replacement
