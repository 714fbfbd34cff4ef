"""Appointments: book, move, cancel, mark attended or no-show, and book an urgent visit from a flag.

Every function works in the caller's transaction and never commits. Placing a visit inserts its
five-minute cells (`appointment_cell`, unique per physician and time) inside a savepoint: when another
booking got there first, whoever it was and however concurrent, the insert fails on the unique key, the
savepoint is rolled back and `SlotTaken` is raised; the caller offers other times. A move frees the old
cells and takes the new ones in the same savepoint, so a visit can move by a few minutes onto itself.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from aftercare import audit, tasks
from aftercare.bookings import notify
from aftercare.bookings import scope as scopes
from aftercare.bookings.scope import Scope
from aftercare.bookings.slots import Slot, busy_cells, cell_starts, is_free, on_grid, open_slots
from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.models import (
    Appointment,
    AppointmentCell,
    AppointmentStatus,
    BookingOffer,
    OfferStatus,
    Patient,
    Procedure,
    ProcedureStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
    VisitMode,
)
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow

URGENT = "urgent"
OTHER = "other"
ACTIVE = (AppointmentStatus.booked,)
PAST_MARKS = (AppointmentStatus.attended, AppointmentStatus.no_show)


class SlotTaken(Exception):
    """The time was booked by someone else first (the unique key on appointment cells said so)."""


@dataclass
class Placed:
    appointment: Appointment
    released: Appointment | None = None  # the visit it replaced (a move)


def _is_cell_clash(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "appointment_cell" in text


def _check_time(scope: Scope, physician_id: int, mode: VisitMode, starts_at: datetime, now: datetime) -> None:
    calendar = scope.need_calendar()
    if starts_at.tzinfo is None:
        raise InputError("starts_at", "give a time with its zone")
    if starts_at <= now:
        raise InputError("starts_at", "is in the past")
    if starts_at > now + timedelta(days=calendar.booking_horizon_days):
        raise InputError("starts_at", f"is beyond the booking horizon ({calendar.booking_horizon_days} days)")
    if not on_grid(starts_at):
        raise InputError("starts_at", "must be on a 5-minute step")
    doctor = scope.physicians.get(physician_id)
    if doctor is None:
        raise InputError("physician_id", f"staff {physician_id} has no hours in the clinic calendar")
    if mode not in doctor.modes:
        raise InputError("mode", f"this physician does not see {mode.value.replace('_', ' ')} visits")


def place(
    session: Session,
    scope: Scope,
    *,
    slot: Slot,
    mode: VisitMode,
    visit: str,
    source: str,
    actor: str,
    now: datetime,
    reason: str | None = None,
    replaces: Appointment | None = None,
) -> Placed:
    """Book `slot` (and free `replaces`, a move) atomically. Raises SlotTaken; nothing else changes then."""
    procedure = scope.procedure
    if procedure is not None and procedure.status == ProcedureStatus.cancelled:
        raise ConflictError(f"procedure {procedure.external_id} is cancelled: nothing can be booked for it")
    _check_time(scope, slot.physician_id, mode, slot.starts_at, now)
    appointment = Appointment(
        clinic_id=scope.clinic_id, patient_id=scope.patient_id, procedure_id=procedure.id if procedure else None,
        physician_id=slot.physician_id, visit=visit, mode=mode, starts_at=slot.starts_at, ends_at=slot.ends_at,
        source=source, reason=reason, booked_by=actor, created_at=now, updated_at=now,
        video_room=secrets.token_urlsafe(12) if mode == VisitMode.video else None,
        replaces_id=replaces.id if replaces else None, sequence=(replaces.sequence + 1) if replaces else 0,
    )
    try:
        with session.begin_nested():
            if replaces is not None:
                session.execute(delete(AppointmentCell).where(col(AppointmentCell.appointment_id) == replaces.id))
            session.add(appointment)
            session.flush()
            assert appointment.id is not None
            session.add_all(
                AppointmentCell(physician_id=slot.physician_id, starts_at=cell, appointment_id=appointment.id)
                for cell in cell_starts(slot.starts_at, slot.ends_at)
            )
            session.flush()
    except IntegrityError as exc:
        if not _is_cell_clash(exc):
            raise
        raise SlotTaken(f"{slot.starts_at.isoformat()} with physician {slot.physician_id} was just booked") from None
    if replaces is not None:
        replaces.status, replaces.updated_at = AppointmentStatus.moved, now
        session.add(replaces)
        notify.withdraw(session, replaces, "the visit was moved", now)
    audit.record(
        session, actor=actor, action="appointment.moved" if replaces else "appointment.booked",
        entity_type="appointment", entity_id=appointment.id, visit=visit, mode=mode.value, source=source,
        starts_at=slot.starts_at.isoformat(), physician_id=slot.physician_id,
        replaces=replaces.id if replaces else None,
    )
    return Placed(appointment, replaces)


def after_booking(session: Session, scope: Scope, placed: Placed, now: datetime, *, confirm: bool) -> None:
    """Reminders for the new visit, a way to manage it (its link), and (unless answered by reply) a notice."""
    appointment = placed.appointment
    notify.schedule_reminders(session, scope, appointment, now)
    supersede_offers(session, appointment, now, keep=None)
    cancel_pending_offer_messages(session, appointment, now)
    if confirm:
        notify.announce(session, scope, appointment, notify.CONFIRMATION, now, moved=placed.released is not None)


def supersede_offers(session: Session, appointment: Appointment, now: datetime, keep: int | None) -> int:
    """Open offers for the same visit are answered by this booking."""
    query = update(BookingOffer).where(
        col(BookingOffer.patient_id) == appointment.patient_id, col(BookingOffer.visit) == appointment.visit,
        col(BookingOffer.status) == OfferStatus.open,
    )
    if appointment.procedure_id is not None:
        query = query.where(col(BookingOffer.procedure_id) == appointment.procedure_id)
    if keep is not None:
        query = query.where(col(BookingOffer.id) != keep)
    result = session.execute(
        query.values(status=OfferStatus.superseded, answered_at=now).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel_pending_offer_messages(session: Session, appointment: Appointment, now: datetime) -> int:
    """An offer for this visit not sent yet is no longer needed."""
    if appointment.procedure_id is None or appointment.visit in (URGENT, OTHER):
        return 0
    result = session.execute(
        update(Touchpoint)
        .where(col(Touchpoint.procedure_id) == appointment.procedure_id,
               col(Touchpoint.kind) == TouchpointKind.visit_offer,
               col(Touchpoint.key).startswith(f"{appointment.visit}_offer"),
               col(Touchpoint.status).in_((TouchpointStatus.scheduled, TouchpointStatus.held)))
        .values(status=TouchpointStatus.cancelled, cancel_reason="the visit is booked", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def active_for_visit(session: Session, *, patient_id: int, procedure_id: int | None, visit: str) -> Appointment | None:
    query = select(Appointment).where(
        Appointment.patient_id == patient_id, Appointment.visit == visit, col(Appointment.status).in_(ACTIVE)
    )
    if procedure_id is not None:
        query = query.where(Appointment.procedure_id == procedure_id)
    return session.exec(query.order_by(col(Appointment.starts_at))).first()


def get(session: Session, clinic_id: int, appointment_id: int) -> Appointment:
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.clinic_id != clinic_id:
        raise NotFoundError(f"no appointment {appointment_id}")
    return appointment


def _scope_of(session: Session, settings: Settings, appointment: Appointment) -> Scope:
    patient = session.get(Patient, appointment.patient_id)
    assert patient is not None
    procedure = session.get(Procedure, appointment.procedure_id) if appointment.procedure_id else None
    return scopes.load(session, settings, patient=patient, procedure=procedure)


def slot_for(scope: Scope, *, physician_id: int, mode: VisitMode, starts_at: datetime) -> Slot:
    calendar = scope.need_calendar()
    return Slot(starts_at, physician_id, calendar.minutes(mode))


# -- staff and patient actions ---------------------------------------------------------------------


def book(
    session: Session,
    settings: Settings,
    *,
    patient_id: int,
    physician_id: int,
    starts_at: datetime,
    mode: VisitMode,
    visit: str,
    procedure_id: int | None,
    actor: str,
    source: str = "staff",
    reason: str | None = None,
    clinic_id: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book a visit for a patient (staff). Raises InputError, ConflictError, NotFoundError or SlotTaken."""
    now = now or utcnow()
    patient = session.get(Patient, patient_id)
    if patient is None or (clinic_id is not None and patient.clinic_id != clinic_id):
        raise NotFoundError(f"no patient {patient_id}")
    procedure = None
    if procedure_id is not None:
        procedure = session.get(Procedure, procedure_id)
        if procedure is None or procedure.patient_id != patient_id:
            raise InputError("procedure_id", f"no procedure {procedure_id} for this patient")
    elif visit not in (URGENT, OTHER):
        raise InputError("visit", f"{visit!r} is a protocol visit: say which procedure it belongs to")
    # Visits outside a protocol hang their messages (confirmation, reminders) on the latest active plan.
    scope = scopes.load(session, settings, patient=patient, procedure=procedure or scopes.latest_procedure(
        session, patient_id))
    if visit not in (URGENT, OTHER) and active_for_visit(
            session, patient_id=patient_id, procedure_id=procedure_id, visit=visit) is not None:
        raise ConflictError(f"this patient already has the {visit} visit booked: move it instead")
    slot = slot_for(scope, physician_id=physician_id, mode=mode, starts_at=starts_at)
    placed = place(session, scope, slot=slot, mode=mode, visit=visit, source=source, actor=actor, now=now,
                   reason=reason)
    after_booking(session, scope, placed, now, confirm=True)
    return placed.appointment


