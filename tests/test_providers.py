"""The real Twilio and SendGrid SDKs against the local fake: every failure class, one create per send."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from aftercare.messaging import registry
from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage
from aftercare.messaging.console import ConsoleOutbox
from aftercare.messaging.sendgrid_email import SendGridEmail
from aftercare.messaging.twilio_sms import TwilioSms
from aftercare.models import Channel, Clinic, OutboxMessage, Patient
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.factories import make_clinic, make_staff
from tests.fakes import FakeProviders, Reply, replies
from tests.web_helpers import sign_in

TO = "+14165550199"
EMAIL = "ana@example.org"


def _twilio(fake: FakeProviders, timeout: float = 1.0, **overrides: object) -> TwilioSms:
    values: dict[str, object] = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "public_base_url": "https://aftercare.example",
        "messaging_service_sid": fake.messaging_service_sid,
        "api_base_url": fake.url,
        "timeout": timeout,
    }
    values.update(overrides)
    return TwilioSms(**values)  # type: ignore[arg-type]


def _sendgrid(fake: FakeProviders, timeout: float = 1.0, **overrides: object) -> SendGridEmail:
    values: dict[str, object] = {
        "api_key": fake.sendgrid_api_key,
        "from_email": "care@clinic.example",
        "from_name": "Northside Clinic",
        "api_base_url": fake.url,
        "timeout": timeout,
    }
    values.update(overrides)
    return SendGridEmail(**values)  # type: ignore[arg-type]


def _sms(message_id: str = "tp-41-1", body: str = "Northside Clinic: Hi Ana, how are you today?") -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel=Channel.sms, to=TO, body=body, validity_seconds=1800)


def _email(message_id: str = "tp-42-1") -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel=Channel.email, to=EMAIL, body="Plain text part",
                           subject="Your care tips", html="<p>HTML part</p>")


def _fails(send: object, message: OutboundMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        send(message)  # type: ignore[operator]
    return caught.value


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- Twilio ------------------------------------------------------------------------------------------


def test_twilio_send_creates_one_message_with_callback_validity_and_service(fake_providers: FakeProviders) -> None:
    receipt = _twilio(fake_providers).send(_sms())

    assert fake_providers.creates("sms") == 1
    sent = fake_providers.sent_sms[0]
    assert receipt.provider_id == sent.sid and receipt.status == "accepted"
    form = fake_providers.requests[0].form
    assert form["To"] == TO and form["Body"] == _sms().body
    assert form["MessagingServiceSid"] == fake_providers.messaging_service_sid and "From" not in form
    assert form["ValidityPeriod"] == "1800"
    callback = urlsplit(form["StatusCallback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == "https://aftercare.example/webhooks/twilio/status"
    assert parse_qs(callback.query) == {"m": ["tp-41-1"]}
    assert fake_providers.requests[0].path == f"/2010-04-01/Accounts/{fake_providers.account_sid}/Messages.json"


def test_twilio_send_from_a_number_and_default_validity(fake_providers: FakeProviders) -> None:
    sms = _twilio(fake_providers, messaging_service_sid=None, from_number="+15005550006", validity_seconds=3600)
    sms.send(OutboundMessage("tp-1", Channel.sms, TO, "hi"))

    form = fake_providers.requests[0].form
    assert form["From"] == "+15005550006" and "MessagingServiceSid" not in form
    assert form["ValidityPeriod"] == "3600"


def test_twilio_escapes_the_id_in_the_callback(fake_providers: FakeProviders) -> None:
    assert _twilio(fake_providers).status_callback_url("a b&c") == (
        "https://aftercare.example/webhooks/twilio/status?m=a%20b%26c"
    )


@pytest.mark.parametrize(("reply", "kind", "code"), [
    (replies.twilio_error(21211), FailureKind.permanent, 21211),
    (replies.twilio_error(21614), FailureKind.permanent, 21614),
    (replies.twilio_error(21610), FailureKind.permanent, 21610),
    (replies.twilio_error(21635), FailureKind.permanent, 21635),
    (replies.twilio_error(21611), FailureKind.retryable, 21611),
    (replies.twilio_error(21408, message="Permission to send an SMS has not been enabled"), FailureKind.rejected,
     21408),
    (replies.twilio_error(20003, status=401, message="Authenticate"), FailureKind.rejected, 20003),
    (replies.server_error(500), FailureKind.ambiguous, 500),
    (replies.server_error(503), FailureKind.ambiguous, 503),
    (Reply(status=400, body={"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid To",
                             "status": 400, "code": 21211, "detail": "bad number"}), FailureKind.permanent, 21211),
], ids=["21211", "21614", "21610", "21635", "21611", "other-4xx", "401", "500", "503", "rfc9457"])
def test_twilio_errors_are_classified(fake_providers: FakeProviders, reply: Reply, kind: FailureKind,
                                      code: int) -> None:
    fake_providers.script(reply)

    error = _fails(_twilio(fake_providers).send, _sms())

    assert (error.kind, error.code) == (kind, code)
    assert fake_providers.creates("sms") == 1  # never retried by the SDK


def test_twilio_rate_limit_is_retryable_with_retry_after(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.rate_limited(retry_after=7))

    error = _fails(_twilio(fake_providers).send, _sms())

    assert (error.kind, error.code, error.retry_after) == (FailureKind.retryable, 20429, 7.0)
    assert fake_providers.creates("sms") == 1 and fake_providers.sent_sms == []


def test_twilio_slow_answer_is_ambiguous_after_the_timeout(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.hang(2.0))
    started = time.monotonic()

    error = _fails(_twilio(fake_providers, timeout=0.3).send, _sms())

    assert error.kind == FailureKind.ambiguous
    assert time.monotonic() - started < 1.5
    assert fake_providers.creates("sms") == 1


def test_twilio_dropped_connection_is_ambiguous_and_reconciled(fake_providers: FakeProviders) -> None:
    sms = _twilio(fake_providers)
    since = utcnow()
    fake_providers.script(replies.drop())

    error = _fails(sms.send, _sms())
    found = sms.find_sent(_sms(), since)

    assert error.kind == FailureKind.ambiguous
    assert fake_providers.creates("sms") == 1
    assert found is not None and found.provider_id == fake_providers.sent_sms[0].sid


def test_twilio_find_sent_after_a_timeout(fake_providers: FakeProviders) -> None:
    sms = _twilio(fake_providers, timeout=0.3)
    since = utcnow()
    fake_providers.script(replies.hang(1.0))
    assert _fails(sms.send, _sms()).kind == FailureKind.ambiguous

    found = sms.find_sent(_sms(), since)

    assert found is not None and found.provider_id == fake_providers.sent_sms[0].sid


def test_twilio_find_sent_says_not_sent_when_nothing_matches(fake_providers: FakeProviders) -> None:
    sms = _twilio(fake_providers)
    fake_providers.script(replies.server_error(500))  # not recorded: the provider did not send it
    assert _fails(sms.send, _sms()).kind == FailureKind.ambiguous
    sms.send(_sms("tp-other", body="a different text"))  # same number, other body
    other_sender = _twilio(fake_providers, messaging_service_sid="MG" + "1" * 32)
    other_sender.send(_sms())  # same text, another Messaging Service

    assert sms.find_sent(_sms(), utcnow() - timedelta(minutes=1)) is None
    assert sms.find_sent(_sms("tp-other", body="a different text"), utcnow() + timedelta(minutes=5)) is None


def test_twilio_connection_refused_is_retryable() -> None:
    sms = TwilioSms(account_sid="AC" + "f" * 32, auth_token="t", public_base_url="https://a.example",
                    messaging_service_sid="MG" + "e" * 32, api_base_url=_closed_port(), timeout=1)

    error = _fails(sms.send, _sms())

    assert error.kind == FailureKind.retryable


def test_twilio_find_sent_raises_when_twilio_cannot_be_asked() -> None:
    sms = TwilioSms(account_sid="AC" + "f" * 32, auth_token="t", public_base_url="https://a.example",
                    messaging_service_sid="MG" + "e" * 32, api_base_url=_closed_port(), timeout=1)

    assert _fails(lambda m: sms.find_sent(m, utcnow()), _sms()).kind == FailureKind.ambiguous


def test_twilio_provider_is_shared_safely_between_threads(fake_providers: FakeProviders) -> None:
    sms = _twilio(fake_providers)
    with ThreadPoolExecutor(max_workers=8) as pool:
        receipts = list(pool.map(lambda i: sms.send(_sms(f"tp-{i}", body=f"text {i}")), range(80)))

    assert len({r.provider_id for r in receipts}) == 80
    assert fake_providers.creates("sms") == 80
    assert sorted(s.message_id or "" for s in fake_providers.sent_sms) == sorted(f"tp-{i}" for i in range(80))


# -- SendGrid ----------------------------------------------------------------------------------------


def test_sendgrid_send_posts_text_html_custom_args_and_no_tracking(fake_providers: FakeProviders) -> None:
    receipt = _sendgrid(fake_providers, unsubscribe_group_id=321).send(_email())

    assert fake_providers.creates("email") == 1
    sent = fake_providers.sent_email[0]
    assert receipt.provider_id == sent.x_message_id and receipt.status == "accepted"
    assert sent.custom_args == {"m": "tp-42-1"}
    assert (sent.text, sent.html, sent.subject) == ("Plain text part", "<p>HTML part</p>", "Your care tips")
    assert (sent.from_email, sent.from_name, sent.to) == ("care@clinic.example", "Northside Clinic", [EMAIL])
    assert sent.asm_group_id == 321
    assert sent.tracking_settings["click_tracking"]["enable"] is False
    assert sent.tracking_settings["open_tracking"]["enable"] is False
    assert fake_providers.requests[0].headers["Authorization"] == f"Bearer {fake_providers.sendgrid_api_key}"


def test_sendgrid_text_only_and_no_group(fake_providers: FakeProviders) -> None:
    _sendgrid(fake_providers).send(OutboundMessage("tp-7", Channel.email, EMAIL, "only text", subject="S"))

    sent = fake_providers.sent_email[0]
    assert sent.html is None and sent.asm_group_id is None


@pytest.mark.parametrize(("reply", "kind", "code"), [
    (replies.sendgrid_error(400), FailureKind.rejected, 400),
    (replies.sendgrid_error(401, "The provided authorization grant is invalid"), FailureKind.rejected, 401),
    (replies.sendgrid_error(403, "access forbidden"), FailureKind.rejected, 403),
    (replies.sendgrid_error(413, "payload too large"), FailureKind.rejected, 413),
    (replies.server_error(500), FailureKind.ambiguous, 500),
    (replies.server_error(503), FailureKind.ambiguous, 503),
], ids=["400", "401", "403", "413", "500", "503"])
def test_sendgrid_errors_are_classified(fake_providers: FakeProviders, reply: Reply, kind: FailureKind,
                                        code: int) -> None:
    fake_providers.script(reply, channel="email")

    error = _fails(_sendgrid(fake_providers).send, _email())

    assert (error.kind, error.code) == (kind, code)
    assert fake_providers.creates("email") == 1


def test_sendgrid_rate_limit_is_retryable_with_retry_after(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.rate_limited(retry_after=5), channel="email")

    error = _fails(_sendgrid(fake_providers).send, _email())

    assert error.kind == FailureKind.retryable and error.code == 429
    assert error.retry_after == 5.0
    assert fake_providers.creates("email") == 1


@pytest.mark.parametrize("reply", [replies.hang(2.0), replies.drop()], ids=["slow", "dropped"])
def test_sendgrid_no_answer_is_ambiguous(fake_providers: FakeProviders, reply: Reply) -> None:
    fake_providers.script(reply, channel="email")
    started = time.monotonic()

    error = _fails(_sendgrid(fake_providers, timeout=0.3).send, _email())

    assert error.kind == FailureKind.ambiguous
    assert time.monotonic() - started < 1.5
    assert fake_providers.creates("email") == 1 and len(fake_providers.sent_email) == 1


def test_sendgrid_connection_refused_is_retryable() -> None:
    email = SendGridEmail(api_key="SG.x", from_email="care@clinic.example", api_base_url=_closed_port(), timeout=1)

    assert _fails(email.send, _email()).kind == FailureKind.retryable


def test_sendgrid_email_without_subject_is_rejected_before_sending(fake_providers: FakeProviders) -> None:
    error = _fails(_sendgrid(fake_providers).send, OutboundMessage("tp-1", Channel.email, EMAIL, "body"))

    assert error.kind == FailureKind.rejected
    assert fake_providers.creates("email") == 0


def test_sendgrid_find_sent_without_activity_lookup_cannot_tell(fake_providers: FakeProviders) -> None:
    email = _sendgrid(fake_providers)
    email.send(_email())

    assert email.reconciles is False
    assert email.find_sent(_email(), utcnow() - timedelta(minutes=1)) is None
    assert fake_providers.creates("email") == 1 and len(fake_providers.requests) == 1  # no lookup request


def test_sendgrid_find_sent_through_the_activity_api(fake_providers: FakeProviders) -> None:
    email = _sendgrid(fake_providers, activity_lookup=True)
    fake_providers.script(replies.drop(), channel="email")
    assert _fails(email.send, _email()).kind == FailureKind.ambiguous

    found = email.find_sent(_email(), utcnow() - timedelta(minutes=1))
    missing = email.find_sent(_email("tp-never"), utcnow() - timedelta(minutes=1))

    assert found is not None and found.provider_id.startswith(fake_providers.sent_email[0].x_message_id)
    assert missing is None
    lookup = fake_providers.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", "/v3/messages")
    assert lookup.query["query"] == ["unique_args['m']=\"tp-never\""]


# -- Console outbox and the registry ----------------------------------------------------------------


def test_console_outbox_stores_once_per_message_id(session: Session) -> None:
    outbox = ConsoleOutbox(Channel.email)

    first = outbox.send(_email())
    again = outbox.send(_email())
    found = outbox.find_sent(_email(), utcnow())

    rows = session.exec(select(OutboxMessage)).all()
    assert len(rows) == 1
    assert first == again == found
    assert first.provider_id == f"console-{rows[0].id}"
    assert (rows[0].to, rows[0].subject, rows[0].body, rows[0].html) == (
        EMAIL, "Your care tips", "Plain text part", "<p>HTML part</p>")
    assert outbox.find_sent(_email("tp-unknown"), utcnow()) is None


def test_console_outbox_logs_masked_addresses(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="aftercare.messaging.console")
    ConsoleOutbox(Channel.sms).send(_sms())

    assert "+1********99" in caplog.text
    assert TO not in caplog.text and "how are you" not in caplog.text


def test_console_outbox_refuses_the_other_channel(session: Session) -> None:
    assert _fails(ConsoleOutbox(Channel.sms).send, _email()).kind == FailureKind.rejected


def test_registry_uses_the_console_without_credentials(settings: Settings) -> None:
    chosen = registry.providers(settings)

    assert isinstance(chosen[Channel.sms], ConsoleOutbox) and isinstance(chosen[Channel.email], ConsoleOutbox)
    assert chosen[Channel.sms].channel == Channel.sms and chosen[Channel.email].channel == Channel.email
    assert registry.describe(settings) == {"sms": "console", "email": "console"}


def test_registry_uses_twilio_and_sendgrid_with_credentials(fake_provider_settings: Settings,
                                                            fake_providers: FakeProviders) -> None:
    chosen = registry.providers(fake_provider_settings)

    assert isinstance(chosen[Channel.sms], TwilioSms) and isinstance(chosen[Channel.email], SendGridEmail)
    chosen[Channel.sms].send(_sms())
    chosen[Channel.email].send(_email())
    assert fake_providers.creates("sms") == 1 and fake_providers.creates("email") == 1
    assert fake_providers.sent_sms[0].status_callback == "https://aftercare.example/webhooks/twilio/status?m=tp-41-1"


def test_registry_from_number_is_enough_for_twilio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("AFTERCARE_TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("AFTERCARE_TWILIO_FROM_NUMBER", "+15005550006")
    get_settings.cache_clear()
    try:
        assert isinstance(registry.provider_for(Channel.sms, get_settings()), TwilioSms)
    finally:
        get_settings.cache_clear()


def test_registry_half_configured_channel(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AFTERCARE_SENDGRID_API_KEY", "SG.secret")
    get_settings.cache_clear()
    try:
        development = get_settings()
        assert isinstance(registry.provider_for(Channel.email, development), ConsoleOutbox)
        assert "AFTERCARE_SENDGRID_FROM_EMAIL" in caplog.text and "SG.secret" not in caplog.text

        production = development.model_copy(update={"environment": "production"})
        with pytest.raises(registry.ProviderConfigError, match="AFTERCARE_SENDGRID_FROM_EMAIL"):
            registry.provider_for(Channel.email, production)
    finally:
        get_settings.cache_clear()


# -- the staff outbox page --------------------------------------------------------------------------


def test_outbox_page_lists_the_clinics_console_messages(session: Session, settings: Settings) -> None:
    clinic = make_clinic(session)
    other = make_clinic(session, slug="other", name="Other Clinic")
    coordinator = make_staff(session, clinic)
    ana = _store_patient(session, clinic, "Ana", "+14165550199", "ana@example.org")
    _store_patient(session, other, "Bob", "+14165550123", "bob@example.org")
    sms_outbox, email_outbox = ConsoleOutbox(Channel.sms), ConsoleOutbox(Channel.email)
    sms_outbox.send(OutboundMessage("tp-1", Channel.sms, "+14165550199", "Clinica Demo: Hi Ana, how are you today?"))
    email_outbox.send(OutboundMessage("tp-2", Channel.email, "ana@example.org", "Plain part", subject="Your tips",
                                      html="<p>HTML & part</p>"))
    sms_outbox.send(OutboundMessage("tp-3", Channel.sms, "+14165550123", "for the other clinic"))
    sms_outbox.send(OutboundMessage("re-1", Channel.sms, "+14165550000", "reply to an unknown number"))

    with TestClient(create_app(settings)) as client:
        assert client.get("/outbox", follow_redirects=False).status_code in (302, 303, 307)
        sign_in(client, coordinator.email)
        page = client.get("/outbox")
        only_sms = client.get("/outbox?channel=sms")
        bad = client.get("/outbox?channel=fax")

    assert page.status_code == 200
    assert "2 messages" in page.text and f'href="/patients/{ana.id}"' in page.text
    assert "how are you today?" in page.text and "1 segment, GSM-7" in page.text
    assert "Your tips" in page.text and "Plain part" in page.text
    assert 'srcdoc="&lt;p&gt;HTML &amp; part&lt;/p&gt;"' in page.text
    assert "other clinic" not in page.text and "unknown number" not in page.text
    assert "SMS via <strong>console</strong>" in page.text
    assert only_sms.status_code == 200 and "1 message" in only_sms.text and "Your tips" not in only_sms.text
    assert 400 <= bad.status_code < 500


def _store_patient(session: Session, clinic: Clinic, first_name: str, phone: str, email: str) -> Patient:
    patient = Patient(clinic_id=clinic.id or 0, first_name=first_name, last_name="Test", phone_e164=phone,
                      email=email, timezone="America/Toronto")
    session.add(patient)
    session.commit()
    return patient
