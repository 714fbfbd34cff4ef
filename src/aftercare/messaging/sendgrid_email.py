"""Email through SendGrid with the real SDK: text + HTML, our id in custom_args, tracking off, no retries.

Failure classes (messaging.md §7 rule 5):
  retryable  429 (wait for Retry-After / X-RateLimit-Reset), connection refused / connect timeout
  rejected   400, 401, 403, 413 and any other 4xx: not sent, not retried
  ambiguous  5xx, read timeout, connection reset, unreadable answer: maybe sent
SendGrid refuses nothing permanently at send time; bounces, blocks and unsubscribes arrive later as
Event Webhook events carrying custom_args `m`.

Reconciliation (`find_sent`): mail/send has no idempotency key and no cheap lookup. The Email
Activity API (`GET /v3/messages?query=unique_args['m']="<id>"`) finds a message by its custom arg,
but it is a paid add-on, needs an API key with Email Activity access, is rate limited and lags
behind the send by up to minutes. It is used only when `sendgrid_activity_lookup` is on; otherwise
`find_sent` cannot know and returns None (`reconciles` is False), and the caller decides by the
Event Webhook (which echoes `m`) and a grace period.
"""

from __future__ import annotations

import base64
import http.client
import logging
import threading
import urllib.error
from datetime import datetime
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Asm,
    ClickTracking,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    GroupId,
    Mail,
    OpenTracking,
    To,
    TrackingSettings,
)
from sendgrid.helpers.mail import Attachment as SGAttachment

from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, SendReceipt
from aftercare.messaging.mask import mask_address
from aftercare.messaging.ratelimit import retry_after
from aftercare.models import Channel
from aftercare.settings import Settings

log = logging.getLogger(__name__)
_SDK_LOG = logging.getLogger("python_http_client.client")  # logs the Bearer key at DEBUG
if _SDK_LOG.level == logging.NOTSET:
    _SDK_LOG.setLevel(logging.INFO)

DEFAULT_HOST = "https://api.sendgrid.com"
ID_ARG = "m"


class SendGridEmail:
    """The email provider. Safe to share between threads: each thread gets its own SDK client."""

    channel = Channel.email
    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        from_name: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        unsubscribe_group_id: int | None = None,
        activity_lookup: bool = False,
    ) -> None:
        self._api_key = api_key
        self.from_email = from_email
        self.from_name = from_name
        self.host = (api_base_url or DEFAULT_HOST).rstrip("/")
        self.timeout = timeout
        self.unsubscribe_group_id = unsubscribe_group_id
        self.reconciles = activity_lookup  # find_sent() can tell "not sent" only through the Activity API
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridEmail:
        assert settings.sendgrid_api_key and settings.sendgrid_from_email
        return cls(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            from_email=settings.sendgrid_from_email,
            from_name=settings.sendgrid_from_name,
            api_base_url=settings.sendgrid_api_base_url,
            timeout=settings.provider_timeout_seconds,
            unsubscribe_group_id=settings.sendgrid_unsubscribe_group_id,
            activity_lookup=settings.sendgrid_activity_lookup,
        )

    def build(self, message: OutboundMessage) -> dict[str, Any]:
        """The mail/send request body."""
        if not message.subject:
            raise DeliveryError("an email needs a subject", FailureKind.rejected)
        mail = Mail(
            from_email=From(self.from_email, self.from_name),
            to_emails=To(message.to),
            subject=message.subject,
            plain_text_content=message.body,
            html_content=message.html,
        )
        mail.custom_arg = CustomArg(ID_ARG, message.message_id)
        for item in message.attachments:
            mail.add_attachment(SGAttachment(
                FileContent(base64.b64encode(item.content.encode("utf-8")).decode("ascii")), FileName(item.filename),
                FileType(item.content_type), Disposition("attachment"),
            ))
        if self.unsubscribe_group_id is not None:
            mail.asm = Asm(GroupId(self.unsubscribe_group_id))
        # No tracking redirects or pixels: signed links must reach us untouched (messaging.md §6).
        mail.tracking_settings = TrackingSettings(
            click_tracking=ClickTracking(False, False), open_tracking=OpenTracking(False)
        )
        body: dict[str, Any] = mail.get()
        return body

    def send(self, message: OutboundMessage) -> SendReceipt:
        payload = self.build(message)
        try:
            response = self._client().client.mail.send.post(request_body=payload)
        except Exception as exc:
            error = classify(exc)
            log.info("sendgrid send %s to %s failed: %s (%s)", message.message_id, mask_address(message.to),
                     error.kind.value, error.code)
            raise error from exc
        provider_id = response.headers.get("X-Message-Id") if response.headers else None
        if not provider_id:
            raise DeliveryError(f"SendGrid answered {response.status_code} without X-Message-Id",
                                FailureKind.ambiguous)
        return SendReceipt(provider_id=str(provider_id), status="accepted")

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        """The Activity API's record of this message (by custom arg `m` and recipient), or None.

        Without `activity_lookup` this always returns None (cannot tell). With it, raises
        DeliveryError(ambiguous) when SendGrid cannot be asked right now.
        """
        if not self.reconciles:
            return None
        message_id = message.message_id.replace('"', "")
        query = {"query": f"unique_args['{ID_ARG}']=\"{message_id}\"", "limit": 10}
        try:
            response = self._client().client.messages.get(query_params=query)
            found = response.to_dict or {}
        except Exception as exc:
            error = classify(exc)
            raise DeliveryError(f"cannot look up sent email: {error}", FailureKind.ambiguous, error.code,
                                error.retry_after) from exc
        for row in found.get("messages") or []:
            if str(row.get("to_email", "")).lower() == message.to.lower() and row.get("msg_id"):
                return SendReceipt(provider_id=str(row["msg_id"]), status=str(row.get("status") or "processed"))
        return None

    def _client(self) -> SendGridAPIClient:
        client: SendGridAPIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = SendGridAPIClient(self._api_key, host=self.host)
            client.client.timeout = self.timeout  # the SDK has no timeout of its own (sendgrid-python #757)
            self._local.client = client
        return client


def classify(exc: BaseException) -> DeliveryError:
    """Map anything the SendGrid client can raise to a DeliveryError with its FailureKind."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, HTTPError):
        status = int(exc.status_code)
        text = f"SendGrid {status}: {_reason(exc)}"
        if status == 429:
            headers = dict(exc.headers.items()) if exc.headers is not None else {}
            return DeliveryError(text, FailureKind.retryable, status, retry_after(headers))
        if 400 <= status < 500:
            return DeliveryError(text, FailureKind.rejected, status)
        return DeliveryError(text, FailureKind.ambiguous, status)
    if isinstance(exc, urllib.error.URLError):
        # urllib raises URLError only while connecting / writing the request: nothing was accepted.
        return DeliveryError(f"could not connect to SendGrid: {exc.reason}", FailureKind.retryable)
    if isinstance(exc, TimeoutError | ConnectionError | http.client.HTTPException | OSError):
        return DeliveryError(f"no answer from SendGrid ({type(exc).__name__}); the email may have been sent",
                             FailureKind.ambiguous)
    return DeliveryError(f"unexpected {type(exc).__name__} from SendGrid; the email may have been sent",
                         FailureKind.ambiguous)


def _reason(exc: HTTPError) -> str:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
    return body[:300]