def move(
    session: Session,
    settings: Settings,
    *,
    appointment: Appointment,
    starts_at: datetime,
    physician_id: int | None,
    actor: str,
    source: str = "staff",
    confirm: bool = True,
    now: datetime | None = None,
) -> Appointment:
    """Move a booked visit to another time (and physician). The old one is kept as `moved`."""
    now = now or utcnow()
    if appointment.status != AppointmentStatus.booked:
        raise ConflictError(f"appointment {appointment.id} is {appointment.status.value}: only a booked visit moves")
    scope = _scope_of(session, settings, appointment)
    slot = slot_for(scope, physician_id=physician_id or appointment.physician_id, mode=appointment.mode,
                    starts_at=starts_at)
    placed = place(session, scope, slot=slot, mode=appointment.mode, visit=appointment.visit, source=source,
                   actor=actor, now=now, reason=appointment.reason, replaces=appointment)
    after_booking(session, scope, placed, now, confirm=confirm)
    repoint_offers(session, old=appointment, new=placed.appointment)
    return placed.appointment


def repoint_offers(session: Session, *, old: Appointment, new: Appointment) -> None:
    """The old visit's link keeps working for the new one."""
    session.execute(
        update(BookingOffer).where(col(BookingOffer.appointment_id) == old.id)
        .values(appointment_id=new.id).execution_options(synchronize_session=False)
    )


