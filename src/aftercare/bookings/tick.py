"""The bookings job of the ticker: expire unanswered offers (re-offer once, then a coordinator task); free
the times of visits whose procedure was cancelled (a task tells the coordinator); end booking
conversations nothing is waiting on any more, so a survey paused behind them can go on."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from aftercare import tasks
from aftercare.bookings import offers, service
from aftercare.db import get_engine
from aftercare.models import (
    Appointment,
    AppointmentStatus,
    BookingOffer,
    Conversation,
    OfferStatus,
    Procedure,
    ProcedureStatus,
)
from aftercare.settings import Settings
from aftercare.surveys import state
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
THREAD = timedelta(hours=24)  # after a reminder, "R" and "C" are read as booking answers this long


@dataclass
class TickReport:
    expired: int = 0
    reoffered: int = 0
    tasks: int = 0
    cancelled: int = 0
    released: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def release_finished(session: Session, *, now: datetime) -> int:
    """Drop booking pointers nothing waits on: the offer is answered (or gone), and the reminder that asked
    "reply R or C" was sent more than THREAD_HOURS ago or its visit has started."""
    released = 0
    pointers = session.exec(select(Conversation).where(Conversation.kind == state.BOOKING)).all()
    for pointer in pointers:
        offer = session.get(BookingOffer, pointer.ref_id)
        if offer is not None and offer.status == OfferStatus.open:
            continue
        visit = session.get(Appointment, offer.appointment_id) if offer and offer.appointment_id else None
        waiting = visit is not None and visit.status == AppointmentStatus.booked and visit.starts_at > now
        if waiting and pointer.asked_at > now - THREAD:
            continue
        session.delete(pointer)
        released += 1
    session.flush()
    return released


def cancel_with_procedures(session: Session, settings: Settings, *, now: datetime, limit: int = 200) -> int:
    """Upcoming visits of cancelled procedures: cancelled (their time freed), one task per visit."""
    rows = session.exec(
        select(Appointment).join(Procedure, col(Procedure.id) == col(Appointment.procedure_id)).where(
            Appointment.status == AppointmentStatus.booked, col(Appointment.starts_at) > now,
            Procedure.status == ProcedureStatus.cancelled, col(Appointment.visit).not_in((service.URGENT,
                                                                                           service.OTHER)),
        ).limit(limit)
    ).all()
    for appointment in rows:
        service.cancel(session, settings, appointment=appointment, actor="bookings",
                       reason="its procedure was cancelled", notify_patient=False, now=now)
        tasks.open_task(
            session, kind="visit_cancelled_with_procedure", title="Follow-up visit cancelled with its procedure",
            clinic_id=appointment.clinic_id, patient_id=appointment.patient_id,
            detail=f"Visit {appointment.visit} on {appointment.starts_at:%Y-%m-%d %H:%M} UTC was freed. Tell the "
                   "patient if they do not know yet.",
            dedupe_key=f"visit_cancelled_with_procedure:{appointment.id}",
        )
    return len(rows)


def bookings_tick(settings: Settings, *, engine: Engine | None = None, now: datetime | None = None) -> TickReport:
    """One run (embedded ticker, every tick). Safe to run concurrently: each offer is expired once."""
    engine = engine or get_engine()
    at = now or utcnow()
    report = TickReport()
    with Session(engine, expire_on_commit=False) as session:
        swept = offers.sweep(session, settings, now=at)
        report.expired, report.reoffered, report.tasks = swept.expired, swept.reoffered, swept.tasks
        session.commit()
    with Session(engine, expire_on_commit=False) as session:
        report.cancelled = cancel_with_procedures(session, settings, now=at)
        session.commit()
    with Session(engine, expire_on_commit=False) as session:
        report.released = release_finished(session, now=at)
        session.commit()
    if any(report.as_dict().values()):
        log.info("bookings tick: %s", report.as_dict())
    return report

