"""The provider interface every channel implements, and the one error type it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from aftercare.models import Channel


class FailureKind(StrEnum):
    retryable = "retryable"  # not sent (429, connect refused/timeout): retry with back-off
    permanent = "permanent"  # rejected (21211, 21614, 21610, bounce): never retry this address
    rejected = "rejected"  # other 4xx: not sent, not retried, the address is not blamed
    ambiguous = "ambiguous"  # maybe sent (read timeout, reset, 5xx): reconcile before any resend


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email (e.g. a visit's .ics invite). SMS providers ignore attachments."""

    filename: str
    content_type: str
    content: str


@dataclass(frozen=True)
class OutboundMessage:
    """What to send. `message_id` is opaque (no PHI) and travels in callbacks and custom_args."""

    message_id: str
    channel: Channel
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    validity_seconds: int | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class SendReceipt:
    provider_id: str
    status: str


class DeliveryError(Exception):
    def __init__(
        self, message: str, kind: FailureKind, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.retry_after = retry_after


class Provider(Protocol):
    """One channel's sender. Implementations never retry a create themselves."""

    channel: Channel
    name: str

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Hand the message to the provider; raise DeliveryError classified by FailureKind."""
        ...

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        """Reconcile an ambiguous send: the provider's record of this message, if it exists."""
        ...
