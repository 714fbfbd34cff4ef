"""Who may do what with a flag, on every flag endpoint of the API and of the staff pages, for each role.

Coordinators see flags and add notes; physicians and admins also acknowledge, message the patient, book the
urgent visit and resolve. Another clinic's flag does not exist for anyone; no login, no access. Every view and
every refused attempt is audited. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from aftercare.models import AuditEvent, Clinic, Flag, FlagNote, FlagStatus, Role
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.factories import make_api_token, make_clinic, make_staff
from tests.flag_helpers import (
    PRIMARY,
    Team,
    make_flag,
    make_team,
    patient_with_procedure,
    use_oncall,
    write_calendar,
)
from tests.web_helpers import page_csrf, sign_in

ROLES = {Role.coordinator: "coordinator@example.org", Role.physician: PRIMARY, Role.admin: "admin@example.org"}
CLINICAL = {"acknowledge", "message", "visit", "resolve"}


@pytest.fixture
def app_settings(
    database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    monkeypatch.setenv("AFTERCARE_CALENDAR_FILE", str(write_calendar(tmp_path / "clinic.yaml", PRIMARY)))
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    # https: AFTERCARE_PUBLIC_BASE_URL is https, so the session cookie is Secure
    with TestClient(create_app(app_settings), base_url="https://testserver") as test_client:
        yield test_client


@pytest.fixture
def team(session: Session, app_settings: Settings) -> Team:
    return make_team(session)


def other_clinic_flag(session: Session) -> Flag:
    elsewhere = make_clinic(session, slug="elsewhere", name="Elsewhere Clinic")
    make_staff(session, elsewhere, Role.physician, email="dr.elsewhere@example.org")
    patient, _ = patient_with_procedure(session, elsewhere)
    return make_flag(session, patient)


API_CALLS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "list": ("GET", "/api/v1/flags", None),
    "read": ("GET", "/api/v1/flags/{id}", None),
    "note": ("POST", "/api/v1/flags/{id}/notes", {"text": "Called, no answer; left a voicemail."}),
    "acknowledge": ("POST", "/api/v1/flags/{id}/acknowledge", None),
    "message": ("POST", "/api/v1/flags/{id}/messages", {"text": "Please call us back today."}),
    "visit": ("POST", "/api/v1/flags/{id}/urgent-visit", {"physician_id": None, "reason": "possible infection"}),
    "resolve": ("POST", "/api/v1/flags/{id}/resolve", {"disposition": "called_patient", "note": "Seen, fine."}),
}
API_OK = {"list": 200, "read": 200, "note": 201, "acknowledge": 200, "message": 202, "visit": 201, "resolve": 200}


@pytest.mark.parametrize("role", list(ROLES), ids=lambda r: r.value)
def test_every_api_endpoint_for_each_role(
    client: TestClient, session: Session, team: Team, role: Role
) -> None:
    staff = team.by_email(ROLES[role])
    headers = {"Authorization": f"Bearer {make_api_token(session, staff)}"}
    patient, _ = patient_with_procedure(session, team.clinic)
    foreign = other_clinic_flag(session)
    for name, (method, path, body) in API_CALLS.items():
        flag = make_flag(session, patient)  # a fresh open flag for each call
        if name == "visit":
            body = {**(body or {}), "physician_id": team.primary.id}
        url = path.format(id=flag.id)
        got = client.request(method, url, json=body, headers=headers)
        refused = role == Role.coordinator and name in CLINICAL
        assert got.status_code == (403 if refused else API_OK[name]), (name, got.text)
        if refused:
            assert "cannot" in got.json()["detail"] and "ask a physician" in got.json()["detail"]
        if "{id}" in path:
            assert client.request(method, path.format(id=foreign.id), json=body, headers=headers).status_code == 404
            assert client.request(method, url, json=body).status_code == 401  # no token
    session.expire_all()
    denied = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.denied")).all()
    assert sorted(e.detail["attempted"] for e in denied) == (
        sorted(["acknowledge", "message", "book_visit", "resolve"]) if role == Role.coordinator else [])
    assert all(e.actor == f"staff:{staff.id}" and e.detail["via"] == "api" for e in denied)
    viewed = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.viewed")).all()
    assert len(viewed) == 1 and viewed[0].detail["role"] == role.value


def test_api_errors_name_the_field(client: TestClient, session: Session, team: Team) -> None:
    headers = {"Authorization": f"Bearer {make_api_token(session, team.primary)}"}
    patient, _ = patient_with_procedure(session, team.clinic)
    flag = make_flag(session, patient)
    bad = client.post(f"/api/v1/flags/{flag.id}/resolve", json={"disposition": "cured", "note": "x"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "disposition"]
    empty = client.post(f"/api/v1/flags/{flag.id}/notes", json={"text": "  "}, headers=headers)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "text"]
    long = client.post(f"/api/v1/flags/{flag.id}/messages", json={"text": "x" * 301}, headers=headers)
    assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["body", "text"]
    assert client.get("/api/v1/flags/0", headers=headers).status_code == 422
    assert client.get("/api/v1/flags?status=closed", headers=headers).status_code == 422
    ok = client.post(f"/api/v1/flags/{flag.id}/resolve", json={"disposition": "no_action_needed", "note": "ok"},
                     headers=headers)
    assert ok.status_code == 200 and ok.json()["status"] == "resolved"
    again = client.post(f"/api/v1/flags/{flag.id}/resolve", json={"disposition": "no_action_needed", "note": "ok"},
                        headers=headers)
    assert again.status_code == 409 and "resolved already" in again.json()["detail"]


PAGE_CALLS: dict[str, tuple[str, str, Callable[[Team], dict[str, Any]] | None]] = {
    "queue": ("GET", "/flags", None),
    "read": ("GET", "/flags/{id}", None),
    "note": ("POST", "/flags/{id}/notes", lambda t: {"note": "Spoke to her husband."}),
    "acknowledge": ("POST", "/flags/{id}/acknowledge", lambda t: {}),
    "message": ("POST", "/flags/{id}/message", lambda t: {"message": "Please call us back today."}),
    "visit": ("POST", "/flags/{id}/visit", lambda t: {"physician_id": str(t.primary.id), "reason": "check"}),
    "resolve": ("POST", "/flags/{id}/resolve", lambda t: {"disposition": "sent_to_er", "note": "Sent to ER."}),
}


@pytest.mark.parametrize("role", list(ROLES), ids=lambda r: r.value)
def test_every_page_for_each_role(client: TestClient, session: Session, team: Team, role: Role) -> None:
    staff = team.by_email(ROLES[role])
    patient, _ = patient_with_procedure(session, team.clinic)
    foreign = other_clinic_flag(session)
    flag = make_flag(session, patient)
    # Not signed in: a page sends to the login form, a form post is refused (no session, no CSRF token).
    for _name, (method, path, form) in PAGE_CALLS.items():
        got = client.request(method, path.format(id=flag.id), data=form(team) if form else None,
                             follow_redirects=False)
        if method == "GET":
            assert got.status_code == 303 and got.headers["location"].startswith("/login"), (method, path)
        else:
            assert got.status_code == 403, (method, path)
    assert session.exec(select(AuditEvent).where(AuditEvent.entity_type == "flag")).all() == []
    sign_in(client, staff.email)
    token = page_csrf(client, "/flags")
    for name, (method, path, form) in PAGE_CALLS.items():
        flag = make_flag(session, patient)
        data = {**form(team), "csrf_token": token} if form else None
        got = client.request(method, path.format(id=flag.id), data=data, follow_redirects=False)
        refused = role == Role.coordinator and name in CLINICAL
        expected = 403 if refused else (200 if method == "GET" else 303)
        assert got.status_code == expected, (name, got.status_code, got.text[-600:])
        if refused:
            assert "cannot" in got.text
        elif method == "POST":
            assert got.headers["location"] in (f"/flags/{flag.id}", "/flags")
        if "{id}" in path:
            assert client.request(method, path.format(id=foreign.id), data=data,
                                  follow_redirects=False).status_code == 404
        if method == "POST":
            no_token = client.request(method, path.format(id=flag.id), data=form(team) if form else {},
                                      follow_redirects=False)
            assert no_token.status_code == 403 and "Form expired" in no_token.text
    session.expire_all()
    states = {f.id: f.status for f in session.exec(select(Flag).where(Flag.clinic_id == team.clinic.id))}
    if role == Role.coordinator:
        assert set(states.values()) == {FlagStatus.open}
    else:
        assert FlagStatus.resolved in states.values() and FlagStatus.acknowledged in states.values()
    assert session.exec(select(FlagNote).where(col(FlagNote.kind) == "note")).one().staff_id == staff.id
    actions = {e.action for e in session.exec(select(AuditEvent).where(AuditEvent.entity_type == "flag"))}
    assert {"flag.queue_viewed", "flag.viewed", "flag.noted"} <= actions
    assert ("flag.denied" in actions) == (role == Role.coordinator)


def test_the_flag_page_shows_a_coordinator_no_clinical_buttons(
    client: TestClient, session: Session, team: Team
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    flag = make_flag(session, patient)
    sign_in(client, team.coordinator.email)
    html = client.get(f"/flags/{flag.id}").text
    assert "Add note" in html and "Acknowledge</button>" not in html and "Resolve</button>" not in html
    assert "acknowledging, messaging the patient, booking the urgent visit and resolving are for physicians" in html
    with TestClient(client.app, base_url="https://testserver") as physician:
        sign_in(physician, team.primary.email)
        html = physician.get(f"/flags/{flag.id}").text
    assert "Acknowledge</button>" in html and "Resolve</button>" in html and "Book urgent visit" in html


def test_clinic_scoping_holds_for_admins_too(client: TestClient, session: Session, team: Team) -> None:
    foreign = other_clinic_flag(session)
    headers = {"Authorization": f"Bearer {make_api_token(session, team.admin)}"}
    assert client.get("/api/v1/flags?status=all", headers=headers).json() == {"flags": []}
    assert client.get(f"/api/v1/flags/{foreign.id}", headers=headers).status_code == 404
    clinic = session.get(Clinic, foreign.clinic_id)
    assert clinic is not None and clinic.slug == "elsewhere"
