"""What staff do with a flag: view, acknowledge, note, message the patient, book an urgent visit, resolve.

Each function checks the role (flags.permissions), works in the caller's transaction and writes an audit event
(who, when, what); a refused attempt is audited too (`flag.denied`), by `deny`. Acknowledging stops the
escalation; messaging the patient, booking a visit or resolving acknowledge an open flag on the way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from aftercare import audit
from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.flags import patient_texts
from aftercare.flags.permissions import Action, require
from aftercare.models import (
    Appointment,
    Clinic,
    Flag,
    FlagDisposition,
    FlagNote,
    FlagStatus,
    OutboundReply,
    Patient,
    Procedure,
    Role,
    StaffUser,
)
from aftercare.timeutil import utcnow

NOTE_MAX = 2000
MESSAGE_MAX = patient_texts.STAFF_MESSAGE_MAX


def actor(staff: StaffUser) -> str:
    return f"staff:{staff.id}"


def get_flag(session: Session, staff: StaffUser, flag_id: int) -> Flag:
    """The flag, if it belongs to the staff member's clinic (else NotFoundError: no hint it exists)."""
    flag = session.get(Flag, flag_id)
    if flag is None or flag.clinic_id != staff.clinic_id:
        raise NotFoundError(f"no flag {flag_id}")
    return flag


def _record(session: Session, staff: StaffUser, flag: Flag, action: str, **detail: Any) -> None:
    audit.record(session, actor=actor(staff), action=f"flag.{action}", entity_type="flag", entity_id=flag.id,
                 role=staff.role.value, **detail)


def deny(session: Session, staff: StaffUser, flag_id: int | None, action: Action, via: str) -> None:
    """Audit a refused attempt (the caller commits, then answers 403)."""
    audit.record(session, actor=actor(staff), action="flag.denied", entity_type="flag", entity_id=flag_id,
                 role=staff.role.value, attempted=action.value, via=via)


def viewed(session: Session, staff: StaffUser, flag: Flag, *, via: str) -> None:
    require(staff, Action.view)
    _record(session, staff, flag, "viewed", via=via)


def queue_viewed(session: Session, staff: StaffUser, flag_ids: list[int], *, via: str) -> None:
    audit.record(session, actor=actor(staff), action="flag.queue_viewed", entity_type="flag", entity_id=None,
                 role=staff.role.value, via=via, flags=flag_ids[:500], count=len(flag_ids))


