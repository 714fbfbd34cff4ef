"""The review queue over the API: order and SLA timers, the flag's details, and what each action does.

SQLite and PostgreSQL; texts to the patient are read back from the fake Twilio.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from aftercare.models import (
    Appointment,
    AuditEvent,
    FlagTier,
    OutboundReply,
    SurveyAnswer,
    SurveyResponse,
    SurveyScore,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.factories import make_api_token
from tests.fakes import FakeProviders
from tests.flag_helpers import (
    PRIMARY,
    Team,
    flags_of,
    make_flag,
    make_team,
    patient_with_procedure,
    triage_text,
    use_oncall,
    write_calendar,
)
from tests.survey_helpers import snapshot, survey_touchpoint, texts_to

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def app_settings(
    database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    monkeypatch.setenv("AFTERCARE_CALENDAR_FILE", str(write_calendar(tmp_path / "clinic.yaml", PRIMARY)))
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def team(session: Session, app_settings: Settings) -> Team:
    made = make_team(session)
    snapshot(session, app_settings)
    return made


@pytest.fixture
def headers(session: Session, team: Team) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_token(session, team.primary)}"}


def test_the_queue_is_ranked_by_tier_then_age_with_sla_timers(
    client: TestClient, session: Session, team: Team, headers: dict[str, str]
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    old_review = make_flag(session, patient, tier=FlagTier.review, created_at=NOW - timedelta(days=3),
                           sla_due_at=NOW - timedelta(days=1), next_escalation_at=None, escalation_level=-1)
    new_review = make_flag(session, patient, tier=FlagTier.review, created_at=NOW - timedelta(hours=2),
                           sla_due_at=NOW + timedelta(days=2))
    urgent = make_flag(session, patient, tier=FlagTier.urgent, created_at=NOW - timedelta(minutes=5),
                       sla_due_at=NOW + timedelta(minutes=10))
    emergency = make_flag(session, patient, tier=FlagTier.emergency, created_at=NOW - timedelta(minutes=1),
                          sla_due_at=NOW + timedelta(minutes=14))
    with time_machine.travel(NOW, tick=False):
        listed = client.get("/api/v1/flags", headers=headers).json()["flags"]
    assert [f["id"] for f in listed] == [emergency.id, urgent.id, old_review.id, new_review.id]
    assert [(f["sla"], f["overdue"]) for f in listed] == [
        ("due in 14 min", False), ("due in 10 min", False), ("overdue by 24 h", True), ("due in 2 days", False)]
    assert listed[0]["patient_name"] == f"{patient.first_name} {patient.last_name}"
    with time_machine.travel(NOW, tick=False):
        only = client.get("/api/v1/flags?tier=review", headers=headers).json()["flags"]
    assert [f["id"] for f in only] == [old_review.id, new_review.id]
    viewed = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.queue_viewed")).all()
    assert [e.detail["count"] for e in viewed] == [4, 2]


def test_a_flag_in_detail_and_its_trajectory_data(
    client: TestClient, session: Session, team: Team, headers: dict[str, str], app_settings: Settings
) -> None:
    patient, procedure = patient_with_procedure(session, team.clinic, days_ago=5)
    tp = survey_touchpoint(session, team.clinic, patient, key="checkin_d5", procedure=procedure)
    response = SurveyResponse(patient_id=patient.id or 0, procedure_id=procedure.id or 0, touchpoint_id=tp.id or 0,
                              touchpoint_key="checkin_d5", kind=TouchpointKind.checkin, survey_id="checkin",
                              channel=tp.channel, closes_at=NOW + timedelta(days=1))
    session.add(response)
    session.commit()
    session.add(SurveyAnswer(response_id=response.id or 0, item_id="nrs_now", instrument_id="nrs_now",
                             instrument_version="1.0.0", raw_text="7", value=7, outcome="ok", reason="number",
                             counts=True, source="sms"))
    session.add(SurveyScore(response_id=response.id or 0, instrument_id="koos_jr", instrument_version="1",
                            name="KOOS JR", value=61.6, complete=True))
    session.commit()
    triage_text(session, app_settings, patient, "my calf hurts and is swollen")
    [flag] = flags_of(session, patient)
    detail = client.get(f"/api/v1/flags/{flag.id}", headers=headers).json()
    assert detail["tier"] == "urgent" and detail["rules"][0] == "U6-calf"
    assert [(s["kind"], s["text"], s["severity"]) for s in detail["sources"]] == [
        ("message", "my calf hurts and is swollen", "urgent")]
    assert [(p["role"], p["channel"], p["status"]) for p in detail["pages"]] == [
        ("primary", "sms", "sent"), ("primary", "email", "sent")]
    assert detail["patient_told"] == "acknowledged" and detail["escalation_level"] == 0

    from aftercare.flags.queue import trajectories

    pain, koos = trajectories(session, patient.id or 0, procedure)
    assert [round(v) for _, v in pain.points] == [7] and pain.baseline == 6
    assert [v for _, v in koos.points] == [61.6] and koos.baseline == 52.5
    from tests.web_helpers import sign_in

    with TestClient(client.app, base_url="https://testserver") as browser:  # the page draws them (Secure cookie)
        sign_in(browser, team.primary.email)
        page = browser.get(f"/flags/{flag.id}").text
    assert 'id="chart-pain"' in page and 'id="chart-koos"' in page and "day 5: 7/10" in page
    assert "my calf hurts and is swollen" in page and "KOOS JR (0-100, higher is better)" in page


def test_acknowledge_note_message_visit_and_resolve(
    client: TestClient, session: Session, team: Team, headers: dict[str, str], app_settings: Settings,
    fake_providers: FakeProviders,
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, language="en")
    triage_text(session, app_settings, patient, "fever 38.6")
    [flag] = flags_of(session, patient)
    url = f"/api/v1/flags/{flag.id}"

    acked = client.post(f"{url}/acknowledge", headers=headers).json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == team.primary.id
    assert acked["sla"] == "acknowledged"
    assert client.post(f"{url}/acknowledge", headers=headers).status_code == 200  # idempotent

    note = client.post(f"{url}/notes", json={"text": "Called: 38.6 this morning, no chills."}, headers=headers)
    assert note.status_code == 201 and note.json()["kind"] == "note"

    sent = client.post(f"{url}/messages", json={"text": "Please come in today at 4 pm."}, headers=headers)
    assert sent.status_code == 202
    assert sent.json()["body"] == "Northside Clinic: Please come in today at 4 pm."
    assert "Northside Clinic: Please come in today at 4 pm." in texts_to(fake_providers, patient.phone_e164 or "")
    reply = session.get(OutboundReply, sent.json()["reply_id"])
    assert reply is not None and reply.status == TouchpointStatus.sent

    visit = client.post(f"{url}/urgent-visit", json={"reason": "possible infection"}, headers=headers)
    assert visit.status_code == 201, visit.text
    appointment = session.get(Appointment, visit.json()["appointment_id"])
    assert appointment is not None and appointment.physician_id == team.primary.id
    assert appointment.visit == "urgent" and appointment.reason == "possible infection"

    done = client.post(f"{url}/resolve", json={"disposition": "visit_booked", "note": "Seen today."}, headers=headers)
    body = done.json()
    assert (body["status"], body["disposition"], body["resolution_note"]) == ("resolved", "visit_booked", "Seen today.")
    assert [n["kind"] for n in body["notes"]] == ["note", "message", "visit", "resolution"]
    history = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.entity_id == flag.id,
                                                                        AuditEvent.entity_type == "flag"))]
    acts = ("flag.acknowledged", "flag.noted", "flag.messaged", "flag.visit_booked", "flag.resolved")
    assert [a for a in history if a in acts] == list(acts)
    assert client.get("/api/v1/flags", headers=headers).json() == {"flags": []}
    assert [f["id"] for f in client.get("/api/v1/flags?status=resolved", headers=headers).json()["flags"]] == [
        flag.id]


def test_messaging_a_patient_who_may_not_be_texted_is_a_clear_409(
    client: TestClient, session: Session, team: Team, headers: dict[str, str]
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, sms=False)
    flag = make_flag(session, patient)
    refused = client.post(f"/api/v1/flags/{flag.id}/messages", json={"text": "Hello"}, headers=headers)
    assert refused.status_code == 409 and "may not be texted" in refused.json()["detail"]


def test_an_urgent_visit_without_a_calendar_is_a_clear_409(
    client: TestClient, session: Session, team: Team, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AFTERCARE_CALENDAR_FILE", str(write_calendar(tmp_path / "other.yaml", PRIMARY,
                                                                      slug="elsewhere")))
    get_settings.cache_clear()
    patient, _ = patient_with_procedure(session, team.clinic)
    flag = make_flag(session, patient)
    refused = client.post(f"/api/v1/flags/{flag.id}/urgent-visit", json={}, headers=headers)
    assert refused.status_code == 409, refused.text
    assert session.exec(select(Appointment)).all() == []
