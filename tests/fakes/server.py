"""A local fake of the Twilio and SendGrid endpoints we use, for tests and the benchmark.

Twilio (form-encoded, HTTP Basic auth with the account SID as user):
  POST /2010-04-01/Accounts/{AC}/Messages.json         -> 201 message JSON (sid "SM" + 32 hex, status "queued")
  GET  /2010-04-01/Accounts/{AC}/Messages.json          -> list, newest first; filters To, From, DateSent[<>]
  GET  /2010-04-01/Accounts/{AC}/Messages/{SM}.json     -> one message or 404 (code 20404)
SendGrid (JSON, Bearer auth):
  POST /v3/mail/send                                     -> 202, empty body, X-Message-Id header
  GET  /v3/messages?query=...&limit=N                    -> Email Activity search (msg_id LIKE, to_email,
                                                            subject, unique_args['k'] clauses joined by AND)

Every request is recorded; create calls answer by script (`script`: next matching calls, in order),
by rule (`rule`: every matching call, or every Nth) or with success. A ThreadingHTTPServer with
keep-alive serves many concurrent clients; `latency` delays every answer.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.replies import Reply, twilio_error

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
MESSAGING_SERVICE_SID = "MG" + "e" * 32
SENDGRID_API_KEY = "SG.fake-sendgrid-key"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TW_BASE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-zA-Z]+)/Messages(?:/(?P<msid>[A-Z]{2}[0-9a-f]+))?\.json$")
_CLAUSE = re.compile(
    r"""^\s*(?:unique_args\['(?P<arg>[^']+)'\]|(?P<field>msg_id|to_email|from_email|subject|status))\s*"""
    r"""(?P<op>=|LIKE)\s*(?P<q>["'])(?P<value>.*)(?P=q)\s*$""",
    re.IGNORECASE,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(value: datetime | None) -> str | None:
    return format_datetime(value) if value else None


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: datetime

    @property
    def is_create(self) -> bool:
        return self.method == "POST" and (self.path.endswith("/Messages.json") or self.path == "/v3/mail/send")


