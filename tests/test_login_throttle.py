"""Sign-in throttling through the login page, on SQLite and PostgreSQL: failures counted per email and per
address in the audit log, a lockout even for the right password, and the end of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from aftercare.models import AuditEvent, Clinic, StaffUser
from aftercare.settings import Settings
from aftercare.web import throttle
from aftercare.web.app import create_app
from tests.factories import make_clinic, make_staff
from tests.web_helpers import PASSWORD, csrf_from


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def staff(session: Session) -> StaffUser:
    clinic: Clinic = make_clinic(session)
    return make_staff(session, clinic)


def attempt(client: TestClient, email: str, password: str) -> int:
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                           follow_redirects=False)
    return response.status_code


def test_after_too_many_failures_even_the_right_password_waits(
    client: TestClient, session: Session, settings: Settings, staff: StaffUser
) -> None:
    for _ in range(settings.login_max_failures):
        assert attempt(client, staff.email.upper(), "wrong") == 401  # the email's case does not matter
    token = csrf_from(client.get("/login").text)
    refused = client.post("/login", data={"email": staff.email, "password": PASSWORD, "csrf_token": token},
                          follow_redirects=False)
    assert refused.status_code == 429
    assert f"Try again in {settings.login_lockout_minutes} minutes" in refused.text
    assert client.get("/", follow_redirects=False).status_code == 303  # not signed in
    rows = session.exec(select(AuditEvent).where(AuditEvent.action == throttle.ACTION)).all()
    assert len(rows) == 2 * settings.login_max_failures  # one per email, one per address, per failure

    # the window passes: the right password works again
    for row in rows:
        row.at -= timedelta(minutes=settings.login_lockout_minutes + 1)
        session.add(row)
    session.commit()
    assert attempt(client, staff.email, PASSWORD) == 303


def test_another_account_is_not_locked_by_someone_elses_failures(
    client: TestClient, session: Session, settings: Settings, staff: StaffUser
) -> None:
    other = make_staff(session, session.get(Clinic, staff.clinic_id), email="other@clinic.example")  # type: ignore[arg-type]
    for _ in range(settings.login_max_failures):
        assert attempt(client, staff.email, "wrong") == 401
    assert attempt(client, other.email, PASSWORD) == 303


def test_one_address_trying_many_emails_is_stopped(client: TestClient, settings: Settings, staff: StaffUser) -> None:
    limit = settings.login_max_failures * throttle.PER_ADDRESS
    for n in range(limit):
        assert attempt(client, f"guess{n}@clinic.example", "wrong") == 401
    assert attempt(client, staff.email, PASSWORD) == 429