def cancel(
    session: Session,
    settings: Settings,
    *,
    appointment: Appointment,
    actor: str,
    reason: str,
    notify_patient: bool = True,
    now: datetime | None = None,
) -> Appointment:
    """Cancel a booked visit: its time is free again, its reminders are withdrawn, the patient is told."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise InputError("reason", "say why the visit is cancelled")
    if appointment.status != AppointmentStatus.booked:
        raise ConflictError(f"appointment {appointment.id} is {appointment.status.value}: it cannot be cancelled")
    session.execute(delete(AppointmentCell).where(col(AppointmentCell.appointment_id) == appointment.id))
    appointment.status, appointment.cancel_reason = AppointmentStatus.cancelled, reason[:300]
    appointment.sequence += 1
    appointment.updated_at = now
    session.add(appointment)
    notify.withdraw(session, appointment, "the visit was cancelled", now)
    if notify_patient:
        scope = _scope_of(session, settings, appointment)
        notify.announce(session, scope, appointment, notify.CANCELLED, now)
    audit.record(session, actor=actor, action="appointment.cancelled", entity_type="appointment",
                 entity_id=appointment.id, reason=reason[:300])
    return appointment


def mark(session: Session, *, appointment: Appointment, status: AppointmentStatus, actor: str,
         now: datetime | None = None) -> Appointment:
    """Attended or no-show, once the visit has started. A no-show opens a task to follow the patient up."""
    now = now or utcnow()
    if status not in PAST_MARKS:
        raise InputError("status", "mark a visit attended or no_show")
    if appointment.status not in (AppointmentStatus.booked, *PAST_MARKS):
        raise ConflictError(f"appointment {appointment.id} is {appointment.status.value}")
    if appointment.starts_at > now:
        raise ConflictError("the visit has not started yet: mark it once it is due")
    previous = appointment.status
    appointment.status, appointment.updated_at = status, now
    session.add(appointment)
    audit.record(session, actor=actor, action=f"appointment.{status.value}", entity_type="appointment",
                 entity_id=appointment.id, previous=previous.value)
    if status == AppointmentStatus.no_show:
        tasks.open_task(
            session, kind="visit_no_show", title="Patient missed a follow-up visit", clinic_id=appointment.clinic_id,
            patient_id=appointment.patient_id, detail="Marked as a no-show: call the patient to book again.",
            dedupe_key=f"visit_no_show:{appointment.id}",
        )
    return appointment


def book_urgent_visit(
    session: Session, *, patient_id: int, physician_id: int, actor: str, reason: str, now: datetime | None = None
) -> Appointment:
    """The first free time with this physician (calendar `urgent:` rules), booked now for a flagged patient.

    For the review queue's "book urgent visit". Raises NotFoundError (patient), InputError (no reason),
    ConflictError (no calendar, the physician has no hours, nothing free within `urgent.within_days`).
    """
    settings = get_settings()
    now = now or utcnow()
    if not reason.strip():
        raise InputError("reason", "say why the visit is urgent")
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFoundError(f"no patient {patient_id}")
    scope = scopes.load(session, settings, patient=patient, procedure=scopes.latest_procedure(session, patient_id))
    calendar = scope.need_calendar()
    doctor = scope.physicians.get(physician_id)
    if doctor is None:
        raise ConflictError(f"staff {physician_id} has no hours in the clinic calendar: pick a physician who has")
    mode = calendar.urgent.mode if calendar.urgent.mode in doctor.modes else doctor.modes[0]
    start = now + timedelta(minutes=calendar.urgent.min_notice_minutes)
    end = now + timedelta(days=min(calendar.urgent.within_days, calendar.booking_horizon_days))
    for slot in open_slots(session, calendar=calendar, zone=scope.zone, physicians={physician_id: doctor}, mode=mode,
                           start=start, end=end, limit=10):
        try:
            placed = place(session, scope, slot=slot, mode=mode, visit=URGENT, source="urgent", actor=actor, now=now,
                           reason=reason.strip()[:500])
        except SlotTaken:
            continue
        after_booking(session, scope, placed, now, confirm=True)
        return placed.appointment
    raise ConflictError(
        f"no free time with this physician in the next {calendar.urgent.within_days} days: call the patient and "
        "book by phone"
    )


def free_slots(
    session: Session, scope: Scope, *, mode: VisitMode, start: datetime, end: datetime, physician_id: int | None = None,
    limit: int | None = None,
) -> list[Slot]:
    """Open times for staff and the patient page, within the calendar's horizon and notice."""
    calendar = scope.need_calendar()
    now = utcnow()
    start = max(start, now + timedelta(minutes=5))
    end = min(end, now + timedelta(days=calendar.booking_horizon_days))
    physicians = {physician_id: scope.physicians[physician_id]} if physician_id in scope.physicians else (
        {} if physician_id is not None else scope.physicians)
    return open_slots(session, calendar=calendar, zone=scope.zone, physicians=physicians, mode=mode, start=start,
                      end=end, limit=limit)


def still_free(session: Session, slot: Slot) -> bool:
    return is_free(slot, busy_cells(session, [slot.physician_id], slot.starts_at, slot.ends_at))
