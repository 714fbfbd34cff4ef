"""How the fake answers a create call (Twilio `Messages.json` POST or SendGrid `mail/send`).

Build replies with the helpers below and hand them to `FakeProviders.script(...)` (next calls, in
order) or `FakeProviders.rule(...)` (every matching call until `reset()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `status=0` means the normal success answer (201 Twilio / 202 SendGrid)."""

    status: int = 0
    code: int | None = None  # Twilio error code in the JSON body
    message: str | None = None
    retry_after: float | None = None  # sent as the Retry-After header
    delay: float = 0.0  # seconds before answering (on top of the server's latency)
    drop: bool = False  # accept (record as sent), then reset the connection without an answer
    record: bool | None = None  # counts as sent? default: success, drop and slow success yes; errors no
    body: dict[str, Any] | None = None  # exact JSON error body (e.g. an RFC 9457 problem)
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def success(self) -> bool:
        return self.status == 0

    @property
    def records(self) -> bool:
        if self.record is not None:
            return self.record
        return self.success or self.drop


def ok(delay: float = 0.0) -> Reply:
    return Reply(delay=delay)


def twilio_error(code: int, status: int = 400, message: str | None = None) -> Reply:
    """A Twilio REST error, e.g. 21211 (invalid To), 21610 (opted out), 21614 (not mobile), 21611 (queue full)."""
    return Reply(status=status, code=code, message=message or _TWILIO_MESSAGES.get(code, f"Twilio error {code}"))


def rate_limited(retry_after: float | None = 1.0, code: int = 20429) -> Reply:
    """HTTP 429 (Twilio code 20429 in the body; SendGrid gets an `errors` body), with Retry-After."""
    return Reply(status=429, code=code, message="Too Many Requests", retry_after=retry_after)


def server_error(status: int = 500, record: bool = False) -> Reply:
    """A 5xx. `record=True` simulates a provider that sent the message and still answered 5xx."""
    return Reply(status=status, message="Internal Server Error", record=record)


def drop() -> Reply:
    """Accept the message (it is recorded as sent), then reset the connection: the client gets no answer."""
    return Reply(drop=True)


def hang(seconds: float, record: bool = True) -> Reply:
    """Answer success only after `seconds` (longer than the client timeout = a read timeout). Recorded at once."""
    return Reply(delay=seconds, record=record)


def sendgrid_error(status: int, message: str = "Bad Request") -> Reply:
    return Reply(status=status, body={"errors": [{"message": message, "field": None, "help": None}]})


_TWILIO_MESSAGES = {
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21614: "'To' number is not a valid mobile number",
    21635: "'To' number cannot be a landline",
    20429: "Too Many Requests",
    21602: "Message body is required.",
    21604: "A 'To' phone number is required.",
    21603: "A 'From' phone number is required.",
}
