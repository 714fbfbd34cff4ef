"""No double booking under concurrency: parallel attempts on PostgreSQL, threads each with its own session.

The unique key on appointment cells decides; whoever loses gets SlotTaken (staff) or new times (a patient),
never a second visit in the same time and never an error page.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from aftercare.bookings import offers, service
from aftercare.bookings import scope as scopes
from aftercare.bookings.slots import Slot, cell_starts
from aftercare.db import get_engine
from aftercare.models import Appointment, AppointmentCell, AppointmentStatus, BookingOffer, Channel, VisitMode
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.booking_helpers import World, make_world, use_calendar, write_calendar

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
THREADS = 8


@pytest.fixture
def worlds(session: Session, settings: Settings, registry: ProtocolRegistry, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> list[World]:
    settings = use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    first = make_world(session, settings, registry, physician=None)
    out = [first]
    for n in range(1, THREADS):
        out.append(make_world(session, settings, registry, physician=None, external_id=f"PROC-{n + 1}",
                              phone=f"+1416555{200 + n:04d}", email=f"p{n}@example.org", clinic=first.clinic,
                              doctors=(first.dr_a, first.dr_b)))
    return out


def race(count: int, attempt: Callable[[int, Session], str]) -> Counter[str]:
    """Run `attempt(i, session)` in `count` threads released together; each commits its own session."""
    barrier = threading.Barrier(count)

    def run(i: int) -> str:
        with Session(get_engine(), expire_on_commit=False) as session:
            barrier.wait(timeout=30)
            try:
                outcome = attempt(i, session)
                session.commit()
                return outcome
            except service.SlotTaken:
                session.rollback()
                return "taken"

    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(run, range(count)))


def future_slot(world: World, mode: VisitMode = VisitMode.in_person, days: int = 9) -> Slot:
    with Session(get_engine()) as session:
        scope = scopes.load(session, world.settings, patient=world.patient, procedure=world.procedure)
        start = utcnow() + timedelta(days=days)
        return service.free_slots(session, scope, mode=mode, start=start, end=start + timedelta(days=7),
                                  physician_id=world.dr_a.id)[0]


def active_cells(session: Session, physician_id: int) -> list[AppointmentCell]:
    session.expire_all()
    return list(session.exec(select(AppointmentCell).where(AppointmentCell.physician_id == physician_id)))


def test_staff_booking_the_same_time_for_eight_patients_at_once(session: Session, worlds: list[World]) -> None:
    slot = future_slot(worlds[0])

    def attempt(i: int, own: Session) -> str:
        world = worlds[i]
        service.book(own, world.settings, patient_id=world.patient.id or 0, physician_id=slot.physician_id,
                     starts_at=slot.starts_at, mode=VisitMode.in_person, visit="visit_6w",
                     procedure_id=world.procedure.id, actor="staff:1")
        return "booked"

    outcomes = race(THREADS, attempt)

    assert outcomes == Counter({"booked": 1, "taken": THREADS - 1})
    session.expire_all()
    [visit] = session.exec(select(Appointment).where(Appointment.starts_at == slot.starts_at)).all()
    assert len(active_cells(session, slot.physician_id)) == 6
    assert {c.appointment_id for c in active_cells(session, slot.physician_id)} == {visit.id}


def test_overlapping_visits_of_different_lengths_at_once(session: Session, worlds: list[World]) -> None:
    slot = future_slot(worlds[0])
    starts = [slot.starts_at + timedelta(minutes=5 * i) for i in range(THREADS)]  # all overlap 10:00-10:30

    def attempt(i: int, own: Session) -> str:
        world = worlds[i]
        mode = VisitMode.video if i % 2 else VisitMode.phone
        service.book(own, world.settings, patient_id=world.patient.id or 0, physician_id=slot.physician_id,
                     starts_at=starts[i], mode=mode, visit="other", procedure_id=None, actor="staff:1")
        return "booked"

    outcomes = race(THREADS, attempt)

    session.expire_all()
    visits = session.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)).all()
    assert outcomes["booked"] == len(visits) >= 1 and outcomes["booked"] + outcomes["taken"] == THREADS
    ordered = sorted(visits, key=lambda a: a.starts_at)
    assert all(a.ends_at <= b.starts_at for a, b in zip(ordered, ordered[1:], strict=False))  # none overlap
    cells = [c.starts_at for c in active_cells(session, slot.physician_id)]
    assert len(cells) == len(set(cells)) == sum(len(cell_starts(a.starts_at, a.ends_at)) for a in visits)


def test_patients_answering_offers_for_the_same_time_race_and_the_losers_get_new_times(
    session: Session, worlds: list[World],
) -> None:
    slot = future_slot(worlds[0], VisitMode.video)
    offer_ids = []
    for world in worlds:
        scope = scopes.load(session, world.settings, patient=world.patient, procedure=world.procedure)
        offer = offers.make_offer(session, scope, visit="visit_2w", mode=VisitMode.video, target=slot.starts_at,
                                  channel=Channel.sms, now=utcnow(), physician_id=world.dr_a.id)
        offer.slots = [slot.as_json()]  # everyone was offered the same time
        session.add(offer)
        offer_ids.append(offer.id)
    session.commit()

    def attempt(i: int, own: Session) -> str:
        world = worlds[i]
        offer = own.get(BookingOffer, offer_ids[i])
        assert offer is not None
        scope = scopes.load(own, world.settings, patient=world.patient, procedure=world.procedure)
        return offers.accept(own, scope, offer, slot, source="sms" if i % 2 else "web", now=utcnow()).outcome

    outcomes = race(THREADS, attempt)

    assert outcomes == Counter({"booked": 1, "taken": THREADS - 1})
    session.expire_all()
    fresh = session.exec(select(BookingOffer).where(BookingOffer.status == "open")).all()
    assert len(fresh) == THREADS - 1 and all(slot.starts_at not in {s.starts_at for s in offers.slots_of(o)}
                                             for o in fresh)


def test_one_offer_answered_twice_at_once_books_once(session: Session, worlds: list[World]) -> None:
    world = worlds[0]
    scope = scopes.load(session, world.settings, patient=world.patient, procedure=world.procedure)
    offer = offers.make_offer(session, scope, visit="visit_2w", mode=VisitMode.video,
                              target=utcnow() + timedelta(days=10), channel=Channel.sms, now=utcnow())
    session.commit()
    choices = offers.slots_of(offer)
    assert len(choices) == 3

    def attempt(i: int, own: Session) -> str:  # the SMS reply "1" and the page's choice of 2, 3... together
        fresh = own.get(BookingOffer, offer.id)
        assert fresh is not None
        own_scope = scopes.load(own, world.settings, patient=world.patient, procedure=world.procedure)
        return offers.accept(own, own_scope, fresh, choices[i % 3], source="web", now=utcnow()).outcome

    outcomes = race(4, attempt)

    assert outcomes["booked"] == 1 and outcomes["booked"] + outcomes["closed"] + outcomes["already_booked"] == 4
    session.expire_all()
    assert len(session.exec(select(Appointment).where(Appointment.patient_id == world.patient.id)).all()) == 1
