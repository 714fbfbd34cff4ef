"""Signed survey links: `/s/<token>`, opaque, expiring with the survey's window, single-use, stored hashed.

A token is 22 URL-safe characters (132 bits): HMAC-SHA256(secret key, a random per-link seed), cut short so
an SMS invitation keeps its segment budget. Only its SHA-256 is stored (`survey_link.token_hash`), so a
copy of the database opens no survey. The seed lets the dispatcher write the *same* link again when it
re-renders a message (a retry, a reconciliation lookup by exact body, a reminder): with the secret key
unchanged the token is derived again; after a key change a new link row is added (old links keep
working until they expire, as validation only hashes what the patient brings).

A link is usable while its response is open and `expires_at` (= the response's `closes_at`) is ahead.
It is used up when the survey is completed through it (`used_at`); any completion ends every link of
the response, since the response is no longer open. Opening a link (GET) never writes anything.
The web form carries a nonce tied to the token (HMAC of its hash), checked on every POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from aftercare.models import SurveyLink, SurveyResponse, SurveyStatus, Touchpoint, TouchpointKind
from aftercare.settings import Settings

TOKEN_LENGTH = 22
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
PATH_PREFIX = "/s/"


def derive(secret: str, seed: str) -> str:
    digest = hmac.new(secret.encode(), f"survey-link:{seed}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:TOKEN_LENGTH]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def form_nonce(secret: str, hashed: str) -> str:
    """The hidden form field that proves a POST came from the page this link rendered."""
    return hmac.new(secret.encode(), f"survey-form:{hashed}".encode(), hashlib.sha256).hexdigest()[:32]


def nonce_ok(secret: str, hashed: str, sent: object) -> bool:
    expected = form_nonce(secret, hashed).encode()
    return isinstance(sent, str) and hmac.compare_digest(sent.encode("utf-8", "replace"), expected)  # any text


def url_for(settings: Settings, token: str) -> str:
    return settings.public_base_url.rstrip("/") + PATH_PREFIX + token


def token_for(session: Session, response: SurveyResponse, settings: Settings) -> str:
    """The response's link token: the existing one (derived again), else a new link row in the caller's
    transaction."""
    assert response.id is not None
    secret = settings.secret_key.get_secret_value()
    for link in session.exec(select(SurveyLink).where(SurveyLink.response_id == response.id)):
        token = derive(secret, link.seed)
        if hmac.compare_digest(token_hash(token), link.token_hash):
            return token
    seed = secrets.token_urlsafe(24)
    token = derive(secret, seed)
    session.add(SurveyLink(response_id=response.id, token_hash=token_hash(token), seed=seed,
                           expires_at=response.closes_at))
    session.flush()
    return token


def links_for_touchpoints(
    session: Session, touchpoints: Sequence[Touchpoint], settings: Settings
) -> dict[int, str]:
    """Links for a dispatcher batch: check-in and survey invitations (their response is created here if
    needed) and survey reminders. SMS gets one only when `survey_sms_link` is on."""
    from aftercare.surveys.responses import ensure_response, reminded_response

    links: dict[int, str] = {}
    for tp in touchpoints:
        assert tp.id is not None
        if tp.channel.value == "sms" and not settings.survey_sms_link:
            continue
        if tp.kind in (TouchpointKind.checkin, TouchpointKind.survey):
            response = ensure_response(session, tp)
        else:
            response = reminded_response(session, tp)
        if response is not None and response.status == SurveyStatus.open:
            links[tp.id] = url_for(settings, token_for(session, response, settings))
    return links


class LinkState(StrEnum):
    usable = "usable"
    unknown = "unknown"  # malformed, tampered or never issued: 404
    expired = "expired"  # the survey's window has closed: 410
    used = "used"  # the survey was completed: 410
    closed = "closed"  # missed, or closed early (a newer check-in took its place): 410


@dataclass(frozen=True)
class Lookup:
    state: LinkState
    link: SurveyLink | None = None
    response: SurveyResponse | None = None


def lookup(session: Session, token: str, *, now: datetime) -> Lookup:
    """What a presented token opens. Read-only."""
    if not TOKEN_PATTERN.match(token or ""):
        return Lookup(LinkState.unknown)
    link = session.exec(select(SurveyLink).where(col(SurveyLink.token_hash) == token_hash(token))).first()
    if link is None:
        return Lookup(LinkState.unknown)
    response = session.get(SurveyResponse, link.response_id)
    if response is None:
        return Lookup(LinkState.unknown)
    if response.status == SurveyStatus.complete or link.used_at is not None:
        return Lookup(LinkState.used, link, response)
    if response.status != SurveyStatus.open:
        return Lookup(LinkState.closed, link, response)
    if now >= link.expires_at or now >= response.closes_at:
        return Lookup(LinkState.expired, link, response)
    return Lookup(LinkState.usable, link, response)
