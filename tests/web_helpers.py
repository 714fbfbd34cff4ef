"""Helpers for driving the app with a TestClient: read the CSRF field, sign in, read posted inbound SMS."""

from __future__ import annotations

import re
from collections import Counter

from fastapi.testclient import TestClient

from aftercare.webhooks.worker import process_and_reply

PASSWORD = "correct horse battery"  # tests.factories.make_staff's default
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_from(client.get("/login").text)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def page_csrf(client: TestClient, path: str = "/") -> str:
    """The CSRF token of the signed-in session, read from a page's form."""
    return csrf_from(client.get(path).text)


def read_inbound(client: TestClient) -> Counter[str]:
    """What the inbound worker does right after the webhook answers, done now in this thread: read every queued
    SMS and send the replies (the tests run with AFTERCARE_INBOUND_READER=ticker, so nothing races this)."""
    return process_and_reply(client.app.state.settings, client.app.state.engine)  # type: ignore[attr-defined]
