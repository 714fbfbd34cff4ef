"""Appointments on both databases: book, collide, move, cancel, mark, urgent visits and reminder timing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from aftercare.bookings import notify, service
from aftercare.bookings import scope as scopes
from aftercare.bookings.calendar import parse_calendar
from aftercare.bookings.service import SlotTaken
from aftercare.bookings.slots import Slot
from aftercare.errors import ConflictError, InputError
from aftercare.models import (
    Appointment,
    AppointmentCell,
    AppointmentStatus,
    AuditEvent,
    Channel,
    Clinic,
    CoordinatorTask,
    OfferStatus,
    ProcedureStatus,
    Touchpoint,
    TouchpointStatus,
    VisitMode,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timing import local_wall_time
from tests.booking_helpers import World, calendar_body, make_world, use_calendar, write_calendar

CABO = ZoneInfo("America/Mazatlan")


@pytest.fixture
def world(session: Session, settings: Settings, registry: ProtocolRegistry, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> World:
    settings = use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    return make_world(session, settings, registry)


def clinic_time(days_ahead: int, hhmm: str, weekday: int = 1) -> datetime:
    """A clinic wall-clock time on the first given weekday (default Tuesday) at least `days_ahead` days away."""
    day = datetime.now(CABO).date() + timedelta(days=days_ahead)
    day += timedelta(days=(weekday - day.weekday()) % 7)
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return local_wall_time(day, time(hours, minutes), CABO)


def book(session: Session, world: World, starts_at: datetime, *, doctor: int | None = None,
         mode: VisitMode = VisitMode.in_person, visit: str = "visit_6w") -> Appointment:
    appointment = service.book(
        session, world.settings, patient_id=world.patient.id or 0, physician_id=doctor or world.dr_a.id or 0,
        starts_at=starts_at, mode=mode, visit=visit, procedure_id=world.procedure.id, actor="staff:1",
    )
    session.commit()
    return appointment


def cells(session: Session, appointment: Appointment) -> list[AppointmentCell]:
    return list(session.exec(select(AppointmentCell).where(AppointmentCell.appointment_id == appointment.id)))


def messages(session: Session, appointment: Appointment) -> dict[str, Touchpoint]:
    rows = session.exec(select(Touchpoint).where(col(Touchpoint.key).startswith(f"booking_{appointment.id}_")))
    return {tp.key.split("_", 2)[2]: tp for tp in rows}


def test_a_booking_holds_its_time_and_plans_its_messages(session: Session, world: World) -> None:
    starts = clinic_time(20, "10:00")

    appointment = book(session, world, starts)

    assert appointment.status == AppointmentStatus.booked and appointment.ends_at == starts + timedelta(minutes=30)
    assert len(cells(session, appointment)) == 6
    sent = messages(session, appointment)
    assert set(sent) == {"confirmation", "reminder_day_before", "reminder_same_day"}
    assert sent["confirmation"].status == TouchpointStatus.scheduled and sent["confirmation"].clinical
    assert sent["reminder_day_before"].planned_at == starts - timedelta(hours=24)
    assert sent["reminder_same_day"].due_at == starts - timedelta(hours=2)  # 12:00 in Toronto: no quiet hours
    assert sent["confirmation"].payload["target"] == starts.isoformat()
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "appointment.booked")).one()


def test_the_same_time_or_an_overlapping_one_cannot_be_booked_twice(session: Session, world: World,
                                                                    registry: ProtocolRegistry) -> None:
    other = make_world(session, world.settings, registry, external_id="PROC-2", phone="+1 416 555 0198",
                       email="b@example.org", clinic=world.clinic, doctors=(world.dr_a, world.dr_b))
    starts = clinic_time(20, "10:00")
    book(session, world, starts)

    with pytest.raises(SlotTaken):
        service.book(session, world.settings, patient_id=other.patient.id or 0, physician_id=world.dr_a.id or 0,
                     starts_at=starts, mode=VisitMode.in_person, visit="visit_6w",
                     procedure_id=other.procedure.id, actor="staff:1")
    with pytest.raises(SlotTaken):  # a 20-minute video visit at 10:20 overlaps 10:00-10:30
        service.book(session, world.settings, patient_id=other.patient.id or 0, physician_id=world.dr_a.id or 0,
                     starts_at=starts + timedelta(minutes=20), mode=VisitMode.video, visit="visit_6w",
                     procedure_id=other.procedure.id, actor="staff:1")
    session.rollback()
    assert session.exec(select(Appointment).where(Appointment.patient_id == other.patient.id)).all() == []

    fine = service.book(session, world.settings, patient_id=other.patient.id or 0, physician_id=world.dr_b.id or 0,
                        starts_at=clinic_time(20, "10:00"), mode=VisitMode.video, visit="visit_6w",
                        procedure_id=other.procedure.id, actor="staff:1")
    assert fine.physician_id == world.dr_b.id


def test_bad_times_and_states_are_refused_with_the_field(session: Session, world: World) -> None:
    def attempt(**kw: object) -> None:
        values: dict[str, object] = {
            "patient_id": world.patient.id, "physician_id": world.dr_a.id, "starts_at": clinic_time(20, "10:00"),
            "mode": VisitMode.in_person, "visit": "visit_6w", "procedure_id": world.procedure.id, "actor": "staff:1",
        }
        values.update(kw)
        service.book(session, world.settings, **values)  # type: ignore[arg-type]

    with pytest.raises(InputError, match="starts_at: is in the past"):
        attempt(starts_at=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InputError, match="starts_at: must be on a 5-minute step"):
        attempt(starts_at=clinic_time(20, "10:00") + timedelta(minutes=2))
    with pytest.raises(InputError, match="starts_at: is beyond the booking horizon"):
        attempt(starts_at=clinic_time(500, "10:00"))
    with pytest.raises(InputError, match="physician_id: staff .* has no hours"):
        attempt(physician_id=world.patient.id + 10_000)  # type: ignore[operator]
    with pytest.raises(InputError, match="mode: this physician does not see in person visits"):
        attempt(physician_id=world.dr_b.id)
    with pytest.raises(InputError, match="procedure_id: no procedure"):
        attempt(procedure_id=world.procedure.id + 999)  # type: ignore[operator]
    book(session, world, clinic_time(20, "11:00"))
    with pytest.raises(ConflictError, match="already has the visit_6w visit booked"):
        attempt()
    world.procedure.status = ProcedureStatus.cancelled
    session.add(world.procedure)
    with pytest.raises(ConflictError, match="is cancelled"):
        attempt(visit="visit_3mo")
    session.rollback()
    assert len(session.exec(select(Appointment)).all()) == 1


def test_moving_frees_the_old_time_and_can_overlap_itself(session: Session, world: World) -> None:
    first = book(session, world, clinic_time(20, "10:00"))

    moved = service.move(session, world.settings, appointment=first, starts_at=first.starts_at + timedelta(minutes=10),
                         physician_id=None, actor="staff:1")
    session.commit()

    session.refresh(first)
    assert first.status == AppointmentStatus.moved and cells(session, first) == []
    assert moved.replaces_id == first.id and moved.sequence == 1 and len(cells(session, moved)) == 6
    old = messages(session, first)
    assert {tp.status for key, tp in old.items() if key.startswith("reminder")} == {TouchpointStatus.cancelled}
    new = messages(session, moved)
    assert new["confirmation"].payload["moved"] is True
    # The time it left is free for someone else.
    slot = Slot(first.starts_at - timedelta(minutes=30), world.dr_a.id or 0, 30)
    assert service.still_free(session, slot)


def test_cancelling_frees_the_time_and_withdraws_the_reminders(session: Session, world: World) -> None:
    appointment = book(session, world, clinic_time(20, "10:00"))

    with pytest.raises(InputError, match="reason: say why"):
        service.cancel(session, world.settings, appointment=appointment, actor="staff:1", reason=" ")
    service.cancel(session, world.settings, appointment=appointment, actor="staff:1", reason="patient travelling")
    session.commit()

    assert appointment.status == AppointmentStatus.cancelled and cells(session, appointment) == []
    sent = messages(session, appointment)
    assert sent["cancelled"].template == notify.CANCELLED and sent["cancelled"].status == TouchpointStatus.scheduled
    assert sent["reminder_day_before"].status == TouchpointStatus.cancelled
    with pytest.raises(ConflictError, match="is cancelled: it cannot be cancelled"):
        service.cancel(session, world.settings, appointment=appointment, actor="staff:1", reason="again")
    again = book(session, world, appointment.starts_at)  # the time is free again
    assert again.status == AppointmentStatus.booked


def test_attended_and_no_show_only_once_the_visit_is_due(session: Session, world: World) -> None:
    appointment = book(session, world, clinic_time(20, "10:00"))

    with pytest.raises(ConflictError, match="has not started yet"):
        service.mark(session, appointment=appointment, status=AppointmentStatus.attended, actor="staff:1")
    later = appointment.starts_at + timedelta(minutes=40)
    service.mark(session, appointment=appointment, status=AppointmentStatus.no_show, actor="staff:1", now=later)
    session.commit()

    task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "visit_no_show")).one()
    assert task.patient_id == world.patient.id
    service.mark(session, appointment=appointment, status=AppointmentStatus.attended, actor="staff:1", now=later)
    assert appointment.status == AppointmentStatus.attended  # a correction is allowed
    with pytest.raises(InputError, match="status: mark a visit attended or no_show"):
        service.mark(session, appointment=appointment, status=AppointmentStatus.booked, actor="staff:1", now=later)


def test_an_urgent_visit_takes_the_first_free_time_of_that_physician(session: Session, world: World) -> None:
    appointment = service.book_urgent_visit(session, patient_id=world.patient.id or 0,
                                            physician_id=world.dr_a.id or 0, actor="staff:9", reason="red, hot knee")
    session.commit()

    now = datetime.now(UTC)
    assert appointment.visit == "urgent" and appointment.mode == VisitMode.in_person
    assert appointment.starts_at >= now + timedelta(minutes=60) and appointment.reason == "red, hot knee"
    local = appointment.starts_at.astimezone(CABO)
    assert local.weekday() < 5 and time(9) <= local.time() < time(18)
    free = service.free_slots(session, scopes.load(session, world.settings, patient=world.patient),
                              mode=VisitMode.in_person, start=now + timedelta(minutes=60),
                              end=appointment.starts_at + timedelta(minutes=1), physician_id=world.dr_a.id)
    assert all(s.starts_at > appointment.starts_at for s in free)  # nothing earlier was free
    assert "confirmation" in messages(session, appointment)

    second = service.book_urgent_visit(session, patient_id=world.patient.id or 0,
                                       physician_id=world.dr_a.id or 0, actor="staff:9", reason="still bad")
    assert second.starts_at >= appointment.ends_at
    with pytest.raises(InputError, match="reason"):
        service.book_urgent_visit(session, patient_id=world.patient.id or 0, physician_id=world.dr_a.id or 0,
                                  actor="staff:9", reason="")
    with pytest.raises(ConflictError, match="has no hours in the clinic calendar"):
        service.book_urgent_visit(session, patient_id=world.patient.id or 0, physician_id=99_999,
                                  actor="staff:9", reason="x")


def test_a_clinic_without_a_calendar_cannot_book(session: Session, world: World) -> None:
    world.clinic.slug = "elsewhere"
    session.add(world.clinic)
    session.commit()
    with pytest.raises(ConflictError, match="clinic 'elsewhere' has no calendar: add it under `clinics:`"):
        book(session, world, clinic_time(20, "10:00"))


# -- reminder timing (quiet hours, late bookings) --------------------------------------------------


def _times(starts: datetime, now: datetime, zone: str = "America/Toronto") -> dict[str, tuple[datetime, str | None]]:
    cal = parse_calendar(calendar_body(), "t").clinics["cabo"]
    clinic = Clinic(slug="cabo", name="C", timezone="America/Mazatlan", phone="+526241234567")
    return {what: (due, reason) for what, _p, due, _w, reason in
            notify.reminder_times(starts, zone=ZoneInfo(zone), clinic=clinic, calendar=cal, now=now)}


def test_a_same_day_reminder_in_quiet_hours_goes_at_the_window_opening() -> None:
    toronto = ZoneInfo("America/Toronto")
    visit = local_wall_time(date(2027, 3, 16), time(8, 30), toronto)  # 08:30 in the patient's zone

    times = _times(visit, now=visit - timedelta(days=10))

    assert times["reminder_same_day"] == (local_wall_time(date(2027, 3, 16), time(8, 0), toronto), None)
    assert times["reminder_day_before"][0] == visit - timedelta(hours=24)


def test_a_reminder_quiet_hours_push_too_close_to_the_visit_is_not_sent() -> None:
    vancouver = ZoneInfo("America/Vancouver")
    visit = local_wall_time(date(2027, 3, 16), time(8, 15), vancouver)  # 09:15 in San José del Cabo

    times = _times(visit, now=visit - timedelta(days=10), zone="America/Vancouver")

    assert times["reminder_same_day"][1] == notify.NOT_SENT_QUIET
    assert times["reminder_day_before"] == (visit - timedelta(hours=24), None)


def test_a_visit_booked_at_short_notice_skips_the_reminders_already_due() -> None:
    visit = datetime(2027, 3, 16, 17, 0, tzinfo=UTC)

    times = _times(visit, now=visit - timedelta(hours=5))

    assert times["reminder_day_before"][1] == notify.NOT_SENT_LATE
    assert times["reminder_same_day"] == (visit - timedelta(hours=2), None)


# -- offers, the ticker, and the calendar file ------------------------------------------------------


def test_booking_a_visit_withdraws_its_offer_not_sent_yet(session: Session, world: World) -> None:
    offer_tp = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == world.procedure.id,
                                                     Touchpoint.key == "visit_6w_offer")).one()
    assert offer_tp.status == TouchpointStatus.scheduled

    book(session, world, clinic_time(20, "10:00"))

    session.refresh(offer_tp)
    assert (offer_tp.status, offer_tp.cancel_reason) == (TouchpointStatus.cancelled, "the visit is booked")


def test_a_time_in_the_past_gets_a_fresh_offer_and_books_nothing(session: Session, world: World) -> None:
    from aftercare.bookings import offers

    scope = scopes.load(session, world.settings, patient=world.patient, procedure=world.procedure)
    offer = offers.make_offer(session, scope, visit="visit_6w", mode=VisitMode.in_person,
                              target=datetime.now(UTC) + timedelta(days=10), channel=Channel.sms,
                              now=datetime.now(UTC))
    gone = Slot(datetime.now(UTC) - timedelta(hours=3), world.dr_a.id or 0, 30)

    answer = offers.accept(session, scope, offer, gone, source="sms", now=datetime.now(UTC))

    assert answer.outcome == "taken" and answer.new_offer is not None and answer.detail == "the time has passed"
    assert offer.status == OfferStatus.superseded and answer.new_offer.status == OfferStatus.open
    assert session.exec(select(Appointment)).all() == []


def test_the_ticker_frees_the_visits_of_a_cancelled_procedure(session: Session, world: World) -> None:
    from aftercare import plans
    from aftercare.bookings.tick import bookings_tick

    appointment = book(session, world, clinic_time(20, "10:00"))
    plans.cancel(session, world.procedure, "patient withdrew", actor="staff:1")
    session.commit()

    report = bookings_tick(world.settings)

    assert report.cancelled == 1
    session.expire_all()
    freed = session.get(Appointment, appointment.id)
    assert freed is not None and freed.status == AppointmentStatus.cancelled and cells(session, freed) == []
    task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "visit_cancelled_with_procedure")).one()
    assert task.patient_id == world.patient.id
    assert bookings_tick(world.settings).cancelled == 0


def test_a_named_calendar_file_that_is_missing_is_an_error(session: Session, world: World,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = use_calendar(monkeypatch, tmp_path / "nowhere.yaml")
    scope = scopes.load(session, settings, patient=world.patient)
    assert scope.calendar is None and "nowhere.yaml: no such file (AFTERCARE_CALENDAR_FILE)" in (
        scope.calendar_problem or "")
    with pytest.raises(ConflictError, match="the clinic calendar cannot be used: .*nowhere.yaml: no such file"):
        scope.need_calendar()
