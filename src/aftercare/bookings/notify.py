"""Telling the patient: confirmation, reminders and cancellation as touchpoints; SMS answers as replies.

Touchpoints (sent by the dispatcher, so consent, suppression, channel switch and quiet hours apply):
  booking_<id>_confirmation   right away (also for a moved visit: `moved` in its payload)
  booking_<id>_reminder_day_before / _reminder_same_day
                              `day_before_hours` and `same_day_hours` before the visit. Quiet hours move
                              a reminder to the opening of the patient's send window (a 2 h reminder for
                              an 08:30 visit goes at 08:00); one that would then land less than
                              `min_lead_minutes` before the visit, or that is already due when the visit is
                              booked, is stored as skipped with the reason
  booking_<id>_cancelled      right away
All are `clinical` (they do not use up the daily cap of automated messages).
Answers to a patient's text (the confirmation of "2", new times, "please reply 1, 2 or 3") are rendered
now and queued in `outbound_reply`: they go out at once, quiet hours do not apply (the patient just wrote).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare.bookings import ics
from aftercare.bookings.calendar import ClinicCalendar
from aftercare.bookings.scope import Scope
from aftercare.bookings.slots import Slot
from aftercare.bookings.texts import slot_label
from aftercare.consent import address_of
from aftercare.messaging.context import patient_context, visit_details
from aftercare.messaging.render import render
from aftercare.models import (
    OPEN_TOUCHPOINT_STATUSES,
    Appointment,
    Channel,
    Clinic,
    InboundMessage,
    OutboundReply,
    Patient,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
    VisitMode,
)
from aftercare.timing import next_send_time

CONFIRMATION = "booking_confirmation"
REMINDER = "booking_reminder"
CANCELLED = "booking_cancelled"
NEW_TIMES = "booking_new_times"
UNCLEAR = "booking_unclear"
CLOSED = "booking_closed"
NOT_SENT_QUIET = "not sent: quiet hours last until too close to the visit"
NOT_SENT_LATE = "not sent: the visit was booked after this reminder was due"


def key(appointment: Appointment, what: str) -> str:
    return f"booking_{appointment.id}_{what}"


def channel_for(patient: Patient, preferred: Channel | None = None) -> Channel | None:
    """The channel to write on: the one asked for (or the patient's preferred) when it has an address."""
    first = preferred or patient.preferred_channel
    other = Channel.email if first == Channel.sms else Channel.sms
    return next((c for c in (first, other) if address_of(patient, c)), None)


def _payload(appointment: Appointment, **extra: Any) -> dict[str, Any]:
    return {"appointment_id": appointment.id, "visit": appointment.visit, "mode": appointment.mode.value,
            "target": appointment.starts_at.astimezone(UTC).isoformat(), **extra}


def _touchpoint(
    session: Session,
    *,
    appointment: Appointment,
    procedure_id: int,
    what: str,
    template: str,
    channel: Channel,
    planned_at: datetime,
    due_at: datetime,
    window_end: datetime,
    status: TouchpointStatus = TouchpointStatus.scheduled,
    reason: str | None = None,
    **payload: Any,
) -> Touchpoint:
    name = key(appointment, what)
    existing = session.exec(
        select(Touchpoint).where(Touchpoint.procedure_id == procedure_id, Touchpoint.key == name,
                                 Touchpoint.channel == channel)
    ).first()
    if existing is not None:
        return existing
    tp = Touchpoint(
        procedure_id=procedure_id, patient_id=appointment.patient_id, key=name, kind=TouchpointKind.message,
        template=template, channel=channel, clinical=True, planned_at=planned_at, due_at=due_at,
        window_end=window_end, status=status, cancel_reason=reason, payload=_payload(appointment, **payload),
    )
    session.add(tp)
    session.flush()
    return tp


def announce(
    session: Session, scope: Scope, appointment: Appointment, template: str, now: datetime, *,
    channel: Channel | None = None, **payload: Any,
) -> Touchpoint | None:
    """A confirmation or cancellation notice, due now (None: no plan to hang it on, or no address)."""
    chosen = channel_for(scope.patient, channel)
    procedure_id = appointment.procedure_id
    if chosen is None or procedure_id is None:
        return None
    what = "cancelled" if template == CANCELLED else "confirmation"
    window_end = max(now + timedelta(hours=12), appointment.starts_at) if template == CONFIRMATION else now + timedelta(
        days=2)
    return _touchpoint(session, appointment=appointment, procedure_id=procedure_id, what=what, template=template,
                       channel=chosen, planned_at=now, due_at=now, window_end=window_end, **payload)


def reminder_times(
    starts_at: datetime, *, zone: ZoneInfo, clinic: Clinic, calendar: ClinicCalendar, now: datetime
) -> list[tuple[str, datetime, datetime, datetime, str | None]]:
    """(what, planned, due, window end, reason not sent) for the two reminders (see the module docstring)."""
    rules = calendar.reminders
    latest = starts_at - timedelta(minutes=rules.min_lead_minutes)
    out = []
    for what, hours in (("reminder_day_before", rules.day_before_hours), ("reminder_same_day", rules.same_day_hours)):
        planned = starts_at - timedelta(hours=hours)
        due = next_send_time(planned, zone, clinic.send_window_start, clinic.send_window_end)
        reason = None
        if planned < now:
            reason = NOT_SENT_LATE
        elif due > latest:
            reason = NOT_SENT_QUIET
        out.append((what, planned, due if reason is None else planned, latest, reason))
    return out


def schedule_reminders(session: Session, scope: Scope, appointment: Appointment, now: datetime) -> list[Touchpoint]:
    calendar = scope.need_calendar()
    channel = channel_for(scope.patient)
    if channel is None or appointment.procedure_id is None:
        return []
    made = []
    for what, planned, due, window_end, reason in reminder_times(
        appointment.starts_at, zone=ZoneInfo(scope.patient.timezone), clinic=scope.clinic, calendar=calendar, now=now
    ):
        made.append(_touchpoint(
            session, appointment=appointment, procedure_id=appointment.procedure_id, what=what, template=REMINDER,
            channel=channel, planned_at=planned, due_at=due, window_end=max(window_end, due),
            status=TouchpointStatus.skipped if reason else TouchpointStatus.scheduled, reason=reason,
        ))
    return made


def withdraw(session: Session, appointment: Appointment, reason: str, now: datetime) -> int:
    """Cancel the appointment's messages not sent yet (a cancelled or moved visit)."""
    result = session.execute(
        update(Touchpoint)
        .where(col(Touchpoint.key).startswith(f"booking_{appointment.id}_"),
               col(Touchpoint.patient_id) == appointment.patient_id,
               col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES))
        .values(status=TouchpointStatus.cancelled, cancel_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def video_link(appointment: Appointment, calendar: ClinicCalendar | None) -> str | None:
    if appointment.mode != VisitMode.video or not appointment.video_room or calendar is None:
        return None
    return calendar.video_link(appointment.video_room)


def visit_context(appointment: Appointment, patient: Patient, calendar: ClinicCalendar | None) -> dict[str, Any]:
    """`visit` (when, day, mode ...) in the patient's zone and language, and the video link."""
    return {
        "visit": visit_details(appointment.starts_at, appointment.mode.value, patient.timezone, patient.language),
        "video_link": video_link(appointment, calendar),
    }


def slot_labels(slots: list[Slot], patient: Patient) -> list[str]:
    return [slot_label(s.starts_at, patient.timezone, patient.language.value) for s in slots]


def invite(
    appointment: Appointment, scope: Scope, *, uid_of: Appointment | None, clinic_phone: str
) -> dict[str, str]:
    """The .ics attachment of an email confirmation or cancellation."""
    text = ics.patient_invite(
        appointment, clinic=scope.clinic, language=scope.patient.language.value,
        base_url=scope.settings.public_base_url, clinic_phone=clinic_phone,
        location=scope.calendar.location if scope.calendar else None,
        video_link=video_link(appointment, scope.calendar), uid_of=uid_of,
    )
    return {"filename": "visit.ics", "content_type": "text/calendar", "content": text}


def reply(
    session: Session, *, inbound: InboundMessage, scope: Scope, template: str, extra: dict[str, Any] | None = None
) -> int | None:
    """Queue one SMS answer to this text, written now in the patient's language (None: one exists already)."""
    assert inbound.id is not None
    if session.exec(select(OutboundReply.id).where(OutboundReply.inbound_id == inbound.id)).first() is not None:
        return None
    context = patient_context(clinic=scope.clinic, patient=scope.patient)
    context.update(extra or {})
    body = render(template, Channel.sms, scope.patient.language, context,
                  templates_dir=scope.settings.templates_dir).text
    row = OutboundReply(
        inbound_id=inbound.id, patient_id=scope.patient.id, clinic_id=scope.clinic.id, channel=Channel.sms,
        to_address=inbound.from_number, template=template, language=scope.patient.language, body=body,
    )
    session.add(row)
    session.flush()
    return row.id