@dataclass
class SentSms:
    """A message the fake Twilio accepted (what `GET Messages.json` lists)."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    validity_period: int | None
    created_at: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    error_code: int | None = None

    @property
    def message_id(self) -> str | None:
        """Our opaque id, read back from the `m` query parameter of the StatusCallback URL."""
        if not self.status_callback:
            return None
        values = parse_qs(urlsplit(self.status_callback).query).get("m")
        return values[0] if values else None

    def as_json(self) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": _rfc2822(self.created_at),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_sent or self.created_at),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "0" if self.messaging_service_sid else "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


@dataclass
class SentEmail:
    """A mail/send the fake SendGrid accepted."""

    x_message_id: str
    to: list[str]
    from_email: str
    from_name: str | None
    subject: str
    text: str | None
    html: str | None
    custom_args: dict[str, str]
    asm_group_id: int | None
    tracking_settings: dict[str, Any]
    payload: dict[str, Any]
    created_at: datetime
    status: str = "processed"

    @property
    def message_id(self) -> str | None:
        """Our opaque id from `custom_args.m`."""
        return self.custom_args.get("m")

    @property
    def msg_id(self) -> str:
        """The per-recipient id the Activity API and the Event Webhook use (X-Message-Id + suffix)."""
        return f"{self.x_message_id}.filterdrecv-fake-1-0.0"


@dataclass
class _Rule:
    reply: Reply
    channel: str | None
    to: str | None
    every: int = 1
    seen: int = 0

    def matches(self, channel: str, to: str | None) -> bool:
        return (self.channel is None or self.channel == channel) and (self.to is None or self.to == to)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], fake: FakeProviders) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def do_POST(self) -> None:
        self.server.fake._handle(self)


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None, delay: float = 0.0) -> _Answer:
    merged = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return _Answer(status, json.dumps(payload).encode(), merged, delay=delay)


class FakeProviders:
    """The fake Twilio + SendGrid server. Use as a context manager or start()/stop()."""

    def __init__(self, *, latency: float = 0.0, record_requests: bool = True, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.latency = latency
        self.record_requests = record_requests
        self.account_sid = ACCOUNT_SID
        self.auth_token = AUTH_TOKEN
        self.messaging_service_sid = MESSAGING_SERVICE_SID
        self.sendgrid_api_key = SENDGRID_API_KEY
        self.requests: list[RecordedRequest] = []
        self.sent_sms: list[SentSms] = []
        self.sent_email: list[SentEmail] = []
        self.counts: Counter[str] = Counter()
        self._scripts: list[_Rule] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviders:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-providers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------------

    def script(self, *replies: Reply, channel: str | None = None, to: str | None = None) -> None:
        """The next matching create calls get these replies, one each, in order."""
        with self._lock:
            self._scripts.extend(_Rule(reply, channel, to) for reply in replies)

    def rule(self, reply: Reply, *, channel: str | None = None, to: str | None = None, every: int = 1) -> None:
        """Every matching create call (or every `every`-th one) gets this reply until reset()."""
        if every < 1:
            raise ValueError("every must be >= 1")
        with self._lock:
            self._rules.append(_Rule(reply, channel, to, every))

    def reset(self) -> None:
        """Forget scripts, rules and everything recorded."""
        with self._lock:
            self._scripts.clear()
            self._rules.clear()
            self.requests.clear()
            self.sent_sms.clear()
            self.sent_email.clear()
            self.counts.clear()

    def creates(self, channel: str | None = None) -> int:
        """How many create calls arrived (sms, email or both), recorded or not."""
        if channel is None:
            return self.counts["create:sms"] + self.counts["create:email"]
        return self.counts[f"create:{channel}"]

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> SentSms:
        """Move a fake SMS on (sent, delivered, undelivered...), as Twilio would before a status callback."""
        with self._lock:
            for sms in self.sent_sms:
                if sms.sid == sid:
                    sms.status, sms.error_code = status, error_code
                    if status in ("sent", "delivered", "undelivered") and sms.date_sent is None:
                        sms.date_sent = _now()
                    return sms
        raise KeyError(sid)

    def sms_for(self, message_id: str) -> list[SentSms]:
        return [s for s in self.sent_sms if s.message_id == message_id]

    def email_for(self, message_id: str) -> list[SentEmail]:
        return [e for e in self.sent_email if e.message_id == message_id]

    def settings_env(self) -> dict[str, str]:
        """AFTERCARE_* variables that point both providers at this fake."""
        return {
            "AFTERCARE_TWILIO_ACCOUNT_SID": self.account_sid,
            "AFTERCARE_TWILIO_AUTH_TOKEN": self.auth_token,
            "AFTERCARE_TWILIO_MESSAGING_SERVICE_SID": self.messaging_service_sid,
            "AFTERCARE_TWILIO_API_BASE_URL": self.url,
            "AFTERCARE_SENDGRID_API_KEY": self.sendgrid_api_key,
            "AFTERCARE_SENDGRID_FROM_EMAIL": "care@clinic.example",
            "AFTERCARE_SENDGRID_API_BASE_URL": self.url,
        }

    # -- request handling ------------------------------------------------------------------------

    def _pick(self, channel: str, to: str | None) -> Reply:
        with self._lock:
            self.counts[f"create:{channel}"] += 1
            for index, scripted in enumerate(self._scripts):
                if scripted.matches(channel, to):
                    del self._scripts[index]
                    return scripted.reply
            for rule in self._rules:
                if rule.matches(channel, to):
                    rule.seen += 1
                    if rule.seen % rule.every == 0:
                        return rule.reply
        return Reply()

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        payload: Any = None
        if raw and "json" in content_type:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
        elif raw:
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        query = parse_qs(parts.query, keep_blank_values=True)
        if self.record_requests:
            recorded = RecordedRequest(handler.command, parts.path, query, form, payload, dict(handler.headers.items()),
                                       _now())
            with self._lock:
                self.requests.append(recorded)
        answer = self._route(handler, parts.path, query, form, payload, raw)
        delay = self.latency + answer.delay
        if delay > 0:
            time.sleep(delay)
        if answer.drop:
            self._reset_connection(handler)
            return
        self._write(handler, answer)

    def _route(self, handler: _Handler, path: str, query: dict[str, list[str]], form: dict[str, str], payload: Any,
               raw: bytes) -> _Answer:
        twilio = _TW_BASE.match(path)
        if twilio:
            if not self._twilio_authorised(handler, twilio["sid"]):
                return _json_answer(401, {"code": 20003, "message": "Authenticate", "status": 401,
                                          "more_info": "https://www.twilio.com/docs/errors/20003"})
            if handler.command == "POST" and not twilio["msid"]:
                return self._twilio_create(twilio["sid"], form)
            if handler.command == "GET" and not twilio["msid"]:
                return self._twilio_list(twilio["sid"], path, query)
            if handler.command == "GET":
                return self._twilio_fetch(twilio["msid"])
        if path in ("/v3/mail/send", "/v3/messages"):
            auth = handler.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                return _json_answer(401, {"errors": [{"message": "The provided authorization grant is invalid, "
                                                                 "expired, or revoked", "field": None, "help": None}]})
            if path == "/v3/mail/send" and handler.command == "POST":
                return self._sendgrid_send(payload, raw)
            if path == "/v3/messages" and handler.command == "GET":
                return self._sendgrid_activity(query)
        return _json_answer(404, {"message": f"fake: no route for {handler.command} {path}", "status": 404})

    # -- Twilio ----------------------------------------------------------------------------------

    def _twilio_authorised(self, handler: _Handler, sid: str) -> bool:
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == sid and bool(password)

    def _twilio_create(self, account_sid: str, form: dict[str, str]) -> _Answer:
        problem = _twilio_problem(form)
        if problem:
            with self._lock:
                self.counts["create:sms"] += 1
            return self._error(twilio_error(problem))
        to = form["To"]
        reply = self._pick("sms", to)
        sms = SentSms(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            body=form.get("Body", ""),
            status_callback=form.get("StatusCallback"),
            validity_period=int(form["ValidityPeriod"]) if form.get("ValidityPeriod") else None,
            created_at=_now(),
            status="accepted" if form.get("MessagingServiceSid") else "queued",
        )
        if reply.records:
            with self._lock:
                self.sent_sms.append(sms)
        if reply.drop:
            return _Answer(0, drop=True, delay=reply.delay)
        if reply.success:
            return _json_answer(201, sms.as_json(), delay=reply.delay)
        return self._error(reply)

    def _error(self, reply: Reply) -> _Answer:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["Retry-After"] = f"{reply.retry_after:g}"
            headers["X-RateLimit-Reset"] = str(int(time.time() + reply.retry_after))
        body: dict[str, Any]
        if reply.body is not None:
            body = reply.body
        else:
            body = {"message": reply.message or "error", "status": reply.status}
            if reply.code is not None:
                body["code"] = reply.code
                body["more_info"] = f"https://www.twilio.com/docs/errors/{reply.code}"
        return _json_answer(reply.status, body, headers, delay=reply.delay)

    def _twilio_list(self, account_sid: str, path: str, query: dict[str, list[str]]) -> _Answer:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        with self._lock:
            rows = [s for s in self.sent_sms if s.account_sid == account_sid]
        if one("To"):
            rows = [s for s in rows if s.to == one("To")]
        if one("From"):
            rows = [s for s in rows if s.from_ == one("From")]
        for key, keep in (("DateSent", lambda d, v: d == v), ("DateSent<", lambda d, v: d <= v),
                          ("DateSent>", lambda d, v: d >= v)):
            value = one(key)
            if value:
                day = value[:10]
                rows = [s for s in rows if s.date_sent is not None and keep(s.date_sent.date().isoformat(), day)]
        rows.sort(key=lambda s: s.created_at, reverse=True)
        size = max(1, min(int(one("PageSize") or 50), 1000))
        page = int(one("Page") or 0)
        chunk = rows[page * size:(page + 1) * size]
        base = f"{path}?PageSize={size}"
        more = len(rows) > (page + 1) * size
        return _json_answer(200, {
            "messages": [s.as_json() for s in chunk],
            "end": page * size + max(len(chunk) - 1, 0),
            "first_page_uri": f"{base}&Page=0",
            "next_page_uri": f"{base}&Page={page + 1}&PageToken=PA{page + 1}" if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": f"{base}&Page={page - 1}" if page > 0 else None,
            "start": page * size,
            "uri": f"{base}&Page={page}",
        })

    def _twilio_fetch(self, sid: str) -> _Answer:
        with self._lock:
            found = next((s for s in self.sent_sms if s.sid == sid), None)
        if found is None:
            return _json_answer(404, {"code": 20404, "message": f"The requested resource {sid} was not found",
                                      "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404})
        return _json_answer(200, found.as_json())

    # -- SendGrid --------------------------------------------------------------------------------

    def _sendgrid_send(self, payload: Any, raw: bytes) -> _Answer:
        problems = _mail_problems(payload)
        if problems:
            with self._lock:
                self.counts["create:email"] += 1
            return _json_answer(400, {"errors": [{"message": p, "field": None, "help": None} for p in problems]})
        personalization = payload["personalizations"][0]
        to = [t["email"] for t in personalization["to"]]
        reply = self._pick("email", to[0])
        x_message_id = secrets.token_urlsafe(16)[:22]
        if reply.records:
            content = {c["type"]: c["value"] for c in payload.get("content", [])}
            custom_args = dict(payload.get("custom_args") or {})
            custom_args.update(personalization.get("custom_args") or {})
            email = SentEmail(
                x_message_id=x_message_id,
                to=to,
                from_email=payload["from"]["email"],
                from_name=payload["from"].get("name"),
                subject=personalization.get("subject") or payload.get("subject", ""),
                text=content.get("text/plain"),
                html=content.get("text/html"),
                custom_args=custom_args,
                asm_group_id=(payload.get("asm") or {}).get("group_id"),
                tracking_settings=payload.get("tracking_settings") or {},
                payload=payload,
                created_at=_now(),
            )
            with self._lock:
                self.sent_email.append(email)
        if reply.drop:
            return _Answer(0, drop=True, delay=reply.delay)
        if reply.success:
            return _Answer(202, b"", {"X-Message-Id": x_message_id}, delay=reply.delay)
        if reply.body is None:
            reply = Reply(status=reply.status, retry_after=reply.retry_after, delay=reply.delay, headers=reply.headers,
                          body={"errors": [{"message": reply.message or "error", "field": None, "help": None}]})
        return self._error(reply)

    def _sendgrid_activity(self, query: dict[str, list[str]]) -> _Answer:
        text = (query.get("query") or [""])[0]
        limit = int((query.get("limit") or ["10"])[0])
        with self._lock:
            rows = list(self.sent_email)
        for clause in filter(None, re.split(r"\s+AND\s+", text, flags=re.IGNORECASE)):
            match = _CLAUSE.match(clause.strip("() "))
            if not match:
                return _json_answer(400, {"errors": [{"message": f"invalid query clause {clause!r}"}]})
            rows = [e for e in rows if _activity_matches(e, match)]
        rows.sort(key=lambda e: e.created_at, reverse=True)
        return _json_answer(200, {"messages": [
            {
                "from_email": e.from_email,
                "msg_id": e.msg_id,
                "subject": e.subject,
                "to_email": e.to[0],
                "status": "delivered" if e.status == "delivered" else "processing",
                "opens_count": 0,
                "clicks_count": 0,
                "last_event_time": e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for e in rows[:limit]
        ]})

    # -- wire ------------------------------------------------------------------------------------

    @staticmethod
    def _write(handler: _Handler, answer: _Answer) -> None:
        try:
            handler.send_response(answer.status)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
            handler.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed its end
            handler.close_connection = True

    @staticmethod
    def _reset_connection(handler: _Handler) -> None:
        """Close with SO_LINGER 0: the client sees a connection reset, never an answer."""
        handler.close_connection = True
        try:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def _twilio_problem(form: dict[str, str]) -> int | None:
    """The error code the real API gives for a malformed create, if any."""
    to = form.get("To")
    if not to:
        return 21604
    if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
        return 21602
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603
    if not _E164.match(to):
        return 21211
    return None


def _mail_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["The request body must be JSON."]
    problems = []
    personalizations = payload.get("personalizations")
    if not personalizations or not personalizations[0].get("to"):
        problems.append("The personalizations field is required and must have at least one personalization.")
    if not (payload.get("from") or {}).get("email"):
        problems.append("The from object must be provided for every email send.")
    subject = payload.get("subject") or (personalizations[0].get("subject") if personalizations else None)
    if not subject:
        problems.append("The subject is required.")
    if not payload.get("content") and not payload.get("template_id"):
        problems.append("Unless a valid template_id is provided, the content parameter is required.")
    return problems


def _activity_matches(email: SentEmail, match: re.Match[str]) -> bool:
    value, like = match["value"], match["op"].upper() == "LIKE"
    if match["arg"]:
        actual: str | None = email.custom_args.get(match["arg"])
    else:
        actual = {"msg_id": email.msg_id, "to_email": email.to[0], "from_email": email.from_email,
                  "subject": email.subject, "status": email.status}[match["field"].lower()]
    if actual is None:
        return False
    if like:
        pattern = "^" + ".*".join(re.escape(part) for part in value.split("%")) + "$"
        return re.match(pattern, actual) is not None
    return actual == value
