"""Staff sign-in for the pages: passwords, the session cookie, CSRF on every form, sign-out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from aftercare.models import AuditEvent, Clinic, StaffUser
from aftercare.settings import Settings
from aftercare.web.app import SESSION_COOKIE, create_app
from tests.factories import make_clinic, make_staff
from tests.web_helpers import PASSWORD, csrf_from, page_csrf, sign_in

# The pages sit on the same queries the API tests run on both databases; SQLite keeps these fast.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


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


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/patients/1?tab=all", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/patients/1%3Ftab%3Dall"


def test_the_login_page_has_labelled_fields_and_a_csrf_token(client: TestClient) -> None:
    html = client.get("/login").text
    assert '<label for="email">' in html and 'id="email"' in html
    assert '<label for="password">' in html
    assert len(csrf_from(html)) >= 32


def test_a_wrong_password_is_refused(client: TestClient, coordinator: StaffUser) -> None:
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": coordinator.email, "password": "wrong", "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert f'value="{coordinator.email}"' in response.text  # the email is kept
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_unknown_email_gets_the_same_answer(client: TestClient, coordinator: StaffUser) -> None:
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"email": "nobody@example.org", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 401
    assert "Wrong email or password" in response.text


def test_a_disabled_account_cannot_sign_in(client: TestClient, session: Session, coordinator: StaffUser) -> None:
    coordinator.active = False
    session.add(coordinator)
    session.commit()
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"email": coordinator.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 401


def test_login_leads_to_the_page_asked_for(client: TestClient, session: Session, coordinator: StaffUser) -> None:
    token = csrf_from(client.get("/login?next=/import").text)
    response = client.post(
        "/login",
        data={"email": coordinator.email.upper(), "password": PASSWORD, "csrf_token": token, "next": "/import"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/import"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert client.get("/").status_code == 200
    assert client.get("/login", follow_redirects=False).status_code == 303  # already signed in
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "staff.login")).one()
    assert audit.actor == f"staff:{coordinator.id}"


def test_login_never_redirects_off_site(client: TestClient, coordinator: StaffUser) -> None:
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"email": coordinator.email, "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_the_csrf_token_changes_at_login(client: TestClient, coordinator: StaffUser) -> None:
    before = csrf_from(client.get("/login").text)
    sign_in(client, coordinator.email)
    assert page_csrf(client) != before


def test_a_form_without_the_csrf_token_is_refused(client: TestClient, coordinator: StaffUser) -> None:
    response = client.post("/login", data={"email": coordinator.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "Form expired" in response.text
    sign_in(client, coordinator.email)
    for path in ("/logout", "/procedures/new", "/procedures/1/cancel", "/procedures/1/move"):
        assert client.post(path, data={"reason": "x"}).status_code == 403, path
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403, path
        assert client.post(path, data={"csrf_token": "fälschung ✓"}).status_code == 403, path
    assert client.get("/").status_code == 200  # still signed in


def test_a_csrf_token_from_another_session_is_refused(settings: Settings, coordinator: StaffUser) -> None:
    app = create_app(settings)
    with TestClient(app) as mine, TestClient(app) as theirs:
        sign_in(mine, coordinator.email)
        sign_in(theirs, coordinator.email)
        response = mine.post("/logout", data={"csrf_token": page_csrf(theirs)})
        assert response.status_code == 403


def test_logout_ends_the_session(client: TestClient, session: Session, coordinator: StaffUser) -> None:
    sign_in(client, coordinator.email)
    response = client.post("/logout", data={"csrf_token": page_csrf(client)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303
    assert "You are signed out." in client.get("/login").text
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "staff.logout")).one()


def test_a_disabled_account_loses_its_session(client: TestClient, session: Session, coordinator: StaffUser) -> None:
    sign_in(client, coordinator.email)
    coordinator.active = False
    session.add(coordinator)
    session.commit()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_secure_behind_https(settings: Settings, coordinator: StaffUser) -> None:
    secure = settings.model_copy(update={"public_base_url": "https://care.example.org"})
    with TestClient(create_app(secure), base_url="https://testserver") as client:
        token = csrf_from(client.get("/login").text)
        response = client.post("/login", data={"email": coordinator.email, "password": PASSWORD, "csrf_token": token},
                               follow_redirects=False)
        assert "secure" in response.headers["set-cookie"].lower()


def test_pages_are_not_framed_or_cached(client: TestClient) -> None:
    page = client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")
