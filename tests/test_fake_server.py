"""The fake Twilio/SendGrid server itself: endpoints, scripting, concurrency and the signing helpers."""

from __future__ import annotations

import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from tests.fakes import AUTH_TOKEN, FakeProviders, replies
from tests.fakes.signing import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_SIGNATURE,
    SendGridSigner,
    sendgrid_event,
    twilio_inbound,
    twilio_status_callback,
)


def _twilio(fake: FakeProviders) -> requests.Session:
    session = requests.Session()
    session.auth = (fake.account_sid, fake.auth_token)
    return session


def _messages_url(fake: FakeProviders) -> str:
    return f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def _create(fake: FakeProviders, to: str = "+14165550199", body: str = "hello", **form: str) -> requests.Response:
    data = {"To": to, "Body": body, "MessagingServiceSid": fake.messaging_service_sid, **form}
    return _twilio(fake).post(_messages_url(fake), data=data, timeout=5)


def _mail(to: str = "ana@example.org", subject: str = "Hi", **extra: object) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "care@clinic.example"},
        "subject": subject,
        "content": [{"type": "text/plain", "value": "hello"}],
        **extra,
    }


def _sendgrid(fake: FakeProviders, payload: dict[str, object]) -> requests.Response:
    return requests.post(f"{fake.url}/v3/mail/send", json=payload,
                         headers={"Authorization": f"Bearer {fake.sendgrid_api_key}"}, timeout=5)


def test_twilio_create_answers_like_twilio_and_records_it(fake_providers: FakeProviders) -> None:
    response = _create(fake_providers, StatusCallback="https://app.example/webhooks/twilio/status?m=tp-9")

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["status"] == "accepted"  # Messaging Service sends start as accepted
    assert body["to"] == "+14165550199" and body["date_sent"] is None
    assert fake_providers.sent_sms[0].message_id == "tp-9"
    recorded = fake_providers.requests[0]
    assert recorded.method == "POST" and recorded.form["Body"] == "hello" and recorded.is_create
    assert fake_providers.creates("sms") == 1


def test_twilio_create_without_service_is_queued(fake_providers: FakeProviders) -> None:
    response = _twilio(fake_providers).post(_messages_url(fake_providers), data={
        "To": "+14165550199", "Body": "x", "From": "+15005550006"}, timeout=5)
    assert response.json()["status"] == "queued"


