"""Signed webhook requests as Twilio and SendGrid would send them, for webhook tests.

Twilio: `X-Twilio-Signature` = RequestValidator(auth_token).compute_signature(public URL, form params).
SendGrid: ECDSA P-256 / SHA-256 over `timestamp + raw body`, base64 DER in
`X-Twilio-Email-Event-Webhook-Signature`, verified by sendgrid.helpers.eventwebhook.EventWebhook with
the base64 public key (what `AFTERCARE_SENDGRID_WEBHOOK_PUBLIC_KEY` holds).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from tests.fakes.server import ACCOUNT_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SentEmail, SentSms

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


# -- Twilio ------------------------------------------------------------------------------------------


def twilio_signature(url: str, params: dict[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature for a POST of `params` to exactly `url` (scheme, host, path and query)."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


def twilio_status_params(sms: SentSms, status: str, error_code: int | None = None) -> dict[str, str]:
    """The form Twilio posts to a StatusCallback URL."""
    params = {
        "MessageSid": sms.sid,
        "SmsSid": sms.sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": sms.account_sid,
        "To": sms.to,
        "From": sms.from_ or "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    if sms.messaging_service_sid:
        params["MessagingServiceSid"] = sms.messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def twilio_status_callback(
    sms: SentSms, status: str, error_code: int | None = None, auth_token: str = AUTH_TOKEN
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, form, headers) of a signed status callback for a message the fake accepted."""
    if not sms.status_callback:
        raise ValueError(f"{sms.sid} was sent without a StatusCallback")
    params = twilio_status_params(sms, status, error_code)
    return sms.status_callback, params, {TWILIO_SIGNATURE: twilio_signature(sms.status_callback, params, auth_token)}


def twilio_inbound_params(from_: str, body: str, to: str = "+15005550006", **extra: str) -> dict[str, str]:
    """The form of an inbound SMS webhook (no media)."""
    sid = "SM" + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "MessagingServiceSid": MESSAGING_SERVICE_SID,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def twilio_inbound(
    url: str, from_: str, body: str, auth_token: str = AUTH_TOKEN, **extra: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(form, headers) of a signed inbound SMS posted to `url`."""
    params = twilio_inbound_params(from_, body, **extra)
    return params, {TWILIO_SIGNATURE: twilio_signature(url, params, auth_token)}


# -- SendGrid ----------------------------------------------------------------------------------------


class SendGridSigner:
    """A test EC P-256 key pair that signs Event Webhook bodies the way SendGrid does."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()  # the value SendGrid shows under Mail Settings

    def sign(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """Signature and timestamp headers for this exact raw body."""
        stamp = timestamp if timestamp is not None else str(int(time.time()))
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP: stamp}

    def signed(self, events: list[dict[str, Any]], timestamp: str | None = None) -> tuple[bytes, dict[str, str]]:
        """(raw body, headers) for a list of events."""
        body = json.dumps(events).encode()
        headers = {"Content-Type": "application/json", **self.sign(body, timestamp)}
        return body, headers


@lru_cache(maxsize=1)
def sendgrid_signer() -> SendGridSigner:
    """One key pair per test session."""
    return SendGridSigner()


def sendgrid_event(email: SentEmail, event: str, **extra: Any) -> dict[str, Any]:
    """One Event Webhook event for a mail the fake accepted; custom_args come back as top-level keys."""
    payload: dict[str, Any] = {
        "email": email.to[0],
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        "sg_message_id": email.msg_id,
        "smtp-id": f"<{email.x_message_id}@fake.sendgrid.net>",
    }
    if email.asm_group_id is not None:
        payload["asm_group_id"] = email.asm_group_id
    payload.update(email.custom_args)
    payload.update(extra)
    return payload
