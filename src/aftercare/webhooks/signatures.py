"""Checking that a webhook really comes from Twilio or SendGrid.

Twilio: `X-Twilio-Signature` (HMAC-SHA1 with the Auth Token) over the URL Twilio called plus every
posted field. The URL is rebuilt from `public_base_url` + path + raw query, never from the Host header a
proxy may have rewritten. The previous token (`twilio_auth_token_secondary`) is accepted during a
rotation. SendGrid: ECDSA over `timestamp + raw body` with the configured public key; the helper has no
replay window, so the timestamp must be within `webhook_max_age_seconds` of now.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.requests import Request
from twilio.request_validator import RequestValidator

from aftercare.settings import Settings

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def public_url(request: Request, settings: Settings) -> str:
    """The URL the provider was given: our public base, the path, and the query exactly as received."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return settings.public_base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def twilio_valid(request: Request, form: Mapping[str, Any], settings: Settings) -> bool:
    signature = request.headers.get(TWILIO_SIGNATURE)
    if not signature:
        return False
    url = public_url(request, settings)
    tokens = [t.get_secret_value() for t in (settings.twilio_auth_token, settings.twilio_auth_token_secondary) if t]
    return any(RequestValidator(token).validate(url, form, signature) for token in tokens)


def sendgrid_problem(
    raw: bytes, headers: Mapping[str, str], settings: Settings, now: float | None = None
) -> str | None:
    """Why a SendGrid event request is refused (None: signed, fresh and well-formed)."""
    if not settings.sendgrid_webhook_public_key:
        return "the SendGrid webhook public key is not configured"
    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        return "missing signature headers"
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return "timestamp is not a number"
    if abs(age) > settings.webhook_max_age_seconds:
        return f"timestamp is {int(age)} s off (more than {settings.webhook_max_age_seconds} s)"
    try:
        payload = raw.decode("utf-8")
        verifier = EventWebhook(settings.sendgrid_webhook_public_key)
        valid = verifier.verify_signature(payload, signature, timestamp)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return "signature or body cannot be read"
    return None if valid else "signature does not match"
