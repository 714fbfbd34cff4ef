"""CSRF protection for forms: one random token per login session, sent back in a hidden field."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

SESSION_KEY = "csrf"
FIELD = "csrf_token"


class CsrfError(Exception):
    """A state-changing form arrived without this session's token."""


def csrf_token(request: Request) -> str:
    """This session's token, created on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate(request: Request) -> str:
    """A fresh token (after login), so a token seen before login is worthless after."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(request.session[SESSION_KEY])


async def check_csrf(request: Request) -> None:
    """Dependency for every POST form: the hidden field must match the session's token."""
    form = await request.form()
    sent = form.get(FIELD)
    expected = request.session.get(SESSION_KEY)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        # bytes: compare_digest raises TypeError on non-ASCII str, which would be a 500
        or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())
    ):
        raise CsrfError()
