"""The REST API on SQLite and PostgreSQL: bearer auth, recording, idempotency, move, cancel, bad input, clinics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, update
from sqlmodel import Session, SQLModel, col, select

from aftercare.models import (
    ApiToken,
    AuditEvent,
    Clinic,
    ConsentEvent,
    Patient,
    Procedure,
    Role,
    StaffUser,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.factories import make_api_token, make_clinic, make_staff, procedure_in

TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


@pytest.fixture
def coordinator(session: Session, clinic: Clinic) -> StaffUser:
    return make_staff(session, clinic)


@pytest.fixture
def headers(session: Session, coordinator: StaffUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_token(session, coordinator)}"}


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid request body as JSON, with raw (possibly invalid) overrides."""
    body = procedure_in().model_dump(mode="json")
    body["patient"].update(overrides.pop("patient", {}))
    body.update(overrides)
    return body


def count(session: Session, model: type[SQLModel]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def touchpoints(session: Session, procedure_id: int) -> list[Touchpoint]:
    session.expire_all()
    query = select(Touchpoint).where(Touchpoint.procedure_id == procedure_id).order_by(col(Touchpoint.id))
    return list(session.exec(query))


# --- authentication -----------------------------------------------------------------------------------


def test_it_refuses_a_request_without_a_token(client: TestClient) -> None:
    response = client.get("/api/v1/patients")
    assert response.status_code == 401
    assert "missing bearer token" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("token", "message"),
    [("ac_not-a-token-we-issued", "unknown API token"), ("abc123", "not an aftercare API token")],
)
def test_it_refuses_a_wrong_token(client: TestClient, coordinator: StaffUser, token: str, message: str) -> None:
    response = client.post("/api/v1/procedures", json=payload(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_it_refuses_a_revoked_token(client: TestClient, session: Session, headers: dict[str, str]) -> None:
    session.execute(update(ApiToken).values(revoked_at=utcnow()))
    session.commit()
    response = client.post("/api/v1/procedures", json=payload(), headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert count(session, Procedure) == 0


def test_it_refuses_the_token_of_a_disabled_account(
    client: TestClient, session: Session, coordinator: StaffUser, headers: dict[str, str]
) -> None:
    coordinator.active = False
    session.add(coordinator)
    session.commit()
    response = client.get("/api/v1/patients", headers=headers)
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


def test_it_records_when_a_token_was_last_used(client: TestClient, session: Session, headers: dict[str, str]) -> None:
    assert client.get("/api/v1/patients", headers=headers).status_code == 200
    token = session.exec(select(ApiToken)).one()
    assert token.last_used_at is not None
    assert utcnow() - token.last_used_at < timedelta(minutes=1)


def test_a_physician_can_read_but_not_record(client: TestClient, session: Session, clinic: Clinic) -> None:
    physician = make_staff(session, clinic, Role.physician)
    headers = {"Authorization": f"Bearer {make_api_token(session, physician)}"}
    assert client.get("/api/v1/patients", headers=headers).status_code == 200
    response = client.post("/api/v1/procedures", json=payload(), headers=headers)
    assert response.status_code == 403
    assert "physician" in response.json()["detail"]


# --- recording ----------------------------------------------------------------------------------------


def test_it_records_a_procedure_and_builds_its_plan(
    client: TestClient,
    session: Session,
    headers: dict[str, str],
    coordinator: StaffUser,
    registry: ProtocolRegistry,
) -> None:
    response = client.post("/api/v1/procedures", json=payload(), headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True and body["rescheduled"] is False
    assert body["status"] == "active"  # AFTERCARE_FLOW_MODE=off builds the plan before answering
    procedure = session.get(Procedure, body["procedure_id"])
    assert procedure is not None and procedure.plan_built_at is not None
    assert procedure.patient_id == body["patient_id"]
    keys = {tp.key for tp in touchpoints(session, body["procedure_id"])}
    protocol = registry.get("msc-knee-injection")
    assert {t.id for t in protocol.touchpoints} <= keys
    assert {f"{v.id}_offer" for v in protocol.followup_visits} <= keys
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.recorded")).one()
    assert audit.actor == f"staff:{coordinator.id}"
    assert audit.entity_id == body["procedure_id"]
    assert count(session, ConsentEvent) == 2  # sms and email, both ticked


def test_recording_the_same_procedure_again_duplicates_nothing(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    body = payload()
    first = client.post("/api/v1/procedures", json=body, headers=headers)
    planned = len(touchpoints(session, first.json()["procedure_id"]))

    again = client.post("/api/v1/procedures", json=body, headers=headers)

    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "created": False}
    assert count(session, Procedure) == 1
    assert count(session, Patient) == 1
    assert count(session, Touchpoint) == planned
    assert count(session, ConsentEvent) == 2


def test_recording_again_with_a_new_date_reschedules(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    first = client.post("/api/v1/procedures", json=payload(), headers=headers).json()
    before = {(tp.key, tp.channel): tp.due_at for tp in touchpoints(session, first["procedure_id"])}
    later = (utcnow() + timedelta(days=20)).isoformat()

    again = client.post("/api/v1/procedures", json=payload(performed_at=later), headers=headers)

    assert again.status_code == 200
    assert again.json()["rescheduled"] is True
    after = touchpoints(session, first["procedure_id"])
    assert len(after) == len(before)
    assert all(tp.due_at > before[(tp.key, tp.channel)] for tp in after)


def test_it_reads_a_procedure(client: TestClient, headers: dict[str, str]) -> None:
    recorded = client.post("/api/v1/procedures", json=payload(), headers=headers).json()
    response = client.get(f"/api/v1/procedures/{recorded['procedure_id']}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] == "PROC-1"
    assert body["protocol_version"] == "1.0.0"
    assert body["knee_side"] == "left"
    assert body["baseline_nrs"] == 6


# --- move and cancel ----------------------------------------------------------------------------------


def test_moving_a_procedure_reschedules_what_was_not_sent(
    client: TestClient, session: Session, headers: dict[str, str], coordinator: StaffUser
) -> None:
    recorded = client.post("/api/v1/procedures", json=payload(), headers=headers).json()
    procedure_id = recorded["procedure_id"]
    plan = touchpoints(session, procedure_id)
    sent = plan[0]
    session.execute(update(Touchpoint).where(col(Touchpoint.id) == sent.id).values(status=TouchpointStatus.sent))
    session.commit()
    before = {tp.id: tp.due_at for tp in touchpoints(session, procedure_id)}
    procedure = session.get(Procedure, procedure_id)
    assert procedure is not None
    new_date = procedure.performed_at + timedelta(days=7)

    response = client.post(
        f"/api/v1/procedures/{procedure_id}/move", json={"performed_at": new_date.isoformat()}, headers=headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert datetime.fromisoformat(body["procedure"]["performed_at"]) == new_date
    after = touchpoints(session, procedure_id)
    moved = [tp for tp in after if tp.status == TouchpointStatus.scheduled]
    assert body["touchpoints_moved"] == len(moved) == len(plan) - 1
    for tp in moved:  # a week later (give or take a DST hour)
        assert abs(tp.due_at - before[tp.id] - timedelta(days=7)) <= timedelta(hours=1)
    assert next(tp for tp in after if tp.id == sent.id).due_at == before[sent.id]
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.rescheduled")).one()
    assert audit.actor == f"staff:{coordinator.id}"


def test_cancelling_a_procedure_stops_what_was_not_sent_and_keeps_the_reason(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    procedure_id = client.post("/api/v1/procedures", json=payload(), headers=headers).json()["procedure_id"]
    first = touchpoints(session, procedure_id)[0]
    session.execute(update(Touchpoint).where(col(Touchpoint.id) == first.id).values(status=TouchpointStatus.sent))
    session.commit()

    response = client.post(
        f"/api/v1/procedures/{procedure_id}/cancel", json={"reason": "patient postponed"}, headers=headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["procedure"]["status"] == "cancelled"
    assert body["procedure"]["cancel_reason"] == "patient postponed"
    rows = touchpoints(session, procedure_id)
    assert body["touchpoints_cancelled"] == len(rows) - 1
    for tp in rows:
        if tp.id == first.id:
            assert tp.status == TouchpointStatus.sent
        else:
            assert tp.status == TouchpointStatus.cancelled
            assert tp.cancel_reason == "procedure cancelled: patient postponed"
    timeline = client.get(f"/api/v1/patients/{body['procedure']['patient_id']}/timeline", headers=headers).json()
    assert any(e["status_text"] == "cancelled — procedure cancelled: patient postponed" for e in timeline)


def test_cancelling_needs_a_reason_and_a_cancelled_procedure_cannot_move(
    client: TestClient, headers: dict[str, str]
) -> None:
    procedure_id = client.post("/api/v1/procedures", json=payload(), headers=headers).json()["procedure_id"]
    blank = client.post(f"/api/v1/procedures/{procedure_id}/cancel", json={"reason": "  "}, headers=headers)
    assert blank.status_code == 422
    assert blank.json()["detail"][0]["loc"] == ["body", "reason"]
    client.post(f"/api/v1/procedures/{procedure_id}/cancel", json={"reason": "duplicate entry"}, headers=headers)
    moved = client.post(
        f"/api/v1/procedures/{procedure_id}/move", json={"performed_at": utcnow().isoformat()}, headers=headers
    )
    assert moved.status_code == 409
    assert "cancelled" in moved.json()["detail"]


# --- bad input ----------------------------------------------------------------------------------------

BAD_INPUT = [
    pytest.param({"patient": {"phone": "12345"}}, ["body", "patient", "phone"], "phone", id="invalid-phone"),
    pytest.param({"patient": {"timezone": "Mars/Olympus"}}, ["body", "patient", "timezone"], "time zone",
                 id="unknown-zone"),
    pytest.param({"protocol_id": "hip-replacement"}, ["body", "protocol_id"], "unknown protocol",
                 id="unknown-protocol"),
    pytest.param({"knee_side": "middle"}, ["body", "knee_side"], "left", id="bad-knee-side"),
    pytest.param({"performed_at": (utcnow() + timedelta(days=730)).isoformat()}, ["body", "performed_at"],
                 "in the future", id="two-years-ahead"),
    pytest.param({"baseline_nrs": 11}, ["body", "baseline_nrs"], "10", id="nrs-11"),
    pytest.param({"patient": {"email": "not-an-email", "phone": None}}, ["body", "patient", "email"], "",
                 id="bad-email"),
]


@pytest.mark.parametrize(("override", "loc", "words"), BAD_INPUT)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient, session: Session, headers: dict[str, str], override: dict[str, Any], loc: list[str],
    words: str,
) -> None:
    response = client.post("/api/v1/procedures", json=payload(**override), headers=headers)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [loc]
    assert words in errors[0]["msg"]
    for model in (Patient, Procedure, Touchpoint, ConsentEvent):
        assert count(session, model) == 0


def test_a_physician_of_another_clinic_is_refused(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    other = make_clinic(session, slug="other", name="Other clinic")
    make_staff(session, other, Role.physician, email="dr@other.org")
    response = client.post("/api/v1/procedures", json=payload(physician_email="dr@other.org"), headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "physician_email"]
    assert count(session, Procedure) == 0


# --- patients and clinics -----------------------------------------------------------------------------


def test_staff_see_only_their_own_clinic(client: TestClient, session: Session, headers: dict[str, str]) -> None:
    recorded = client.post("/api/v1/procedures", json=payload(), headers=headers).json()
    other = make_clinic(session, slug="other", name="Other clinic")
    stranger = make_staff(session, other, email="coordinator@other.org")
    theirs = {"Authorization": f"Bearer {make_api_token(session, stranger)}"}
    procedure_id, patient_id = recorded["procedure_id"], recorded["patient_id"]

    assert client.get(f"/api/v1/procedures/{procedure_id}", headers=theirs).status_code == 404
    assert client.get(f"/api/v1/patients/{patient_id}", headers=theirs).status_code == 404
    assert client.get(f"/api/v1/patients/{patient_id}/timeline", headers=theirs).status_code == 404
    cancel = client.post(f"/api/v1/procedures/{procedure_id}/cancel", json={"reason": "x"}, headers=theirs)
    move = client.post(f"/api/v1/procedures/{procedure_id}/move", json={"performed_at": "2030-01-01T10:00"},
                       headers=theirs)
    assert (cancel.status_code, move.status_code) == (404, 404)
    assert client.get("/api/v1/patients", headers=theirs).json() == []
    assert client.get(f"/api/v1/procedures/{procedure_id}", headers=headers).json()["status"] == "active"
    # Same external id in the other clinic is a different procedure.
    assert client.post("/api/v1/procedures", json=payload(), headers=theirs).status_code == 201


@pytest.mark.parametrize("q", ["ana", "lópez", "Ana López", "416 555", "(416) 555-0199", "ana@example", "MRN-77"])
def test_it_finds_patients_by_name_phone_email_or_mrn(
    client: TestClient, headers: dict[str, str], q: str
) -> None:
    client.post("/api/v1/procedures", json=payload(patient={"mrn": "MRN-77"}), headers=headers)
    other = payload(external_id="PROC-2", patient={"first_name": "Bo", "last_name": "Smith", "phone": "+1 212 555 0142",
                                                   "email": "bo@example.net", "mrn": "MRN-88"})
    client.post("/api/v1/procedures", json=other, headers=headers)

    found = client.get("/api/v1/patients", params={"q": q}, headers=headers).json()

    assert [p["last_name"] for p in found] == ["López"]
    assert found[0]["procedure_count"] == 1
    assert found[0]["next_touchpoint_key"] is not None


def test_the_patient_list_without_a_query_shows_everyone(client: TestClient, headers: dict[str, str]) -> None:
    client.post("/api/v1/procedures", json=payload(), headers=headers)
    second = payload(external_id="PROC-2", knee_side="right")  # same patient, other knee
    client.post("/api/v1/procedures", json=second, headers=headers)
    found = client.get("/api/v1/patients", headers=headers).json()
    assert len(found) == 1
    assert found[0]["procedure_count"] == 2
    assert client.get("/api/v1/patients", params={"q": "nobody-like-this"}, headers=headers).json() == []


def test_it_reads_a_patient_with_consent_and_procedures(client: TestClient, headers: dict[str, str]) -> None:
    recorded = client.post("/api/v1/procedures", json=payload(patient={"consent_email": False}),
                           headers=headers).json()
    body = client.get(f"/api/v1/patients/{recorded['patient_id']}", headers=headers).json()
    assert body["phone_e164"] == "+14165550199"
    assert body["timezone"] == "America/Toronto"
    assert body["consent"] == {"sms": True, "email": False}
    assert [p["id"] for p in body["procedures"]] == [recorded["procedure_id"]]


def test_the_timeline_gives_local_times_and_quiet_hour_holds(
    client: TestClient, headers: dict[str, str], clinic: Clinic
) -> None:
    day = (utcnow() + timedelta(days=10)).astimezone(TORONTO).date()
    evening = datetime(day.year, day.month, day.day, 19, 0, tzinfo=TORONTO)  # discharge (+2 h) falls at 21:00
    recorded = client.post("/api/v1/procedures", json=payload(performed_at=evening.isoformat()),
                           headers=headers).json()

    timeline = client.get(f"/api/v1/patients/{recorded['patient_id']}/timeline", headers=headers).json()

    assert [e["due_at"] for e in timeline] == sorted(e["due_at"] for e in timeline)
    discharge = next(e for e in timeline if e["key"] == "discharge" and e["channel"] == "sms")
    assert discharge["held_for_quiet_hours"] is True
    assert discharge["status_text"] == "held for quiet hours"
    local = datetime.fromisoformat(discharge["due_local"])
    assert (local.hour, local.minute) == (8, 0)
    assert local.utcoffset() == local.astimezone(TORONTO).utcoffset()
    assert datetime.fromisoformat(discharge["due_clinic"]).utcoffset() == (
        local.astimezone(ZoneInfo(clinic.timezone)).utcoffset()
    )
    checkin = next(e for e in timeline if e["key"] == "checkin_d1")
    assert checkin["label"] == "Day 1 check-in"
    assert checkin["held_for_quiet_hours"] is False
    assert checkin["status_text"] == "scheduled"
    assert datetime.fromisoformat(checkin["due_local"]).hour == 10


def test_health_check_reaches_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/v1/procedures" in schema["paths"]
    assert "/api/v1/patients/{patient_id}/timeline" in schema["paths"]
    assert "/login" not in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_health_check_reports_an_unreachable_database() -> None:
    settings = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


def test_an_id_out_of_range_is_a_clear_422(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/v1/procedures/99999999999", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "procedure_id"]


def test_the_next_touchpoint_is_the_first_that_can_still_go_out(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    client.post("/api/v1/procedures", json=payload(), headers=headers)
    assert client.get("/api/v1/patients", headers=headers).json()[0]["next_touchpoint_key"] == "pre_nsaid_hold"
    closed = utcnow() - timedelta(hours=1)
    session.execute(update(Touchpoint).where(col(Touchpoint.key) == "pre_nsaid_hold").values(window_end=closed))
    session.commit()
    assert client.get("/api/v1/patients", headers=headers).json()[0]["next_touchpoint_key"] == "baseline_survey"
