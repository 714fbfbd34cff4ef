"""The patient's booking page in headless Chromium: open the emailed link on a phone, pick a time, book it,
see the video link and the calendar file, move the visit, then cancel it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from aftercare.bookings import offers, tokens
from aftercare.bookings import scope as scopes
from aftercare.models import Appointment, AppointmentStatus, Channel, VisitMode
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.booking_helpers import make_world, use_calendar, write_calendar
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, serve

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (Debian package `chromium`)"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_patient_books_moves_and_cancels_on_a_phone(
    settings: Settings, session: Session, registry: ProtocolRegistry, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    settings = use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    world = make_world(session, settings, registry, zone="America/Toronto", preferred="email")
    scope = scopes.load(session, settings, patient=world.patient, procedure=world.procedure)
    offer = offers.make_offer(session, scope, visit="visit_6mo", mode=VisitMode.video,
                              target=utcnow() + timedelta(days=12), channel=Channel.email, now=utcnow())
    session.commit()
    token = tokens.offer_token(offer, settings)
    first = offers.slots_of(offer)[0]

    with serve(create_app(settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        page.goto(f"{base_url}/b/{token}")
        expect(page.get_by_role("heading", name="Book your follow-up visit")).to_be_visible()
        expect(page.get_by_text(re.compile(r"Times are shown in your time zone \(E[SD]T\)"))).to_be_visible()
        assert page.locator('input[name="slot"]').count() > 3

        value = f"{first.starts_at.strftime('%Y%m%dT%H%MZ')}.{first.physician_id}"
        page.locator(f'label[for="{page.locator(f"input[value={value!r}]").get_attribute("id")}"]').click()
        page.get_by_role("button", name="Book this time").click()

        expect(page.get_by_role("heading", name="Your visit is booked")).to_be_visible()
        session.expire_all()
        visit = session.exec(select(Appointment)).one()
        assert visit.starts_at == first.starts_at and visit.source == "web"
        expect(page.get_by_role("link", name=f"https://meet.example.org/test-{visit.video_room}")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="Add to my calendar (.ics)").click()
        assert Path(download.value.path()).read_text(encoding="utf-8").startswith("BEGIN:VCALENDAR")

        page.locator("fieldset.times label").last.click()
        page.get_by_role("button", name="Move my visit to this time").click()
        expect(page.get_by_role("heading", name="Your visit is booked")).to_be_visible()
        session.expire_all()
        moved = session.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)).one()
        assert moved.replaces_id == visit.id and moved.starts_at != visit.starts_at

        page.get_by_role("button", name="Yes, cancel the visit").click()
        expect(page.get_by_role("heading", name="Your visit is cancelled")).to_be_visible()
        browser.close()

    session.expire_all()
    assert session.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)).all() == []
