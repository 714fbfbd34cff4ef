"""Missed surveys: why (not received vs not answered), and when a coordinator should act.

- not_received: the invitation never reached the patient: it failed (bounced, undelivered), was skipped or
  cancelled (no consent, suppressed, opted out, stale), or was sent but the channel is now suppressed;
- not_answered: it was sent (or delivered) and nobody answered.
Two early check-ins in a row missed -> a `checkin_tracing` task (call the patient); a second (third, ...)
missed outcome survey of a procedure -> a `survey_missed` task. These are coordinator tasks, never a
physician flag; each lists the missed ones with the reason, so the coordinator sees at once whether to
fix a phone number or to call.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from aftercare import tasks
from aftercare.consent import active_suppressions, address_of, blocking
from aftercare.models import (
    Patient,
    Procedure,
    ProcedureStatus,
    SurveyResponse,
    SurveyStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.web.timeline import label

NOT_RECEIVED = "not_received"
NOT_ANSWERED = "not_answered"
_NEVER_OUT = (
    TouchpointStatus.failed, TouchpointStatus.skipped, TouchpointStatus.cancelled, TouchpointStatus.scheduled,
    TouchpointStatus.held, TouchpointStatus.sending, TouchpointStatus.merged,
)


def classify(session: Session, response: SurveyResponse) -> tuple[str, str]:
    """(not_received | not_answered, a short reason a coordinator can act on)."""
    tp = session.get(Touchpoint, response.touchpoint_id)
    patient = session.get(Patient, response.patient_id)
    if tp is None or patient is None:
        return NOT_RECEIVED, "invitation not found"
    channel = "SMS" if tp.channel.value == "sms" else "email"
    if tp.status in _NEVER_OUT:
        why = tp.error_detail or tp.cancel_reason or tp.error_code or "not sent"
        return NOT_RECEIVED, f"{channel} {tp.status.value}: {why}"[:300]
    suppressed = blocking(active_suppressions(session, [patient.id or 0])[patient.id or 0], tp.channel,
                          address_of(patient, tp.channel))
    if suppressed is not None and tp.status == TouchpointStatus.sent:
        return NOT_RECEIVED, f"{channel} sent, then suppressed ({suppressed.reason}): it may not have arrived"[:300]
    how = "delivered" if tp.status in (TouchpointStatus.delivered, TouchpointStatus.answered) else \
        "sent (no delivery report)"
    note = f"; {channel} is now suppressed ({suppressed.reason})" if suppressed is not None else ""
    return NOT_ANSWERED, f"{channel} {how}, no answer{note}"[:300]


def _line(response: SurveyResponse) -> str:
    words = "not received" if response.miss_reason == NOT_RECEIVED else "not answered"
    return f"- {label(response.touchpoint_key)}: {words} ({response.miss_detail or ''})"


def _ended_before(session: Session, response: SurveyResponse) -> list[SurveyResponse]:
    """Earlier ended responses of the same procedure and kind, newest first (by their invitation time)."""
    rows = session.exec(
        select(SurveyResponse, Touchpoint)
        .join(Touchpoint, col(Touchpoint.id) == col(SurveyResponse.touchpoint_id))
        .where(
            SurveyResponse.procedure_id == response.procedure_id,
            SurveyResponse.kind == response.kind,
            SurveyResponse.id != response.id,
            SurveyResponse.status != SurveyStatus.open,
        )
        .order_by(col(Touchpoint.planned_at).desc())
    ).all()
    mine = session.get(Touchpoint, response.touchpoint_id)
    cutoff = mine.planned_at if mine else None
    return [r for r, tp in rows if cutoff is None or tp.planned_at < cutoff]


def after_miss(session: Session, response: SurveyResponse, *, now: datetime) -> None:
    """Open the coordinator task that this miss calls for, if any (once per event)."""
    procedure = session.get(Procedure, response.procedure_id)
    if procedure is None or procedure.status == ProcedureStatus.cancelled:
        return
    patient = session.get(Patient, response.patient_id)
    clinic_id = patient.clinic_id if patient else None
    earlier = _ended_before(session, response)
    if response.kind == TouchpointKind.checkin:
        streak = [response]
        for previous in earlier:
            if previous.status != SurveyStatus.missed:
                break
            streak.append(previous)
        if len(streak) < 2:
            return
        streak.reverse()
        unreached = all(r.miss_reason == NOT_RECEIVED for r in streak)
        title = (f"{len(streak)} check-ins did not reach the patient: check contact details and consent"
                 if unreached else f"No answer to {len(streak)} check-ins in a row: call the patient")
        tasks.open_task(
            session, kind="checkin_tracing", title=title, clinic_id=clinic_id, patient_id=response.patient_id,
            touchpoint_id=response.touchpoint_id, detail="\n".join(_line(r) for r in streak),
            dedupe_key=f"checkin_tracing:{response.procedure_id}:{streak[0].id}",
        )
        return
    missed = [r for r in earlier if r.status == SurveyStatus.missed][::-1] + [response]
    if len(missed) < 2:
        return
    unreached = response.miss_reason == NOT_RECEIVED
    title = (f"Outcome survey not received ({len(missed)} missed): check contact details"
             if unreached else f"Outcome survey not answered ({len(missed)} missed): contact the patient")
    tasks.open_task(
        session, kind="survey_missed", title=title, clinic_id=clinic_id, patient_id=response.patient_id,
        touchpoint_id=response.touchpoint_id, detail="\n".join(_line(r) for r in missed),
        dedupe_key=f"survey_missed:{response.id}",
    )
