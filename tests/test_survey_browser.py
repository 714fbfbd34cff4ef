"""A web survey answered in headless Chromium on a phone-sized screen: open the emailed link, save part of it,
come back, finish it. Also the check-in form's conditional question, shown only after "yes"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from aftercare.models import Channel, SurveyScore, SurveyStatus, Touchpoint, TouchpointKind, TouchpointStatus
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, serve
from tests.dispatch_helpers import make_patient
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.survey_helpers import LINK, counting_answers, dispatch, response_of, snapshot, survey_touchpoint

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (Debian package `chromium`)"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),  # one browser run; the form's API is
]  # tested on both databases in test_survey_web.py
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


def emailed_path(session: Session, settings: Settings, fake: FakeProviders, kind: TouchpointKind) -> tuple[str, int]:
    clinic = make_clinic(session)
    snapshot(session, settings)
    patient = make_patient(session, clinic, language="en", preferred_channel=Channel.email)
    if kind == TouchpointKind.survey:
        tp = survey_touchpoint(session, clinic, patient, kind=kind, key="survey_wk6", survey="wk6",
                               channel=Channel.email, window=timedelta(days=7))
    else:
        tp = survey_touchpoint(session, clinic, patient, channel=Channel.email)
    dispatch(settings)
    [mail] = fake.sent_email
    found = LINK.search(mail.text or "")
    assert found is not None
    return f"/s/{found.group(1)}", tp.id or 0


def test_a_patient_answers_the_survey_on_a_phone_in_two_sittings(
    app_settings: Settings, session: Session, fake_providers: FakeProviders, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    path, tp_id = emailed_path(session, app_settings, fake_providers, TouchpointKind.survey)

    with serve(create_app(app_settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        page.goto(base_url + path)
        expect(page.get_by_role("heading", name="Your survey")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling

        page.locator("#q-nrs_pain").get_by_label("4", exact=True).check()
        page.locator("#q-koos_s6").get_by_label("Mild").check()
        page.get_by_role("button", name="Save and finish later").click()
        expect(page.get_by_role("status")).to_contain_text("Saved. You can finish later")

        page.goto(base_url + path)  # later, from the same link
        expect(page.locator("#q-koos_s6").get_by_label("Mild")).to_be_checked()
        page.get_by_role("button", name="Send my answers").click()  # not finished: told what is missing
        expect(page.get_by_role("alert").first).to_contain_text("Please check the questions marked below.")
        expect(page.locator("#q-koos_p2 .error")).to_have_text("Please answer this question.")
        for item, choice in [("koos_p2", "Moderate"), ("koos_p3", "None"), ("koos_p6", "Moderate"),
                             ("koos_p9", "Mild"), ("koos_a3", "Mild"), ("koos_a5", "Severe")]:
            page.locator(f"#q-{item}").get_by_label(choice, exact=True).check()
        page.locator("#q-pgic").get_by_label("Much better", exact=True).check()
        page.screenshot(path=str(tmp_path / "survey.png"), full_page=True)

        page.get_by_role("button", name="Send my answers").click()

        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("We have your answers")
        page.goto(base_url + path)
        expect(page.get_by_role("heading", name="Already answered")).to_be_visible()
        browser.close()

    session.expire_all()
    tp = session.get(Touchpoint, tp_id)
    assert tp is not None and tp.status == TouchpointStatus.answered
    response = response_of(session, tp)
    assert response.status == SurveyStatus.complete
    answers = counting_answers(session, response)
    assert answers["nrs_pain"] == 4 and answers["koos_a5"] == 3 and answers["pgic"] == 2
    koos = session.exec(select(SurveyScore).where(SurveyScore.instrument_id == "koos_jr")).one()
    assert koos.complete and koos.raw == 1 + 2 + 0 + 2 + 1 + 1 + 3


def test_the_temperature_question_appears_only_after_yes(
    app_settings: Settings, session: Session, fake_providers: FakeProviders
) -> None:
    from playwright.sync_api import expect, sync_playwright

    path, _ = emailed_path(session, app_settings, fake_providers, TouchpointKind.checkin)
    with serve(create_app(app_settings)) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        page.goto(base_url + path)
        expect(page.get_by_role("heading", name="Your check-in")).to_be_visible()
        temperature = page.locator("#q-temp_c")
        expect(temperature).to_be_hidden()
        page.locator("#q-fever_or_chills_reported").get_by_label("Yes").check()
        expect(temperature).to_be_visible()
        page.locator("#q-fever_or_chills_reported").get_by_label("No").check()
        expect(temperature).to_be_hidden()
        browser.close()
