"""The bookings job of the ticker: expire unanswered offers (re-offer once, then a coordinator task), and
end booking conversations nothing is waiting on any more (a reminder's visit has started), so a survey
paused behind them can go on."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from aftercare.bookings import offers
from aftercare.db import get_engine
from aftercare.models import Appointment, AppointmentStatus, BookingOffer, Conversation, OfferStatus
from aftercare.settings import Settings
from aftercare.surveys import state
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    expired: int = 0
    reoffered: int = 0
    tasks: int = 0
    released: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def release_finished(session: Session, *, now: datetime) -> int:
    """Drop booking pointers whose offer is answered and whose visit (if any) is no longer ahead."""
    released = 0
    pointers = session.exec(select(Conversation).where(Conversation.kind == state.BOOKING)).all()
    for pointer in pointers:
        offer = session.get(BookingOffer, pointer.ref_id)
        if offer is not None and offer.status == OfferStatus.open:
            continue
        visit = session.get(Appointment, offer.appointment_id) if offer and offer.appointment_id else None
        if visit is not None and visit.status == AppointmentStatus.booked and visit.starts_at > now:
            continue
        session.delete(pointer)
        released += 1
    session.flush()
    return released


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
        report.released = release_finished(session, now=at)
        session.commit()
    if any(report.as_dict().values()):
        log.info("bookings tick: %s", report.as_dict())
    return report

