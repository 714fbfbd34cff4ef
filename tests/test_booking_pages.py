"""The booking web pages: the patient's signed link (email offer -> page -> booked, .ics, move, cancel) and
the staff pages (calendar, booking for a patient, move, cancel, attended/no-show, the physician's .ics feed).

Offers and confirmations go through the real dispatcher to the fake SendGrid; .ics files are parsed back
with the `icalendar` library. SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from aftercare.bookings import notify, offers, page, service
from aftercare.bookings import scope as scopes
from aftercare.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    BookingOffer,
    Channel,
    CoordinatorTask,
    OfferStatus,
    Touchpoint,
    TouchpointStatus,
    VisitMode,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.booking_helpers import World, make_world, only_due, use_calendar, write_calendar
from tests.dispatch_helpers import midday_zone
from tests.factories import make_staff
from tests.fakes import FakeProviders
from tests.survey_helpers import dispatch
from tests.web_helpers import csrf_from, page_csrf, sign_in

EMAIL = "ana@example.org"
LINK = re.compile(r"https://aftercare\.example/b/([A-Za-z0-9_-]{32})")


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    yield use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    get_settings.cache_clear()


@pytest.fixture
def world(session: Session, app_settings: Settings) -> World:
    registry = ProtocolRegistry.from_dir(app_settings.config_dir / "protocols")
    return make_world(session, app_settings, registry, zone=midday_zone(), preferred="email", email=EMAIL)


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), base_url="https://testserver") as test_client:  # Secure cookies
        yield test_client


def count(session: Session, model: type[SQLModel]) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def emailed_offer(session: Session, world: World, fake: FakeProviders, key: str = "visit_2w_offer") -> tuple[
        BookingOffer, str]:
    only_due(session, world.procedure, key)
    assert dispatch(world.settings).as_dict()["sent"] == 1
    [mail] = [m for m in fake.sent_email if m.to == [EMAIL]]
    match = LINK.search(mail.text or "")
    assert match, mail.text
    session.expire_all()
    offer = session.exec(select(BookingOffer).where(BookingOffer.patient_id == world.patient.id)).one()
    return offer, match.group(1)


def nonce_of(html: str) -> str:
    match = re.search(r'name="nonce" value="([0-9a-f]{32})"', html)
    assert match, "no nonce on the page"
    return match.group(1)


def choose(client: TestClient, token: str, value: str) -> str:
    nonce = nonce_of(client.get(f"/b/{token}").text)
    response = client.post(f"/b/{token}", data={"slot": value, "nonce": nonce}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


# -- the patient's page ---------------------------------------------------------------------------


def test_email_offer_page_booking_and_ics(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer, token = emailed_offer(session, world, fake_providers)
    [mail] = fake_providers.sent_email
    assert "It is time to book your follow-up visit (by video or phone)" in (mail.text or "")
    shown_times = [f"- {s}" for s in notify.slot_labels(offers.slots_of(offer), world.patient)]
    assert len(shown_times) == 3 and all(line in (mail.text or "").splitlines() for line in shown_times)
    before = (count(session, Appointment), count(session, AuditEvent))

    shown = client.get(f"/b/{token}")
    client.get(f"/b/{token}")  # a link preview, twice: nothing changes

    assert shown.status_code == 200 and '<html lang="en">' in shown.text
    assert "Book your follow-up visit" in shown.text and "(by video)" in shown.text
    assert shown.headers["cache-control"] == "no-store" and shown.headers["x-frame-options"] == "DENY"
    values = re.findall(r'name="slot"[^>]*value="([^"]+)"', shown.text)
    first = offers.slots_of(offer)[0]
    assert page.value_of(first) in values and len(values) > 3  # every open time in the window, not only three
    session.expire_all()
    assert (count(session, Appointment), count(session, AuditEvent)) == before

    assert choose(client, token, page.value_of(first)) == f"/b/{token}?done=booked"

    [visit] = session.exec(select(Appointment)).all()
    assert (visit.starts_at, visit.mode, visit.source) == (first.starts_at, VisitMode.video, "web")
    booked = client.get(f"/b/{token}?done=booked")
    assert "Your visit is booked" in booked.text and f"https://meet.example.org/test-{visit.video_room}" in booked.text
    ics = client.get(f"/b/{token}/visit.ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    [event] = Calendar.from_ical(ics.content).walk("VEVENT")
    assert event.decoded("dtstart") == visit.starts_at and event.decoded("dtend") == visit.ends_at
    assert str(event.get("url")) == f"https://meet.example.org/test-{visit.video_room}"
    assert str(event.get("summary")) == "Follow-up visit (by video) - Clínica Demo Los Cabos"

    # The confirmation email carries the .ics invite (its UID is the visit's) and the page link.
    assert dispatch(world.settings).as_dict()["sent"] == 1
    confirmation = fake_providers.sent_email[-1]
    assert confirmation.subject == "Clínica Demo Los Cabos: your follow-up visit is booked"
    assert f"/b/{token}" in (confirmation.text or "") and visit.video_room in (confirmation.text or "")
    [attachment] = confirmation.payload["attachments"]
    assert (attachment["filename"], attachment["type"]) == ("visit.ics", "text/calendar")
    sent_ics = Calendar.from_ical(base64.b64decode(attachment["content"]))
    [sent_event] = sent_ics.walk("VEVENT")
    assert str(sent_ics.get("method")) == "PUBLISH" and str(sent_event.get("status")) == "CONFIRMED"
    assert sent_event.decoded("dtstart") == visit.starts_at and str(sent_event.get("uid")) == str(event.get("uid"))


def test_links_that_do_not_work_get_a_clear_page(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer, token = emailed_offer(session, world, fake_providers)

    assert client.get("/b/not-a-token").status_code == 404
    for junk in ("ñ🙂" * 5, "%00", "a" * 80, "..%2F..%2Fetc", "A" * 32):
        assert client.get(f"/b/{junk}").status_code in (404, 422), junk
        assert client.post(f"/b/{junk}/cancel", data={"nonce": "ñ"}).status_code in (404, 422), junk
    assert client.get("/b/" + "a" * 200).status_code == 422
    assert client.get("/calendar/ñ.ics").status_code == 404
    tampered = client.get(f"/b/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}")
    assert tampered.status_code == 404 and "This link is not valid" in tampered.text
    offer.expires_at = utcnow() - timedelta(minutes=1)
    session.add(offer)
    session.commit()
    expired = client.get(f"/b/{token}")
    assert expired.status_code == 410 and "This booking link can no longer be used" in expired.text
    assert "+52 624 123 4567" in expired.text or "624 123 4567" in expired.text
    from aftercare.bookings import tokens

    gone = client.post(f"/b/{token}", data={"slot": page.value_of(offers.slots_of(offer)[0]),
                                            "nonce": tokens.form_nonce(offer, world.settings)}, follow_redirects=True)
    assert gone.status_code == 410 and count(session, Appointment) == 0


def test_a_forged_or_taken_time_books_nothing(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders, app_settings: Settings,
) -> None:
    offer, token = emailed_offer(session, world, fake_providers)
    night = offers.slots_of(offer)[0].starts_at.replace(hour=9, minute=0)  # 02:00 in San José del Cabo
    forged = f"{night.strftime('%Y%m%dT%H%MZ')}.{world.dr_a.id}"

    assert choose(client, token, forged) == f"/b/{token}?done=taken"
    assert count(session, Appointment) == 0

    first = offers.slots_of(offer)[0]
    other = make_world(session, app_settings, ProtocolRegistry.from_dir(app_settings.config_dir / "protocols"),
                       external_id="PROC-7", phone="+14165550177", email="o@example.org", clinic=world.clinic,
                       doctors=(world.dr_a, world.dr_b))
    nonce = nonce_of(client.get(f"/b/{token}").text)  # the page still offers `first`
    service.book(session, app_settings, patient_id=other.patient.id or 0, physician_id=first.physician_id,
                 starts_at=first.starts_at, mode=VisitMode.video, visit="visit_2w", procedure_id=other.procedure.id,
                 actor="staff:1")
    session.commit()

    response = client.post(f"/b/{token}", data={"slot": page.value_of(first), "nonce": nonce})

    assert "that time was just taken" in response.text and page.value_of(first) not in response.text
    assert session.exec(select(Appointment).where(Appointment.patient_id == world.patient.id)).all() == []
    assert client.post(f"/b/{token}", data={"slot": page.value_of(first)}).status_code == 403  # no nonce
    for forged in ("0" * 32, "ñ" * 32):
        assert client.post(f"/b/{token}", data={"slot": page.value_of(first), "nonce": forged}).status_code == 403
    assert client.post(f"/b/{token}", data={"slot": "ñ🙂", "nonce": nonce}, follow_redirects=False).status_code == 303


def test_move_and_cancel_on_the_page(
    client: TestClient, session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer, token = emailed_offer(session, world, fake_providers)
    choose(client, token, page.value_of(offers.slots_of(offer)[0]))
    shown = client.get(f"/b/{token}")
    values = re.findall(r'name="slot"[^>]*value="([^"]+)"', shown.text)
    assert "Choose another time" in shown.text and values

    nonce = nonce_of(shown.text)
    moved = client.post(f"/b/{token}/move", data={"slot": values[-1], "nonce": nonce}, follow_redirects=False)

    assert moved.headers["location"] == f"/b/{token}?done=moved"
    session.expire_all()
    current = session.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)).one()
    assert page.value_of(service.Slot(current.starts_at, current.physician_id, 20)) == values[-1]
    assert current.replaces_id is not None and current.sequence == 1
    assert "Your visit is booked" in client.get(f"/b/{token}").text  # the link follows the moved visit

    cancelled = client.post(f"/b/{token}/cancel", data={"nonce": nonce}, follow_redirects=True)

    assert "Your visit is cancelled" in cancelled.text
    session.expire_all()
    assert session.get(Appointment, current.id).status == AppointmentStatus.cancelled  # type: ignore[union-attr]
    assert session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "visit_cancelled_by_patient")).one()
    notice = session.exec(select(Touchpoint).where(col(Touchpoint.key) == f"booking_{current.id}_cancelled")).one()
    assert notice.status == TouchpointStatus.scheduled
    assert dispatch(world.settings).as_dict()["sent"] >= 1
    mail = [m for m in fake_providers.sent_email if "cancelled" in m.subject][-1]
    [cancel_event] = Calendar.from_ical(base64.b64decode(mail.payload["attachments"][0]["content"])).walk("VEVENT")
    assert str(cancel_event.get("status")) == "CANCELLED"


def test_the_page_speaks_spanish_and_shows_clinic_time_when_zones_differ(
    client: TestClient, session: Session, app_settings: Settings, fake_providers: FakeProviders,
) -> None:
    world = make_world(session, app_settings, ProtocolRegistry.from_dir(app_settings.config_dir / "protocols"),
                       zone="America/Toronto", language="es", preferred="email", email=EMAIL)
    scope = scopes.load(session, app_settings, patient=world.patient, procedure=world.procedure)
    offer = offers.make_offer(session, scope, visit="visit_6w", mode=VisitMode.in_person,
                              target=utcnow() + timedelta(days=10), channel=Channel.email, now=utcnow())
    session.commit()
    from aftercare.bookings import tokens

    shown = client.get(f"/b/{tokens.offer_token(offer, app_settings)}")

    assert '<html lang="es">' in shown.text and "Agende su cita de seguimiento" in shown.text
    assert "(presencial)" in shown.text and re.search(r"\(E[SD]T\)", shown.text)
    assert "en la clínica" in shown.text  # Toronto is an hour or two ahead of San José del Cabo


# -- staff pages ----------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client: TestClient, session: Session, world: World) -> TestClient:
    coordinator = make_staff(session, world.clinic, name="Carla Coordinator")
    sign_in(client, coordinator.email)
    return client


def test_staff_book_list_move_cancel_and_mark(staff_client: TestClient, session: Session, world: World) -> None:
    client = staff_client
    patient_page = client.get(f"/visits/patient/{world.patient.id}?visit={world.procedure.id}:visit_6w")
    assert patient_page.status_code == 200 and "6-week follow-up" in patient_page.text
    values = re.findall(r'name="slot" value="([^"]+)"', patient_page.text)
    assert values

    booked = client.post(f"/visits/patient/{world.patient.id}/book", follow_redirects=False, data={
        "slot": values[0], "visit": f"{world.procedure.id}:visit_6w", "mode": "in_person",
        "csrf_token": csrf_from(patient_page.text)})

    assert booked.status_code == 303
    appointment = session.exec(select(Appointment)).one()
    assert booked.headers["location"] == f"/visits/{appointment.id}"
    assert appointment.visit == "visit_6w" and appointment.source == "staff"
    day = appointment.starts_at.astimezone(ZoneInfo(world.clinic.timezone)).date()
    listing = client.get(f"/visits?start={day.isoformat()}&days=1")
    assert f'/visits/{appointment.id}"' in listing.text and "López-PROC-1" in listing.text
    assert "6-week follow-up" in listing.text
    twice = client.post(f"/visits/patient/{world.patient.id}/book", follow_redirects=True, data={
        "slot": values[1], "visit": f"{world.procedure.id}:visit_6w", "mode": "in_person",
        "csrf_token": csrf_from(patient_page.text)})
    assert "Not booked: this patient already has the visit_6w visit booked" in twice.text

    detail = client.get(f"/visits/{appointment.id}")
    move_values = re.findall(r'name="slot" value="([^"]+)"', detail.text)
    moved = client.post(f"/visits/{appointment.id}/move", data={"slot": move_values[-1],
                                                                 "csrf_token": csrf_from(detail.text)})
    assert "Visit moved" in moved.text
    session.expire_all()
    current = session.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)).one()
    assert current.replaces_id == appointment.id

    early = client.post(f"/visits/{current.id}/mark", data={"status": "attended", "csrf_token": csrf_from(moved.text)})
    assert "Not marked: the visit has not started yet" in early.text
    no_reason = client.post(f"/visits/{current.id}/cancel", data={"reason": "", "csrf_token": csrf_from(early.text)})
    assert "Not cancelled: reason: say why the visit is cancelled" in no_reason.text
    done = client.post(f"/visits/{current.id}/cancel", data={"reason": "patient unwell",
                                                             "csrf_token": csrf_from(no_reason.text)})
    assert "Visit cancelled" in done.text
    session.expire_all()
    assert session.get(Appointment, current.id).status == AppointmentStatus.cancelled  # type: ignore[union-attr]

    current.starts_at = utcnow() - timedelta(hours=1)  # a visit that has happened
    current.status = AppointmentStatus.booked
    session.add(current)
    session.commit()
    marked = client.post(f"/visits/{current.id}/mark", data={"status": "no_show", "csrf_token": csrf_from(done.text)})
    assert "Marked no-show" in marked.text
    assert client.get("/visits/999999").status_code == 404


def test_a_forged_staff_slot_is_refused(staff_client: TestClient, session: Session, world: World) -> None:
    patient_page = staff_client.get(f"/visits/patient/{world.patient.id}")
    bad = staff_client.post(f"/visits/patient/{world.patient.id}/book", data={
        "slot": "yesterday", "visit": f"{world.procedure.id}:visit_6w", "mode": "in_person",
        "csrf_token": csrf_from(patient_page.text)})
    assert "Not booked: slot: choose one of the times listed" in bad.text
    past = (utcnow() - timedelta(days=1)).strftime("%Y%m%dT%H%MZ")
    late = staff_client.post(f"/visits/patient/{world.patient.id}/book", data={
        "slot": f"{past}.{world.dr_a.id}", "visit": f"{world.procedure.id}:visit_6w", "mode": "in_person",
        "csrf_token": csrf_from(bad.text)})
    assert "Not booked: starts_at: is in the past" in late.text
    assert count(session, Appointment) == 0
    assert staff_client.get("/visits?start=2026-13-40").status_code == 422


def test_physician_calendar_feed(
    client: TestClient, session: Session, world: World, app_settings: Settings,
) -> None:
    sign_in(client, world.dr_a.email)
    appointment = service.book_urgent_visit(session, patient_id=world.patient.id or 0,
                                            physician_id=world.dr_a.id or 0, actor="staff:1", reason="hot knee")
    session.commit()
    mine = client.get("/visits")
    assert "Urgent visit" in mine.text  # a physician sees their own calendar by default

    page_ = client.post("/visits/feed", data={"csrf_token": page_csrf(client, "/visits/feed")})
    url = re.search(r'value="(https://aftercare\.example/calendar/(cal_[A-Za-z0-9_-]+)\.ics)"', page_.text)
    assert url, page_.text
    feed = client.get(f"/calendar/{url.group(2)}.ics")

    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(feed.content)
    [event] = calendar.walk("VEVENT")
    assert str(event.get("summary")) == f"Follow-up #{appointment.id} (in person)"
    assert event.decoded("dtstart") == appointment.starts_at
    assert world.patient.last_name not in feed.text and "López" not in feed.text  # no patient names
    assert "hot knee" not in feed.text

    client.post("/visits/feed", data={"action": "revoke", "csrf_token": page_csrf(client, "/visits/feed")})
    assert client.get(f"/calendar/{url.group(2)}.ics").status_code == 404
    assert client.get("/calendar/cal_nope.ics").status_code == 404


def test_pages_need_a_sign_in(client: TestClient, world: World) -> None:
    for path in ("/visits", f"/visits/patient/{world.patient.id}", "/visits/1", "/visits/feed"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path


def test_offers_expire_then_are_offered_once_more_then_go_to_the_coordinator(
    session: Session, world: World, fake_providers: FakeProviders,
) -> None:
    offer, _ = emailed_offer(session, world, fake_providers)
    later = datetime.now(UTC) + timedelta(hours=49)

    report = offers.sweep(session, world.settings, now=later)
    session.commit()

    assert (report.expired, report.reoffered, report.tasks) == (1, 1, 0)
    session.expire_all()
    assert session.get(BookingOffer, offer.id).status == OfferStatus.expired  # type: ignore[union-attr]
    again = session.exec(select(Touchpoint).where(Touchpoint.key == "visit_2w_offer2")).one()
    assert again.payload["round"] == 2 and again.status == TouchpointStatus.scheduled
    assert dispatch(world.settings, clock=lambda: later + timedelta(minutes=1)).as_dict()["sent"] == 1
    session.expire_all()
    second = session.exec(select(BookingOffer).where(BookingOffer.touchpoint_id == again.id)).one()
    assert second.round == 2 and len(fake_providers.sent_email) == 2

    report = offers.sweep(session, world.settings, now=later + timedelta(hours=49))
    session.commit()

    assert (report.expired, report.reoffered, report.tasks) == (1, 0, 1)
    task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "booking_no_answer")).one()
    assert "after 2 offer(s)" in (task.detail or "")
    assert offers.sweep(session, world.settings, now=later + timedelta(hours=99)).expired == 0

