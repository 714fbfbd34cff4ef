"""SMS through Twilio with the real SDK: one create per send, no SDK retries, every failure classified.

Failure classes (messaging.md §7 rule 5):
  retryable  429 / 20429, 21611 (sender queue full), connection refused / connect timeout: not sent
  permanent  21211 (invalid To), 21614 (not a mobile), 21610 (recipient replied STOP), 21635 (landline)
  rejected   any other 4xx (bad request, auth, config): not sent, not retried
  ambiguous  read timeout, connection reset after the request went out, 5xx, unreadable 2xx: maybe sent

Reconciliation (`find_sent`): Twilio's Message resource does not return the StatusCallback URL that
carries our id, and the API has no idempotency key. So we list the recipient's newest messages
(`To` filter only: a still-queued message has no date_sent, so the day-granular DateSent filters
would hide it) and match one that (1) went out from our sender (Messaging Service SID or From
number), (2) was created no earlier than `since` minus 2 minutes of clock skew and (3) has exactly
our body. Bodies carry a per-message link where there is one (surveys, check-ins); an identical
text to the same number after `since` is, for a resend decision, the same message. The oldest such
match wins. Nothing matching among the newest 50 means "not sent".
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NewConnectionError

from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, SendReceipt
from aftercare.messaging.mask import mask_address
from aftercare.messaging.ratelimit import retry_after
from aftercare.models import Channel
from aftercare.settings import Settings

log = logging.getLogger(__name__)
_SDK_LOG = logging.getLogger("twilio.http_client")  # logs URLs with phone numbers at INFO: keep it quiet
if _SDK_LOG.level == logging.NOTSET:
    _SDK_LOG.setLevel(logging.WARNING)

PERMANENT_CODES = frozenset({21211, 21614, 21610, 21635})
RETRYABLE_CODES = frozenset({20429, 21611})
CLOCK_SKEW = timedelta(minutes=2)
LOOKBACK = 50
_TWILIO_HOST = re.compile(r"^https://[A-Za-z0-9.-]*\.twilio\.com(?=/|$)")


class RedirectingHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sending `https://*.twilio.com` calls to `base_url` when set (a local fake).

    One adapter without retries on both schemes (the SDK only mounts https://), a bounded keep-alive
    pool, and the headers of the last response kept for Retry-After.
    """

    def __init__(self, *, timeout: float, base_url: str | None = None, pool_size: int = 32) -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=_SDK_LOG)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.last_headers: dict[str, str] = {}

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.base_url:
            url = _TWILIO_HOST.sub(self.base_url, url)
        self.last_headers = {}
        response = super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                   timeout=timeout, allow_redirects=allow_redirects)
        self.last_headers = dict(response.headers or {})
        return response


