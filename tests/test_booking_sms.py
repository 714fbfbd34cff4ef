"""Booking by SMS through the SIGNED Twilio webhook, the real dispatcher and the fake Twilio (both databases).

The offer is sent by the dispatcher, the patient's replies are posted to /webhooks/twilio/sms, and every
text the patient gets is read back from the fake Twilio: offer, confirm, remind, reschedule, cancel; and
the bad cases (a time taken meanwhile, a late answer, nonsense, a cancelled procedure, an opted-out patient).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from aftercare.bookings import offers
from aftercare.bookings.conversation import read
from aftercare.bookings.slots import Slot
from aftercare.models import (
    Appointment,
    AppointmentStatus,
    BookingOffer,
    Conversation,
    OfferStatus,
    ProcedureStatus,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.booking_helpers import World, make_world, only_due, use_calendar, write_calendar
from tests.dispatch_helpers import midday_zone
from tests.fakes import FakeProviders
from tests.survey_helpers import dispatch, post_sms, tasks_of, texts_to

PHONE = "+14165550142"


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    get_settings.cache_clear()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def world(session: Session, app_settings: Settings) -> World:
    registry = ProtocolRegistry.from_dir(app_settings.config_dir / "protocols")
    return make_world(session, app_settings, registry, zone=midday_zone(), phone=PHONE)


def text(client: TestClient, fake: FakeProviders, body: str) -> str | None:
    """Text `body` from the patient; returns what the patient got back (None: nothing)."""
    before = len(texts_to(fake, PHONE))
    response = post_sms(client, PHONE, body)
    assert response.status_code == 200, response.text
    after = texts_to(fake, PHONE)
    assert len(after) - before <= 1, after[before:]
    return after[-1] if len(after) > before else None


def send_offer(session: Session, world: World, fake: FakeProviders, key: str = "visit_2w_offer") -> BookingOffer:
    only_due(session, world.procedure, key)
    report = dispatch(world.settings)
    assert report.as_dict()["sent"] == 1, report.summary()
    session.expire_all()
    tp = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == world.procedure.id,
                                               Touchpoint.key == key)).one()
    assert tp.status == TouchpointStatus.sent
    return session.exec(select(BookingOffer).where(BookingOffer.touchpoint_id == tp.id)).one()


def labels(offer: BookingOffer, world: World) -> list[str]:
    from aftercare.bookings.texts import slot_label

    return [slot_label(s.starts_at, world.patient.timezone, "en") for s in offers.slots_of(offer)]


def booked(session: Session, world: World) -> list[Appointment]:
    session.expire_all()
    return list(session.exec(select(Appointment).where(Appointment.patient_id == world.patient.id,
                                                       Appointment.status == AppointmentStatus.booked)))


def pointer(session: Session, world: World) -> Conversation | None:
    session.expire_all()
    return session.get(Conversation, world.patient.id)


def send_due(session: Session, world: World, key_part: str) -> None:
    """Dispatch the booking message whose key contains `key_part`, as if its time had come (a reminder the
    patient's quiet hours would skip at this test's hour is sent anyway)."""
    session.expire_all()
    now = utcnow()
    rows = session.exec(select(Touchpoint).where(
        col(Touchpoint.key).contains(key_part),
        col(Touchpoint.status).in_((TouchpointStatus.scheduled, TouchpointStatus.skipped)),
    )).all()
    assert rows, key_part
    for tp in rows:
        tp.status, tp.cancel_reason = TouchpointStatus.scheduled, None
        tp.due_at, tp.window_end = now - timedelta(minutes=1), now + timedelta(hours=1)
        session.add(tp)
    session.commit()
    assert dispatch(world.settings).as_dict()["sent"] == len(rows)


# -- the whole cycle ----------------------------------------------------------------------------


def test_offer_confirm_remind_reschedule_and_cancel_by_sms(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer = send_offer(session, world, fake_providers)

    [sent] = texts_to(fake_providers, PHONE)
    times = labels(offer, world)
    assert len(times) == 3 and offer.status == OfferStatus.open
    assert "your follow-up (by video or phone). Reply with a number: " in sent
    assert f"1) {times[0]} 2) {times[1]} 3) {times[2]} Reply STOP to opt out" in sent
    assert pointer(session, world).kind == "booking"  # type: ignore[union-attr]
    assert not any(w in sent.lower() for w in ("knee", "stem", "injection"))

    answer = text(client, fake_providers, "2")

    [visit] = booked(session, world)
    chosen = offers.slots_of(offer)[1]
    assert (visit.starts_at, visit.physician_id, visit.mode.value) == (chosen.starts_at, chosen.physician_id, "video")
    assert answer is not None and "your follow-up (by video) is booked:" in answer
    assert f"Video link: https://meet.example.org/test-{visit.video_room}" in answer
    assert "To change it reply R, to cancel reply C" in answer
    assert pointer(session, world) is None  # the booking conversation is over

    send_due(session, world, f"booking_{visit.id}_reminder_day_before")
    reminder = texts_to(fake_providers, PHONE)[-1]
    assert "reminder: follow-up (by video)" in reminder and visit.video_room in reminder  # type: ignore[operator]
    assert pointer(session, world).kind == "booking"  # type: ignore[union-attr]

    new_times = text(client, fake_providers, "can we move it")

    assert new_times is not None and new_times.startswith("Clinica Demo Los Cabos: Sure. Open times: 1) ")
    session.expire_all()
    rebook = session.exec(select(BookingOffer).where(BookingOffer.reschedules_id == visit.id)).one()
    assert visit.starts_at not in {s.starts_at for s in offers.slots_of(rebook)}
    assert [a.id for a in booked(session, world)] == [visit.id]  # the visit stands until a new time is chosen

    moved = text(client, fake_providers, "1")

    [now_booked] = booked(session, world)
    assert now_booked.replaces_id == visit.id and now_booked.starts_at == offers.slots_of(rebook)[0].starts_at
    assert moved is not None and "your follow-up (by video) was moved to" in moved
    session.refresh(visit)
    assert visit.status == AppointmentStatus.moved
    old_reminders = session.exec(select(Touchpoint).where(col(Touchpoint.key).startswith(f"booking_{visit.id}_")))
    assert TouchpointStatus.scheduled not in {t.status for t in old_reminders}  # withdrawn, sent or skipped

    send_due(session, world, f"booking_{now_booked.id}_reminder_same_day")
    cancelled = text(client, fake_providers, "C")

    assert cancelled is not None and "is cancelled. To book again, call" in cancelled
    assert booked(session, world) == []
    assert [t.kind for t in tasks_of(session, "visit_cancelled_by_patient")] == ["visit_cancelled_by_patient"]


# -- bad input ------------------------------------------------------------------------------------


def test_a_time_taken_between_offer_and_reply_gets_new_times(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders, app_settings: Settings,
) -> None:
    offer = send_offer(session, world, fake_providers)
    first = offers.slots_of(offer)[0]
    other = make_world(session, app_settings, ProtocolRegistry.from_dir(app_settings.config_dir / "protocols"),
                       external_id="PROC-9", phone="+14165550143", email="z@example.org", clinic=world.clinic,
                       doctors=(world.dr_a, world.dr_b))
    from aftercare.bookings import service

    service.book(session, app_settings, patient_id=other.patient.id or 0, physician_id=first.physician_id,
                 starts_at=first.starts_at, mode=offer.mode, visit="visit_2w", procedure_id=other.procedure.id,
                 actor="staff:1")
    session.commit()

    answer = text(client, fake_providers, "1")

    assert answer is not None and answer.startswith("Clinica Demo Los Cabos: Sorry, that time was just taken. Open")
    assert answer.endswith("Reply 1, 2 or 3, or call 624 123 4567. Reply STOP to opt out") or "Reply 1" in answer
    assert booked(session, world) == []
    session.expire_all()
    fresh = session.exec(select(BookingOffer).where(BookingOffer.patient_id == world.patient.id,
                                                    BookingOffer.status == OfferStatus.open)).one()
    assert first.starts_at not in {s.starts_at for s in offers.slots_of(fresh)}
    assert pointer(session, world).ref_id == fresh.id  # type: ignore[union-attr]

    assert "is booked" in (text(client, fake_providers, "3") or "")
    assert [a.starts_at for a in booked(session, world)] == [offers.slots_of(fresh)[2].starts_at]


def test_a_late_answer_gets_new_times_and_nonsense_one_clarification(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer = send_offer(session, world, fake_providers)

    clarify = text(client, fake_providers, "maybe")
    assert clarify is not None and "Sorry, we did not understand. Reply with the number of a time: 1) " in clarify
    assert text(client, fake_providers, "4") is None  # a second unclear reply goes to a person
    assert [t.title for t in tasks_of(session, "patient_reply")] == ["Patient wrote about an appointment"]

    session.expire_all()
    offer = session.get(BookingOffer, offer.id)
    assert offer is not None
    offer.expires_at = utcnow() - timedelta(minutes=1)
    session.add(offer)
    session.commit()

    late = text(client, fake_providers, "2")

    assert late is not None and late.startswith("Clinica Demo Los Cabos: That offer has ended. Open times: 1) ")
    assert booked(session, world) == []


def test_a_question_goes_to_a_person_and_the_offer_stays_open(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    send_offer(session, world, fake_providers)

    assert text(client, fake_providers, "Is the visit with the same doctor as last time?") is None

    assert len(tasks_of(session, "patient_reply")) == 1
    assert pointer(session, world).kind == "booking"  # type: ignore[union-attr]
    assert "is booked" in (text(client, fake_providers, "option 3 please") or "")


def test_a_cancelled_procedure_books_nothing(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    send_offer(session, world, fake_providers)
    world.procedure.status, world.procedure.cancel_reason = ProcedureStatus.cancelled, "patient moved away"
    session.add(world.procedure)
    session.commit()

    answer = text(client, fake_providers, "1")

    assert answer is not None and "Sorry, we cannot book this visit by text. To book, please call" in answer
    assert booked(session, world) == []
    assert len(tasks_of(session, "booking_reply_cancelled_procedure")) == 1


def test_an_opted_out_patient_is_not_booked_or_texted(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    send_offer(session, world, fake_providers)
    assert text(client, fake_providers, "STOP") is None  # Twilio confirms its own keyword

    assert text(client, fake_providers, "2") is None

    assert booked(session, world) == []
    [task] = tasks_of(session, "booking_reply_not_textable")
    assert "opted out" in (task.detail or "")


def test_declining_an_offer_closes_it(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer = send_offer(session, world, fake_providers)

    answer = text(client, fake_providers, "please cancel, I don't need it")

    assert answer is not None and "OK, no visit was booked. To book, please call" in answer
    session.expire_all()
    assert session.get(BookingOffer, offer.id).status == OfferStatus.closed  # type: ignore[union-attr]
    assert len(tasks_of(session, "visit_declined")) == 1


def test_spanish_offer_and_confirmation(
    client: TestClient, session: Session, app_settings: Settings, fake_providers: FakeProviders,
) -> None:
    world = make_world(session, app_settings, ProtocolRegistry.from_dir(app_settings.config_dir / "protocols"),
                       zone=midday_zone(), phone=PHONE, language="es")
    offer = send_offer(session, world, fake_providers, key="visit_6w_offer")
    [sent] = texts_to(fake_providers, PHONE)
    assert "Hola Ana, agende su cita de seguimiento (presencial). Responda con un numero: 1) " in sent

    answer = text(client, fake_providers, "la segunda")

    assert answer is not None and "su cita (presencial) quedo para el " in answer
    assert "Para cambiarla responda R, para cancelarla C" in answer
    assert booked(session, world)[0].starts_at == offers.slots_of(offer)[1].starts_at


# -- reading replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "number"),
    [
        ("2", "choice", 2), (" 2) ", "choice", 2), ("#3", "choice", 3), ("option 1 please", "choice", 1),
        ("Number 2, thanks!", "choice", 2), ("the second one", "choice", 2), ("I'll take 3", "choice", 3),
        ("dos", "choice", 2), ("la segunda por favor", "choice", 2), ("Opción 1", "choice", 1), ("1st", "choice", 1),
        ("R", "reschedule", None), ("r", "reschedule", None), ("can we move it", "reschedule", None),
        ("cambiar la cita", "reschedule", None), ("I can't make it, another day?", "reschedule", None),
        ("no puedo ir, otro día", "reschedule", None), ("C", "cancel", None), ("cancel it", "cancel", None),
        ("please cancel my appointment", "cancel", None), ("cancelar la cita", "cancel", None),
        ("Cancela mi cita por favor", "cancel", None), ("4", "unclear", None), ("1 or 2", "unclear", None),
        ("ok", "unclear", None), ("", "unclear", None), ("🙂", "unclear", None),
        ("my knee is very swollen and red today", "other", None), ("what time is it in Cabo?", "other", None),
    ],
)
def test_reading_booking_replies(body: str, kind: str, number: int | None) -> None:
    assert read(body) == type(read(""))(kind, number)


def test_slots_round_trip() -> None:
    slot = Slot(utcnow().replace(microsecond=0), 7, 30)
    assert Slot.from_json(slot.as_json()) == slot


# -- sharing the inbound path with surveys ---------------------------------------------------------


def make_due(session: Session, world: World, key: str) -> None:
    session.expire_all()
    tp = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == world.procedure.id,
                                               Touchpoint.key == key)).one()
    now = utcnow()
    tp.status, tp.cancel_reason = TouchpointStatus.scheduled, None
    tp.due_at, tp.window_end = now - timedelta(minutes=1), max(tp.window_end, now + timedelta(hours=4))
    session.add(tp)
    session.commit()


def survey_answers(session: Session, raw: str) -> list[object]:
    from aftercare.models import SurveyAnswer

    session.expire_all()
    return list(session.exec(select(SurveyAnswer).where(SurveyAnswer.raw_text == raw)))


def test_a_2_answers_the_check_in_sent_after_the_offer(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer = send_offer(session, world, fake_providers)
    make_due(session, world, "checkin_d7")
    assert dispatch(world.settings).as_dict()["sent"] == 1  # the check-in invitation goes out after the offer

    text(client, fake_providers, "2")

    assert booked(session, world) == [] and survey_answers(session, "2")
    assert pointer(session, world).kind == "survey"  # type: ignore[union-attr]
    session.expire_all()
    assert session.get(BookingOffer, offer.id).status == OfferStatus.open  # type: ignore[union-attr]


def test_a_2_answers_the_offer_sent_after_the_check_in(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    only_due(session, world.procedure, "checkin_d7")
    assert dispatch(world.settings).as_dict()["sent"] == 1
    text(client, fake_providers, "0")  # the check-in conversation is under way (all fine)
    make_due(session, world, "visit_2w_offer")
    assert dispatch(world.settings).as_dict()["sent"] == 1

    answer = text(client, fake_providers, "2")

    assert answer is not None and "is booked" in answer
    assert len(booked(session, world)) == 1 and survey_answers(session, "2") == []


def test_the_ticker_expires_offers_and_ends_finished_booking_conversations(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    from aftercare.bookings.tick import bookings_tick

    send_offer(session, world, fake_providers)
    assert not any(bookings_tick(world.settings).as_dict().values())

    report = bookings_tick(world.settings, now=utcnow() + timedelta(hours=49))

    assert (report.expired, report.reoffered) == (1, 1)
    assert pointer(session, world) is None  # an expired offer is no longer the conversation


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_no_reply_crashes_the_reader(body: str) -> None:
    reading = read(body)
    assert reading.kind in {"choice", "reschedule", "cancel", "unclear", "other"}
    assert (reading.number is not None) == (reading.kind == "choice")
    assert reading.number is None or 1 <= reading.number <= 3
