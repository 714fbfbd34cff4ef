"""The review queue in a real browser: a physician works through flags; a coordinator can only follow them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from aftercare.models import (
    AuditEvent,
    Clinic,
    FlagDisposition,
    FlagStatus,
    FlagTier,
    Patient,
    Procedure,
    SurveyAnswer,
    SurveyResponse,
    TouchpointKind,
)
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, serve
from tests.flag_helpers import flags_of, make_flag, make_team, patient_with_procedure, triage_text, use_oncall
from tests.survey_helpers import survey_touchpoint
from tests.web_helpers import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (Debian package `chromium`)"),
]


@pytest.fixture
def app_settings(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_physician_works_the_review_queue(app_settings: Settings, session: Session, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    team = make_team(session)
    old, _ = patient_with_procedure(session, team.clinic, first_name="Olga", last_name="Review", days_ago=12)
    review = make_flag(session, old, tier=FlagTier.review, rules=["R7-fall"], reasons=["Fall or new injury"],
                       created_at=utcnow() - timedelta(days=3), sla_due_at=utcnow() - timedelta(hours=5),
                       next_escalation_at=None)
    sick, procedure = patient_with_procedure(session, team.clinic, first_name="Berta", last_name="Urgent",
                                             days_ago=4, language="en")
    _pain_answer(session, team.clinic, sick, procedure, 8)
    triage_text(session, app_settings, sick, "I can't breathe properly and my chest hurts")
    [emergency] = flags_of(session, sick)
    assert emergency.tier == FlagTier.emergency

    with serve(create_app(app_settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base_url + "/flags")
        page.get_by_label("Email").fill(team.primary.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=re.compile("Review queue"))).to_be_visible()

        rows = page.locator("table.flags tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("emergency")
        expect(rows.nth(0)).to_contain_text("Urgent, Berta")
        expect(rows.nth(0)).to_contain_text(re.compile(r"due in 1[45] min"))
        expect(rows.nth(1)).to_contain_text("Review, Olga")
        expect(rows.nth(1)).to_contain_text("overdue by 5 h")
        page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

        rows.nth(0).get_by_role("link", name=f"#{emergency.id}").click()
        expect(page.get_by_role("heading", name=re.compile(f"Flag #{emergency.id}"))).to_be_visible()
        expect(page.get_by_text("I can't breathe properly and my chest hurts").first).to_be_visible()
        expect(page.get_by_text("E1-breathing-chest")).to_be_visible()
        expect(page.locator("#chart-pain circle.point")).to_have_count(1)
        expect(page.locator("#chart-pain rect.mcid")).to_have_count(1)
        expect(page.get_by_role("link", name="Timeline of Berta Urgent")).to_have_attribute(
            "href", f"/patients/{sick.id}")
        expect(page.get_by_text("call the emergency number")).to_be_visible()  # the patient was told
        page.screenshot(path=str(tmp_path / "flag.png"), full_page=True)

        page.get_by_role("button", name="Acknowledge").click()
        expect(page.get_by_text(f"Flag #{emergency.id} acknowledged: pages stop.")).to_be_visible()
        expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
        page.get_by_label("Note", exact=True).fill("Called: she is on her way to the ER with her daughter.")
        page.get_by_role("button", name="Add note").click()
        expect(page.get_by_text("Called: she is on her way to the ER with her daughter.")).to_be_visible()
        page.get_by_label("Resolve as").select_option(FlagDisposition.sent_to_er.value)
        page.get_by_label("Resolution note").fill("Sent to the ER by phone.")
        page.get_by_role("button", name="Resolve").click()
        expect(page).to_have_url(re.compile(r"/flags$"))
        expect(page.get_by_text(f"Flag #{emergency.id} resolved.")).to_be_visible()
        expect(page.locator("table.flags tbody tr")).to_have_count(1)

        phone = browser.new_page(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())
        phone.goto(f"{base_url}/flags/{review.id}")
        expect(phone.locator("#chart-koos")).to_be_visible()
        phone.screenshot(path=str(tmp_path / "flag-phone.png"), full_page=True)
        browser.close()

    session.expire_all()
    resolved = flags_of(session, sick)[0]
    assert (resolved.status, resolved.disposition, resolved.resolved_by) == (
        FlagStatus.resolved, FlagDisposition.sent_to_er, team.primary.id)
    views = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.viewed")).all()
    assert {e.entity_id for e in views} == {emergency.id, review.id}
    print(f"screenshots: {tmp_path}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_coordinator_follows_flags_but_cannot_resolve_them(app_settings: Settings, session: Session) -> None:
    from playwright.sync_api import expect, sync_playwright

    team = make_team(session)
    patient, _ = patient_with_procedure(session, team.clinic)
    flag = make_flag(session, patient)
    with serve(create_app(app_settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{base_url}/flags/{flag.id}")
        page.get_by_label("Email").fill(team.coordinator.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=re.compile(f"Flag #{flag.id}"))).to_be_visible()
        expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
        expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
        page.get_by_label("Note", exact=True).fill("Husband called back: she is resting.")
        page.get_by_role("button", name="Add note").click()
        expect(page.get_by_text("Note added.")).to_be_visible()
        browser.close()
    session.expire_all()
    assert flags_of(session)[0].status == FlagStatus.open


def _pain_answer(session: Session, clinic: Clinic, patient: Patient, procedure: Procedure, value: int) -> None:
    """Yesterday's day-3 check-in answer: pain now `value`/10."""
    tp = survey_touchpoint(session, clinic, patient, key="checkin_d3", procedure=procedure)
    response = SurveyResponse(patient_id=tp.patient_id, procedure_id=tp.procedure_id, touchpoint_id=tp.id or 0,
                              touchpoint_key=tp.key, kind=TouchpointKind.checkin, survey_id="checkin",
                              channel=tp.channel, closes_at=utcnow() + timedelta(days=1))
    session.add(response)
    session.commit()
    session.add(SurveyAnswer(response_id=response.id or 0, item_id="nrs_now", instrument_id="nrs_now",
                             instrument_version="1.0.0", raw_text=str(value), value=value, outcome="ok",
                             reason="number", counts=True, source="sms", created_at=utcnow() - timedelta(days=1)))
    session.commit()
