"""The patient timeline shows each survey: answered touchpoints, the answers as counted (with the raw text) and
the scores with their instrument version; a missed one says whether it was received."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from aftercare.models import Clinic, Touchpoint, TouchpointKind, TouchpointStatus
from aftercare.settings import Settings
from aftercare.surveys import items, store
from aftercare.surveys.responses import ensure_response
from aftercare.surveys.service import tick
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from aftercare.web.timeline import label
from tests.dispatch_helpers import make_patient, make_procedure
from tests.factories import make_clinic, make_staff
from tests.survey_helpers import snapshot, survey_touchpoint
from tests.web_helpers import sign_in

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # pages: see test_web_pages


@pytest.fixture
def clinic(session: Session, settings: Settings) -> Clinic:
    clinic = make_clinic(session)
    snapshot(session, settings)
    return clinic


@pytest.fixture
def client(settings: Settings, session: Session, clinic: Clinic) -> Iterator[TestClient]:
    coordinator = make_staff(session, clinic)
    with TestClient(create_app(settings)) as test_client:
        sign_in(test_client, coordinator.email)
        yield test_client


@SQLITE_ONLY
def test_the_timeline_shows_answers_scores_and_misses(
    client: TestClient, settings: Settings, session: Session, clinic: Clinic
) -> None:
    patient = make_patient(session, clinic, language="en")
    procedure = make_procedure(session, clinic, patient)
    now = utcnow()
    answered = survey_touchpoint(session, clinic, patient, key="checkin_d3", procedure=procedure)
    answered.status, answered.sent_at = TouchpointStatus.sent, now
    session.add(answered)
    response = ensure_response(session, answered)
    assert response is not None
    registry = items.instrument_registry(settings.config_dir)
    questions = {si.item.id: si for si in items.items_for(registry, response, {}, None)}
    for item_id, raw, value in [("quick_status", "0", "all_fine"), ("nrs_now", "pain is about 4", 4),
                                ("temp_c", "101 F", 38.3), ("fever_or_chills_reported", "mmm", None)]:
        store.record_answer(session, response, questions[item_id], raw=raw, value=value, outcome="ok",
                            reason="number", counts=True, source="sms", now=now)
    store.complete(session, response, settings=settings, now=now)
    missed = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_wk6", survey="wk6",
                               procedure=procedure, due=now - timedelta(days=8), window=timedelta(days=7))
    missed.status, missed.cancel_reason = TouchpointStatus.skipped, "no consent for sms"
    session.add(missed)
    session.commit()
    tick(settings, send=False)

    page = html.unescape(client.get(f"/patients/{patient.id}").text)
    assert "Surveys <small>(2)</small>" in page
    assert "Day 3 check-in</strong> · <span class=\"status\">answered</span>" in page
    assert "How bad is your knee pain right now?" in page and "pain is about 4" in page
    assert "38.3 °C (100.9 °F)" in page and "not clear (kept as typed)" in page and "mmm" in page
    assert "<code>nrs_now</code> v1.0.0" in page and "<code>redflag_checkin</code> v1.0.0" in page
    assert "Knee pain now (0-10)" in page
    assert "6-week outcome survey</strong> · <span class=\"status\">missed — not received (SMS skipped: no consent " \
           "for sms)" in page
    session.expire_all()
    assert session.get(Touchpoint, answered.id).status == TouchpointStatus.answered  # type: ignore[union-attr]
    assert page.count(">answered<") >= 2  # the survey and the touchpoint row


def test_reminder_touchpoints_have_readable_labels() -> None:
    assert label("checkin_d3_reminder1") == "Reminder 1: Day 3 check-in"
    assert label("survey_mo6_reminder2") == "Reminder 2: 6-month outcome survey"
