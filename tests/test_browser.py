"""One real browser run: a coordinator signs in, records a procedure through the form and sees the plan."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from aftercare.models import Role
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, serve
from tests.factories import make_clinic, make_staff
from tests.web_helpers import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (Debian package `chromium`)"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_coordinator_records_a_procedure_and_sees_the_plan(
    settings: Settings, session: Session, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    clinic = make_clinic(session)
    coordinator = make_staff(session, clinic, name="Carla Coordinator")
    make_staff(session, clinic, Role.physician, name="Dr. Rosa Díaz", email="rosa@example.org")
    when = (utcnow() + timedelta(days=5)).astimezone(ZoneInfo(clinic.timezone))

    with serve(create_app(settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base_url + "/")
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        page.get_by_label("Email").fill(coordinator.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=re.compile("Patients"))).to_be_visible()

        page.get_by_role("link", name="Record procedure").click()
        page.get_by_label("First name").fill("Ana")
        page.get_by_label("Last name").fill("López")
        page.get_by_label("Mobile phone").fill("12345")
        page.get_by_label("Email", exact=True).fill("ana@example.org")
        page.get_by_label("Language").select_option("es")
        page.get_by_label("Time zone").fill("America/Toronto")
        page.get_by_label("Patient agrees to receive SMS messages").check()
        page.get_by_label("Procedure id").fill("BROWSER-1")
        page.get_by_label("Knee").select_option("left")
        page.get_by_label("Date and time of the procedure").fill(f"{when:%Y-%m-%d}T10:30")
        page.get_by_label("Treating physician").select_option(label="Dr. Rosa Díaz")
        page.get_by_label("Baseline pain").fill("6")
        page.get_by_role("button", name="Record procedure").click()

        # A bad phone number: the form comes back with the message beside the field and the input kept.
        expect(page.locator("#f-patient-phone-error")).to_contain_text("not a valid phone number")
        expect(page.get_by_label("First name")).to_have_value("Ana")
        expect(page.get_by_label("Patient agrees to receive SMS messages")).to_be_checked()
        page.get_by_label("Mobile phone").fill("+1 416 555 0199")
        page.get_by_role("button", name="Record procedure").click()

        expect(page).to_have_url(re.compile(r"/patients/\d+$"))
        expect(page.get_by_role("heading", name="Ana López")).to_be_visible()
        expect(page.get_by_text("Procedure BROWSER-1 recorded.")).to_be_visible()
        day1 = page.get_by_role("row").filter(has_text="Day 1 check-in")
        expect(day1).to_have_count(1)
        expect(day1).to_contain_text("checkin_d1")
        expect(day1).to_contain_text("scheduled")
        expect(page.get_by_role("row").filter(has_text="Discharge guidance")).to_have_count(2)  # SMS and email
        expect(page.get_by_text("Dr. Rosa Díaz")).to_be_visible()
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())
        phone.goto(page.url)
        expect(phone.get_by_text("Day 1 check-in")).to_be_visible()
        phone.screenshot(path=str(tmp_path / "timeline-phone.png"))
        browser.close()
    print(f"screenshots: {tmp_path}")