class TwilioSms:
    """The SMS provider. Safe to share between threads: each thread gets its own SDK client and pool."""

    channel = Channel.sms
    name = "twilio"
    reconciles = True  # find_sent() can tell "not sent" from "sent"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        public_base_url: str,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        validity_seconds: int = 3600,
        pool_size: int = 32,
    ) -> None:
        if not messaging_service_sid and not from_number:
            raise ValueError("TwilioSms needs a Messaging Service SID or a From number")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.public_base_url = public_base_url.rstrip("/")
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.api_base_url = api_base_url
        self.timeout = timeout
        self.validity_seconds = validity_seconds
        self.pool_size = pool_size
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSms:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            public_base_url=settings.public_base_url,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from_number,
            api_base_url=settings.twilio_api_base_url,
            timeout=settings.provider_timeout_seconds,
            validity_seconds=settings.twilio_validity_seconds,
            pool_size=settings.provider_pool_size,
        )

    def status_callback_url(self, message_id: str) -> str:
        """Where Twilio reports delivery; carries our opaque id so a lost create response is recoverable."""
        return f"{self.public_base_url}/webhooks/twilio/status?m={quote(message_id, safe='')}"

    def send(self, message: OutboundMessage) -> SendReceipt:
        client, http = self._client()
        params: dict[str, Any] = {
            "to": message.to,
            "body": message.body,
            "status_callback": self.status_callback_url(message.message_id),
            "validity_period": _validity(message.validity_seconds or self.validity_seconds),
        }
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        try:
            created = client.messages.create(**params)
        except Exception as exc:
            error = classify(exc, http.last_headers)
            log.info("twilio send %s to %s failed: %s (%s)", message.message_id, mask_address(message.to),
                     error.kind.value, error.code)
            raise error from exc
        if not created.sid:
            raise DeliveryError("Twilio answered without a message SID", FailureKind.ambiguous)
        return SendReceipt(provider_id=created.sid, status=str(created.status or "queued"))

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        """Twilio's record of this message (see the module docstring for the matching rule), or None.

        Raises DeliveryError(ambiguous) when Twilio cannot be asked right now.
        """
        client, http = self._client()
        try:
            recent = client.messages.list(to=message.to, limit=LOOKBACK, page_size=LOOKBACK)
        except Exception as exc:
            error = classify(exc, http.last_headers)
            raise DeliveryError(f"cannot look up sent messages: {error}", FailureKind.ambiguous, error.code,
                                error.retry_after) from exc
        earliest = since - CLOCK_SKEW
        matches = [
            m for m in recent
            if m.date_created is not None and m.date_created >= earliest
            and _normalise(m.body) == _normalise(message.body)
            and str(m.direction or "outbound-api").startswith("outbound")
            and self._ours(m.messaging_service_sid, m.from_)
        ]
        if not matches:
            return None
        first = min(matches, key=lambda m: m.date_created)
        return SendReceipt(provider_id=str(first.sid), status=str(first.status or "queued"))

    def _ours(self, service_sid: str | None, sender: str | None) -> bool:
        if self.messaging_service_sid:
            return service_sid == self.messaging_service_sid
        return sender == self.from_number

    def _client(self) -> tuple[Client, RedirectingHttpClient]:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            http = RedirectingHttpClient(timeout=self.timeout, base_url=self.api_base_url, pool_size=self.pool_size)
            client = Client(self.account_sid, self._auth_token, http_client=http)
            self._local.client, self._local.http = client, http
        return client, self._local.http


def classify(exc: BaseException, headers: dict[str, str] | None = None) -> DeliveryError:
    """Map anything `messages.create` can raise to a DeliveryError with its FailureKind."""
    wait = retry_after(headers)
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status, code = int(exc.status), _int(exc.code)
        text = f"Twilio {status} {code or ''}: {_message(exc)}".strip()
        if status == 429 or code in RETRYABLE_CODES:
            return DeliveryError(text, FailureKind.retryable, code, wait)
        if code in PERMANENT_CODES:
            return DeliveryError(text, FailureKind.permanent, code)
        if 400 <= status < 500:
            return DeliveryError(text, FailureKind.rejected, code)
        return DeliveryError(text, FailureKind.ambiguous, code, wait)
    if isinstance(exc, requests.exceptions.ConnectTimeout) or _connect_failed(exc):
        return DeliveryError(f"could not connect to Twilio: {type(exc).__name__}", FailureKind.retryable)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return DeliveryError(f"bad Twilio API URL: {exc}", FailureKind.rejected)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return DeliveryError("Twilio did not answer in time (the message may have been sent)", FailureKind.ambiguous)
    return DeliveryError(f"no usable answer from Twilio ({type(exc).__name__}); the message may have been sent",
                         FailureKind.ambiguous)


def _connect_failed(exc: BaseException) -> bool:
    """A requests ConnectionError raised before anything was sent (refused, DNS), not a reset after sending."""
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    for arg in exc.args:
        if isinstance(arg, MaxRetryError) and isinstance(arg.reason, NewConnectionError):
            return True
        if isinstance(arg, NewConnectionError):
            return True
    return False


def _message(exc: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(exc, TwilioRestException):
        return str(exc.msg)
    return str(exc.detail or exc.title)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _validity(seconds: int) -> int:
    return min(max(int(seconds), 1), 36000)


def _normalise(body: str | None) -> str:
    return (body or "").replace("\r\n", "\n").strip()
