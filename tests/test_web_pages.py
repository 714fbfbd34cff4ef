"""Coordinator pages: the patient list, recording through the form, the timeline, move, cancel and CSV import."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from aftercare.models import Clinic, ConsentEvent, Patient, Procedure, ProcedureStatus, Role, StaffUser, Touchpoint
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.factories import make_clinic, make_staff
from tests.web_helpers import page_csrf, sign_in

# The pages sit on the same queries the API tests run on both databases; SQLite keeps these fast.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


@pytest.fixture
def physician(session: Session, clinic: Clinic) -> StaffUser:
    return make_staff(session, clinic, Role.physician, name="Dr. Rosa Díaz")


@pytest.fixture
def client(settings: Settings, session: Session, clinic: Clinic) -> Iterator[TestClient]:
    coordinator = make_staff(session, clinic)
    with TestClient(create_app(settings)) as test_client:
        sign_in(test_client, coordinator.email)
        yield test_client


def count(session: Session, model: type[SQLModel]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def form(client: TestClient, **overrides: Any) -> dict[str, Any]:
    when = (utcnow() + timedelta(days=5)).astimezone(ZoneInfo("America/Mazatlan"))
    values: dict[str, Any] = {
        "csrf_token": page_csrf(client, "/procedures/new"),
        "external_id": "WEB-1",
        "patient.first_name": "Ana",
        "patient.last_name": "López",
        "patient.phone": "+1 416 555 0199",
        "patient.email": "ana@example.org",
        "patient.language": "es",
        "patient.timezone": "America/Toronto",
        "patient.preferred_channel": "",
        "patient.consent_sms": "yes",
        "protocol_id": "msc-knee-injection",
        "knee_side": "right",
        "performed_at": f"{when:%Y-%m-%dT10:30}",
        "physician_email": "",
        "baseline_nrs": "7",
        "baseline_koos_jr": "",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_the_form_offers_protocols_and_the_clinic_physicians(client: TestClient, physician: StaffUser) -> None:
    page = client.get("/procedures/new").text
    assert '<option value="msc-knee-injection" selected>' in page
    assert '<option value="msc-knee-ligament"' in page
    assert f'<option value="{physician.email}">Dr. Rosa Díaz</option>' in html.unescape(page)
    assert '<label for="f-patient-phone">' in page
    assert 'name="patient.consent_sms" type="checkbox"' in page


def test_recording_through_the_form_shows_the_plan(
    client: TestClient, session: Session, physician: StaffUser
) -> None:
    response = client.post("/procedures/new", data=form(client, physician_email=physician.email))

    assert response.status_code == 200, response.text
    procedure = session.exec(select(Procedure)).one()
    assert str(response.url).endswith(f"/patients/{procedure.patient_id}")
    assert procedure.status == ProcedureStatus.active
    assert procedure.physician_id == physician.id
    page = html.unescape(response.text)
    assert "Procedure WEB-1 recorded." in page
    assert "Day 1 check-in" in page and "checkin_d1" in page
    assert "msc-knee-injection v1.0.0" in page
    assert "Dr. Rosa Díaz" in page
    assert "NRS 7/10" in page
    assert "scheduled" in page
    assert "EST" in page or "EDT" in page  # patient's zone (Toronto)
    assert "MST" in page  # clinic's zone (Mazatlán)
    consent = session.exec(select(ConsentEvent)).all()
    assert [(c.channel.value, c.granted, c.source) for c in consent] == [("sms", True, "form")]


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ({"patient.phone": "12345"}, "patient.phone", "not a valid phone number"),
        ({"patient.timezone": "Mars/Olympus"}, "patient.timezone", "unknown time zone"),
        ({"knee_side": ""}, "knee_side", "required"),
        ({"baseline_nrs": "11"}, "baseline_nrs", "less than or equal to 10"),
        ({"performed_at": "not a date"}, "performed_at", "datetime"),
        ({"patient.first_name": ""}, "patient.first_name", "required"),
    ],
)
def test_a_form_error_is_shown_next_to_its_field_and_the_input_is_kept(
    client: TestClient, session: Session, override: dict[str, str], field: str, words: str
) -> None:
    response = client.post("/procedures/new", data=form(client, **override))

    assert response.status_code == 422
    page = html.unescape(response.text)
    field_id = "f-" + field.replace(".", "-")
    error = page.split(f'id="{field_id}-error">', 1)[1].split("</p>", 1)[0]
    assert words in error
    assert 'value="López"' in page and 'value="WEB-1"' in page  # what was typed stays
    assert 'name="patient.consent_sms" type="checkbox" value="yes" checked' in page
    assert "Nothing was saved" in page
    assert count(session, Patient) == count(session, Procedure) == 0


def test_a_physician_cannot_open_the_form(settings: Settings, session: Session, physician: StaffUser) -> None:
    with TestClient(create_app(settings)) as client:
        sign_in(client, physician.email)
        response = client.get("/procedures/new")
        assert response.status_code == 403
        assert "cannot change procedures" in response.text


def test_the_patient_list_searches(client: TestClient) -> None:
    client.post("/procedures/new", data=form(client))
    client.post("/procedures/new", data=form(client, **{"external_id": "WEB-2", "patient.first_name": "Bo",
                                                         "patient.last_name": "Smith",
                                                         "patient.phone": "+1 212 555 0142"}))
    page = html.unescape(client.get("/").text)
    assert "López, Ana" in page and "Smith, Bo" in page
    assert "Day 1 check-in" in page or "Before:" in page or "Baseline survey" in page  # next touchpoint column
    found = html.unescape(client.get("/", params={"q": "212 555"}).text)
    assert "Smith, Bo" in found and "López, Ana" not in found
    assert "No patient matches" in client.get("/", params={"q": "zzz"}).text


def test_moving_and_cancelling_from_the_timeline(client: TestClient, session: Session) -> None:
    client.post("/procedures/new", data=form(client))
    procedure = session.exec(select(Procedure)).one()
    page_path = f"/patients/{procedure.patient_id}"
    new_date = (procedure.performed_at + timedelta(days=3)).astimezone(ZoneInfo("America/Mazatlan"))

    moved = client.post(f"/procedures/{procedure.id}/move",
                        data={"csrf_token": page_csrf(client, page_path), "performed_at": f"{new_date:%Y-%m-%dT%H:%M}"})

    assert moved.status_code == 200
    assert "moved;" in moved.text and "rescheduled" in moved.text
    session.refresh(procedure)
    assert procedure.performed_at == new_date.replace(second=0, microsecond=0)

    bad = client.post(f"/procedures/{procedure.id}/move", data={"csrf_token": page_csrf(client, page_path),
                                                                "performed_at": "next week"})
    assert "enter a date and time" in bad.text

    blank = client.post(f"/procedures/{procedure.id}/cancel", data={"csrf_token": page_csrf(client, page_path)})
    assert "a reason is required" in blank.text
    cancelled = client.post(f"/procedures/{procedure.id}/cancel",
                            data={"csrf_token": page_csrf(client, page_path), "reason": "patient postponed"})
    page = html.unescape(cancelled.text)
    assert "cancelled — procedure cancelled: patient postponed" in page
    assert "Cancelled because" in page
    session.refresh(procedure)
    assert procedure.status == ProcedureStatus.cancelled
    assert 'action="/procedures/' not in page  # no more move or cancel buttons


def test_another_clinics_patient_is_not_found(client: TestClient, session: Session) -> None:
    other = make_clinic(session, slug="other", name="Other")
    patient = Patient(clinic_id=other.id or 0, first_name="Zed", last_name="Other", timezone="UTC",
                      email="zed@example.org")
    session.add(patient)
    session.commit()
    response = client.get(f"/patients/{patient.id}")
    assert response.status_code == 404
    assert "Zed" not in response.text


GOOD_CSV = """external_id,first_name,last_name,phone,timezone,knee_side,performed_at,baseline_nrs,consent_sms
CSV-1,Maria,Reyes,+1 305 555 0101,America/New_York,left,{day},5,yes
CSV-2,John,Park,+1 415 555 0102,America/Los_Angeles,bilateral,{day},4,no
"""


def test_importing_a_good_csv(client: TestClient, session: Session) -> None:
    text = GOOD_CSV.format(day=(utcnow() + timedelta(days=3)).date().isoformat())
    response = client.post("/import", data={"csrf_token": page_csrf(client, "/import")},
                           files={"file": ("procedures.csv", text.encode(), "text/csv")})
    assert response.status_code == 200, response.text
    assert "2 new procedures imported" in response.text
    procedures = session.exec(select(Procedure)).all()
    assert len(procedures) == 2
    assert all(p.status == ProcedureStatus.active for p in procedures)  # plans built (flow mode off)
    assert count(session, Touchpoint) > 40


def test_a_csv_with_a_bad_row_imports_nothing_and_says_why(client: TestClient, session: Session) -> None:
    text = GOOD_CSV.format(day=(utcnow() + timedelta(days=3)).date().isoformat()).replace("+1 415 555 0102", "555")
    response = client.post("/import", data={"csrf_token": page_csrf(client, "/import")},
                           files={"file": ("procedures.csv", text.encode(), "text/csv")})
    assert response.status_code == 422
    page = html.unescape(response.text)
    assert "nothing was imported" in page
    row = page.split('<td data-label="Line" class="num">', 1)[1]
    assert row.startswith("3</td>") and "<code>phone</code>" in row
    assert count(session, Procedure) == count(session, Patient) == 0


def test_an_upload_that_is_not_utf8_text_is_explained(client: TestClient) -> None:
    response = client.post("/import", data={"csrf_token": page_csrf(client, "/import")},
                           files={"file": ("x.csv", b"\xff\xfe\x00bad", "text/csv")})
    assert response.status_code == 422
    assert "not UTF-8" in response.text
    missing = client.post("/import", data={"csrf_token": page_csrf(client, "/import")})
    assert "Choose a CSV file" in missing.text