@pytest.mark.parametrize(("form", "code"), [
    ({"To": "416-555-0199", "Body": "x", "From": "+15005550006"}, 21211),
    ({"Body": "x", "From": "+15005550006"}, 21604),
    ({"To": "+14165550199", "From": "+15005550006"}, 21602),
    ({"To": "+14165550199", "Body": "x"}, 21603),
])
def test_twilio_create_validates_like_the_api(fake_providers: FakeProviders, form: dict[str, str], code: int) -> None:
    response = _twilio(fake_providers).post(_messages_url(fake_providers), data=form, timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert fake_providers.sent_sms == []


def test_twilio_needs_the_account_sid_as_user(fake_providers: FakeProviders) -> None:
    response = requests.post(_messages_url(fake_providers), data={"To": "+14165550199", "Body": "x"},
                             auth=("ACother", "token"), timeout=5)
    assert response.status_code == 401 and response.json()["code"] == 20003


def test_twilio_list_filters_by_to_and_date_sent(fake_providers: FakeProviders) -> None:
    first = _create(fake_providers, to="+14165550101").json()["sid"]
    _create(fake_providers, to="+14165550102")
    client = _twilio(fake_providers)

    listed = client.get(_messages_url(fake_providers), params={"To": "+14165550101"}, timeout=5).json()
    assert [m["sid"] for m in listed["messages"]] == [first]

    today = time.strftime("%Y-%m-%d", time.gmtime())
    unsent = client.get(_messages_url(fake_providers), params={"DateSent>": today}, timeout=5).json()
    assert unsent["messages"] == []  # queued messages have no date_sent yet, as on the real API
    fake_providers.set_status(first, "delivered")
    sent = client.get(_messages_url(fake_providers), params={"DateSent>": today}, timeout=5).json()
    assert [m["sid"] for m in sent["messages"]] == [first]
    assert sent["messages"][0]["status"] == "delivered"


def test_twilio_list_pages(fake_providers: FakeProviders) -> None:
    for _ in range(3):
        _create(fake_providers)
    page = _twilio(fake_providers).get(_messages_url(fake_providers), params={"PageSize": 2}, timeout=5).json()
    assert len(page["messages"]) == 2 and page["next_page_uri"]
    rest = _twilio(fake_providers).get(fake_providers.url + page["next_page_uri"], timeout=5).json()
    assert len(rest["messages"]) == 1 and rest["next_page_uri"] is None


def test_twilio_fetch_one(fake_providers: FakeProviders) -> None:
    sid = _create(fake_providers).json()["sid"]
    base = f"{fake_providers.url}/2010-04-01/Accounts/{fake_providers.account_sid}/Messages"
    assert _twilio(fake_providers).get(f"{base}/{sid}.json", timeout=5).json()["sid"] == sid
    missing = _twilio(fake_providers).get(f"{base}/SM{'0' * 32}.json", timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == 20404


def test_script_answers_the_next_matching_calls_in_order(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.twilio_error(21610), replies.rate_limited(retry_after=7), channel="sms")
    fake_providers.script(replies.sendgrid_error(413), channel="email")

    opted_out = _create(fake_providers)
    limited = _create(fake_providers)
    fine = _create(fake_providers)
    mail = _sendgrid(fake_providers, _mail())

    assert (opted_out.status_code, opted_out.json()["code"]) == (400, 21610)
    assert (limited.status_code, limited.json()["code"], limited.headers["Retry-After"]) == (429, 20429, "7")
    assert fine.status_code == 201
    assert mail.status_code == 413
    assert len(fake_providers.sent_sms) == 1 and fake_providers.sent_email == []


def test_rules_match_by_recipient_and_every_nth(fake_providers: FakeProviders) -> None:
    fake_providers.rule(replies.twilio_error(21614), to="+14165550000")
    fake_providers.rule(replies.server_error(503), channel="sms", every=3)

    landline = [_create(fake_providers, to="+14165550000").status_code for _ in range(2)]
    others = [_create(fake_providers).status_code for _ in range(6)]

    assert landline == [400, 400]
    assert others == [201, 201, 503, 201, 201, 503]


def test_drop_records_the_message_but_resets_the_connection(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.drop())
    with pytest.raises(requests.exceptions.ConnectionError):
        _create(fake_providers)
    assert len(fake_providers.sent_sms) == 1


def test_hang_records_at_once_and_answers_late(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.hang(1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _twilio(fake_providers).post(_messages_url(fake_providers), timeout=0.2, data={
            "To": "+14165550199", "Body": "x", "From": "+15005550006"})
    assert len(fake_providers.sent_sms) == 1


def test_server_error_can_pretend_it_sent(fake_providers: FakeProviders) -> None:
    fake_providers.script(replies.server_error(500, record=True), replies.server_error(500))
    assert _create(fake_providers).status_code == 500
    assert _create(fake_providers).status_code == 500
    assert len(fake_providers.sent_sms) == 1


def test_sendgrid_send_accepts_and_records(fake_providers: FakeProviders) -> None:
    response = _sendgrid(fake_providers, _mail(custom_args={"m": "tp-3"}, asm={"group_id": 42}))

    assert response.status_code == 202 and response.content == b""
    sent = fake_providers.sent_email[0]
    assert response.headers["X-Message-Id"] == sent.x_message_id
    assert (sent.message_id, sent.asm_group_id, sent.text, sent.to) == ("tp-3", 42, "hello", ["ana@example.org"])


def test_sendgrid_validates_and_authenticates(fake_providers: FakeProviders) -> None:
    assert _sendgrid(fake_providers, _mail(subject="")).status_code == 400
    anonymous = requests.post(f"{fake_providers.url}/v3/mail/send", json=_mail(), timeout=5)
    assert anonymous.status_code == 401
    assert fake_providers.sent_email == []


def test_sendgrid_activity_search(fake_providers: FakeProviders) -> None:
    _sendgrid(fake_providers, _mail(custom_args={"m": "tp-1"}))
    _sendgrid(fake_providers, _mail(to="bob@example.org", custom_args={"m": "tp-2"}))
    headers = {"Authorization": "Bearer x"}

    def search(query: str) -> list[dict[str, str]]:
        response = requests.get(f"{fake_providers.url}/v3/messages", params={"query": query, "limit": 10},
                                headers=headers, timeout=5)
        assert response.status_code == 200
        return list(response.json()["messages"])

    assert [m["to_email"] for m in search("unique_args['m']=\"tp-2\"")] == ["bob@example.org"]
    first = fake_providers.sent_email[0]
    assert [m["msg_id"] for m in search(f"msg_id LIKE '{first.x_message_id}%'")] == [first.msg_id]
    assert search("to_email=\"ana@example.org\" AND unique_args['m']=\"tp-2\"") == []


def test_latency_is_served_concurrently() -> None:
    with FakeProviders(latency=0.05, record_requests=False) as fake:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(lambda i: _create(fake, body=f"m{i}").status_code, range(200)))
        elapsed = time.monotonic() - started

    assert statuses == [201] * 200
    assert fake.creates("sms") == 200 and fake.requests == []
    assert elapsed < 2.5, f"200 requests at 50 ms with 50 clients took {elapsed:.2f}s (sequential: 10 s)"


def test_reset_forgets_everything(fake_providers: FakeProviders) -> None:
    fake_providers.rule(replies.server_error())
    _create(fake_providers)
    fake_providers.reset()
    assert _create(fake_providers).status_code == 201
    assert fake_providers.creates() == 1 and len(fake_providers.requests) == 1


def test_twilio_signature_helpers_validate_with_the_sdk(fake_providers: FakeProviders) -> None:
    _create(fake_providers, StatusCallback="https://app.example/webhooks/twilio/status?m=tp-5")
    url, form, headers = twilio_status_callback(fake_providers.sent_sms[0], "delivered")

    validator = RequestValidator(AUTH_TOKEN)
    assert url.endswith("?m=tp-5") and form["MessageStatus"] == "delivered"
    assert validator.validate(url, form, headers[TWILIO_SIGNATURE])
    assert not validator.validate(url.replace("tp-5", "tp-6"), form, headers[TWILIO_SIGNATURE])

    inbound, signed = twilio_inbound("https://app.example/webhooks/twilio/sms", "+14165550199", "STOP")
    assert validator.validate("https://app.example/webhooks/twilio/sms", inbound, signed[TWILIO_SIGNATURE])


def test_sendgrid_signer_verifies_with_the_sdk_helper(fake_providers: FakeProviders) -> None:
    _sendgrid(fake_providers, _mail(custom_args={"m": "tp-8"}))
    signer = SendGridSigner()
    event = sendgrid_event(fake_providers.sent_email[0], "delivered")
    body, headers = signer.signed([event])

    verifier = EventWebhook(signer.public_key)
    assert event["m"] == "tp-8" and event["sg_message_id"].startswith(fake_providers.sent_email[0].x_message_id)
    assert verifier.verify_signature(body.decode(), headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP])
    reserialised = json.dumps(json.loads(body), indent=1)
    assert not verifier.verify_signature(reserialised, headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP])
    assert base64.b64decode(signer.public_key)  # the single-line base64 form SendGrid shows