def _text(value: str | None, field: str, limit: int, *, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InputError(field, "write something")
    if len(text) > limit:
        raise InputError(field, f"at most {limit} characters ({len(text)} given)")
    return text


def _acknowledge(session: Session, staff: StaffUser, flag: Flag, now: datetime, *, via: str, why: str) -> bool:
    if flag.status != FlagStatus.open:
        return False
    flag.status, flag.acknowledged_by, flag.acknowledged_at = FlagStatus.acknowledged, staff.id, now
    flag.next_escalation_at, flag.updated_at = None, now
    session.add(flag)
    _record(session, staff, flag, "acknowledged", via=via, by=why, escalation_level=flag.escalation_level)
    return True


def acknowledge(session: Session, staff: StaffUser, flag: Flag, *, via: str, now: datetime | None = None) -> bool:
    """Take the flag in hand: escalation stops. False when it was acknowledged already (nothing changes)."""
    require(staff, Action.acknowledge)
    if flag.status == FlagStatus.resolved:
        raise ConflictError(f"flag {flag.id} is resolved already")
    return _acknowledge(session, staff, flag, now or utcnow(), via=via, why="acknowledge")


def add_note(session: Session, staff: StaffUser, flag: Flag, text: str | None, *, via: str) -> FlagNote:
    require(staff, Action.note)
    body = _text(text, "note", NOTE_MAX)
    note = FlagNote(flag_id=flag.id or 0, staff_id=staff.id or 0, kind="note", body=body)
    session.add(note)
    flag.updated_at = utcnow()
    session.add(flag)
    session.flush()
    _record(session, staff, flag, "noted", via=via, note_id=note.id)
    return note


def message_patient(
    session: Session, staff: StaffUser, flag: Flag, text: str | None, *, via: str, now: datetime | None = None
) -> OutboundReply:
    """A text to the patient in the staff member's words, through the reply outbox (sent within seconds)."""
    require(staff, Action.message)
    body = _text(text, "message", MESSAGE_MAX)
    patient = session.get(Patient, flag.patient_id)
    clinic = session.get(Clinic, flag.clinic_id)
    assert patient is not None and clinic is not None
    reply = patient_texts.queue_staff_words(session, patient=patient, clinic=clinic, text=body)
    if reply is None:
        raise ConflictError("this patient may not be texted (no SMS consent, no mobile number, or opted out): "
                            "call them instead")
    now = now or utcnow()
    _acknowledge(session, staff, flag, now, via=via, why="message")
    session.add(FlagNote(flag_id=flag.id or 0, staff_id=staff.id or 0, kind="message", body=reply.body or body))
    flag.updated_at = now
    session.add(flag)
    session.flush()
    _record(session, staff, flag, "messaged", via=via, reply_id=reply.id)
    return reply


def physician_for_visit(session: Session, staff: StaffUser, flag: Flag, physician_id: int | None) -> int:
    """Who sees the patient: the one chosen, else the staff member if a physician, else the treating one."""
    if physician_id is not None:
        chosen = session.get(StaffUser, physician_id)
        if chosen is None or chosen.clinic_id != flag.clinic_id or chosen.role != Role.physician or not chosen.active:
            raise InputError("physician_id", f"no active physician {physician_id} in this clinic")
        return physician_id
    if staff.role == Role.physician and staff.id is not None:
        return staff.id
    procedure = session.get(Procedure, flag.procedure_id) if flag.procedure_id else None
    if procedure is not None and procedure.physician_id is not None:
        return procedure.physician_id
    raise InputError("physician_id", "choose the physician who will see the patient")


def book_visit(
    session: Session, staff: StaffUser, flag: Flag, *, physician_id: int | None, reason: str | None, via: str,
    now: datetime | None = None,
) -> Appointment:
    """The first free urgent time with the physician (the clinic calendar's `urgent:` rules)."""
    require(staff, Action.book_visit)
    from aftercare.bookings.service import book_urgent_visit

    doctor = physician_for_visit(session, staff, flag, physician_id)
    why = _text(reason, "reason", 500, required=False) or f"Flag #{flag.id}"
    now = now or utcnow()
    appointment = book_urgent_visit(session, patient_id=flag.patient_id, physician_id=doctor, actor=actor(staff),
                                    reason=why, now=now)
    _acknowledge(session, staff, flag, now, via=via, why="book_visit")
    session.add(FlagNote(flag_id=flag.id or 0, staff_id=staff.id or 0, kind="visit",
                         body=f"Urgent visit booked (appointment {appointment.id}): {why}"))
    flag.updated_at = now
    session.add(flag)
    session.flush()
    _record(session, staff, flag, "visit_booked", via=via, appointment_id=appointment.id, physician_id=doctor)
    return appointment


def resolve(
    session: Session, staff: StaffUser, flag: Flag, *, disposition: str | None, note: str | None, via: str,
    now: datetime | None = None,
) -> Flag:
    """Close the flag with a disposition (called patient, visit booked, sent to ER, no action needed) and a note."""
    require(staff, Action.resolve)
    try:
        chosen = FlagDisposition((disposition or "").strip())
    except ValueError:
        choices = ", ".join(d.value for d in FlagDisposition)
        raise InputError("disposition", f"one of {choices}; got {disposition!r}") from None
    body = _text(note, "note", NOTE_MAX)
    if flag.status == FlagStatus.resolved:
        raise ConflictError(f"flag {flag.id} is resolved already")
    now = now or utcnow()
    _acknowledge(session, staff, flag, now, via=via, why="resolve")
    flag.status, flag.disposition, flag.resolution_note = FlagStatus.resolved, chosen, body
    flag.resolved_by, flag.resolved_at, flag.updated_at, flag.next_escalation_at = staff.id, now, now, None
    session.add(flag)
    session.add(FlagNote(flag_id=flag.id or 0, staff_id=staff.id or 0, kind="resolution",
                         body=f"{chosen.value.replace('_', ' ')}: {body}"))
    session.flush()
    _record(session, staff, flag, "resolved", via=via, disposition=chosen.value)
    return flag
