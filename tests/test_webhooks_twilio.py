"""Twilio webhooks through the app: status callbacks and inbound SMS; forged, replayed and out of order."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from aftercare.db import get_engine
from aftercare.dispatch.service import dispatch_due
from aftercare.messaging.registry import providers
from aftercare.models import (
    Channel,
    Clinic,
    CoordinatorTask,
    DeliveryEvent,
    InboundIntent,
    InboundMessage,
    OutboundReply,
    Patient,
    Suppression,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.patients import consent_state
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient, make_procedure, make_touchpoint
from tests.factories import make_clinic
from tests.fakes import AUTH_TOKEN, FakeProviders, SentSms, replies
from tests.fakes.signing import TWILIO_SIGNATURE, twilio_inbound, twilio_signature, twilio_status_callback
from tests.web_helpers import read_inbound

STATUS = "/webhooks/twilio/status"
SMS = "/webhooks/twilio/sms"
PUBLIC = "https://aftercare.example"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


def send_one(session: Session, clinic: Clinic, settings: Settings, fake: FakeProviders,
             **patient: object) -> tuple[Touchpoint, SentSms]:
    owner = make_patient(session, clinic, **patient)  # type: ignore[arg-type]
    tp = make_touchpoint(session, make_procedure(session, clinic, owner), channel=Channel.sms)
    engine = get_engine()
    dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine))
    return reload(session, tp), fake.sms_for(f"tp-{tp.id}")[-1]


def reload(session: Session, tp: Touchpoint) -> Touchpoint:
    session.expire_all()
    fresh = session.get(Touchpoint, tp.id)
    assert fresh is not None
    return fresh


def post_status(client: TestClient, sms: SentSms, status: str, error_code: int | None = None,
                token: str = AUTH_TOKEN) -> int:
    url, form, headers = twilio_status_callback(sms, status, error_code, auth_token=token)
    parts = urlsplit(url)
    return client.post(f"{parts.path}?{parts.query}", data=form, headers=headers).status_code


def count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


# -- status callbacks --------------------------------------------------------------------------------


def test_delivered_moves_forward_once_and_replays_change_nothing(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    assert tp.status == TouchpointStatus.sent

    assert post_status(client, sms, "delivered") == 200
    assert post_status(client, sms, "sent") == 200  # late and out of order
    assert post_status(client, sms, "delivered") == 200  # Twilio retried
    assert post_status(client, sms, "failed", 30008) == 200  # mixed segment results after delivery

    tp = reload(session, tp)
    assert (tp.status, tp.provider_status) == (TouchpointStatus.delivered, "delivered")
    assert tp.delivered_at is not None and tp.error_code is None
    events = session.exec(select(DeliveryEvent).order_by(col(DeliveryEvent.id))).all()
    assert [(e.event, e.applied) for e in events] == [("delivered", True), ("sent", False), ("failed", False)]
    assert count(session, CoordinatorTask) == 0


def test_forged_status_callbacks_are_refused(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    url, form, headers = twilio_status_callback(sms, "delivered")
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}"
    forgeries = {
        "no signature": (form, {}),
        "wrong token": (form, {TWILIO_SIGNATURE: twilio_signature(url, form, "not-our-token")}),
        "http:// URL behind a proxy": (form, {TWILIO_SIGNATURE: twilio_signature(url.replace("https", "http"), form)}),
        "query dropped": (form, {TWILIO_SIGNATURE: twilio_signature(url.split("?")[0], form)}),
        "body changed": ({**form, "MessageStatus": "read"}, headers),
        "extra field": ({**form, "Extra": "1"}, headers),
    }
    for case, (data, signed) in forgeries.items():
        assert client.post(path, data=data, headers=signed).status_code == 403, case
    assert reload(session, tp).status == TouchpointStatus.sent
    assert count(session, DeliveryEvent) == 0
    assert client.post(path, data=form, headers=headers).status_code == 200  # the genuine one still works


def test_the_previous_auth_token_is_accepted_during_a_rotation(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    monkeypatch.setenv("AFTERCARE_TWILIO_AUTH_TOKEN", "the-new-token")
    monkeypatch.setenv("AFTERCARE_TWILIO_AUTH_TOKEN_SECONDARY", AUTH_TOKEN)
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        assert post_status(client, sms, "delivered", token=AUTH_TOKEN) == 200
        assert post_status(client, sms, "read", token="the-new-token") == 200
        assert post_status(client, sms, "read", token="yet-another") == 403
    assert reload(session, tp).status == TouchpointStatus.delivered


def test_an_unknown_message_is_answered_200_and_kept(
    client: TestClient, session: Session, fake_providers: FakeProviders
) -> None:
    ghost = SentSms(sid="SM" + "0" * 32, account_sid="AC", to="+14165550100", from_=None,
                    messaging_service_sid=None, body="", status_callback=f"{PUBLIC}{STATUS}?m=tp-999999",
                    validity_period=None, created_at=None)  # type: ignore[arg-type]
    assert post_status(client, ghost, "delivered") == 200
    event = session.exec(select(DeliveryEvent)).one()
    assert (event.touchpoint_id, event.applied, event.provider_id) == (None, False, ghost.sid)


def test_a_status_without_a_status_is_a_clear_400(client: TestClient) -> None:
    form = {"MessageSid": "SM1"}
    url = f"{PUBLIC}{STATUS}"
    response = client.post(STATUS, data=form, headers={TWILIO_SIGNATURE: twilio_signature(url, form)})
    assert response.status_code == 400 and "MessageStatus" in response.text


def test_undelivered_to_a_dead_number_suppresses_sms_and_switches_to_email(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    assert post_status(client, sms, "undelivered", 30006) == 200

    tp = reload(session, tp)
    assert (tp.status, tp.error_code) == (TouchpointStatus.failed, "30006")
    suppression = session.exec(select(Suppression)).one()
    assert (suppression.channel, suppression.reason, suppression.address) == (
        Channel.sms, "twilio_30006", sms.to)
    assert consent_state(session, tp.patient_id)[Channel.sms] is False
    replacement = session.exec(select(Touchpoint).where(Touchpoint.id != tp.id)).one()
    assert (replacement.channel, replacement.status, replacement.key) == (
        Channel.email, TouchpointStatus.scheduled, tp.key)
    task = session.exec(select(CoordinatorTask)).one()
    assert task.touchpoint_id == tp.id and "email instead" in task.title


def test_a_transient_failure_fails_with_a_task_but_keeps_the_number(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    assert post_status(client, sms, "undelivered", 30003) == 200
    assert reload(session, tp).status == TouchpointStatus.failed
    assert count(session, Suppression) == 0 and count(session, CoordinatorTask) == 1
    assert consent_state(session, tp.patient_id)[Channel.sms] is True


def test_a_callback_ties_a_maybe_sent_message_so_it_is_never_resent(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    fake_providers.script(replies.drop(), channel="sms")
    tp, sms = send_one(session, clinic, app_settings, fake_providers)
    assert (tp.status, tp.provider_id) == (TouchpointStatus.sending, None)

    assert post_status(client, sms, "sent") == 200

    tp = reload(session, tp)
    assert (tp.status, tp.provider_id, tp.ambiguous_at) == (TouchpointStatus.sent, sms.sid, None)
    engine = get_engine()
    report = dispatch_due(app_settings, engine=engine, providers=providers(app_settings, engine=engine))
    assert report.reconcile.checked == 0 and report.claimed == 0 and fake_providers.creates("sms") == 1


# -- inbound SMS -------------------------------------------------------------------------------------


def inbound(client: TestClient, from_: str, body: str, **extra: str) -> tuple[int, str, str]:
    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", from_, body, **extra)
    response = client.post(SMS, data=form, headers=headers)
    read_inbound(client)
    return response.status_code, response.text, form["MessageSid"]


def queued(session: Session, patient: Patient) -> list[Touchpoint]:
    return list(session.exec(select(Touchpoint).where(Touchpoint.patient_id == patient.id)))


@pytest.mark.parametrize("body", ["STOP", "quit"])
def test_a_stop_keyword_opts_out_of_everything_at_once_without_a_reply(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders, body: str
) -> None:
    patient = make_patient(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    tps = [make_touchpoint(session, procedure, channel=ch, key="k") for ch in Channel]

    status, text, sid = inbound(client, patient.phone_e164 or "", body)

    assert (status, text) == (200, EMPTY_TWIML)
    session.expire_all()
    assert consent_state(session, patient.id or 0) == {Channel.sms: False, Channel.email: False}
    assert {(t.status, t.cancel_reason) for t in queued(session, patient)} == {
        (TouchpointStatus.cancelled, "patient opted out")}
    assert len(tps) == 2
    stored = session.exec(select(InboundMessage)).one()
    assert (stored.message_sid, stored.patient_id, stored.intent, stored.handled) == (
        sid, patient.id, InboundIntent.opt_out, True)
    assert stored.params["Body"] == body
    assert count(session, OutboundReply) == 0 and fake_providers.creates() == 0


def test_a_replayed_inbound_message_is_stored_and_applied_once(
    client: TestClient, session: Session, clinic: Clinic
) -> None:
    patient = make_patient(session, clinic)
    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", patient.phone_e164 or "", "HELP")
    for _ in range(3):
        assert client.post(SMS, data=form, headers=headers).status_code == 200
        read_inbound(client)
    assert count(session, InboundMessage) == 1 and count(session, OutboundReply) == 1


def test_a_forged_inbound_message_is_refused_and_not_stored(client: TestClient, session: Session,
                                                             clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    form, _ = twilio_inbound(f"{PUBLIC}{SMS}", patient.phone_e164 or "", "STOP")
    forged = {TWILIO_SIGNATURE: twilio_signature(f"{PUBLIC}{SMS}", form, "guessed-token")}
    assert client.post(SMS, data=form, headers=forged).status_code == 403
    assert client.post(SMS, data=form).status_code == 403
    assert count(session, InboundMessage) == 0
    assert consent_state(session, patient.id or 0)[Channel.sms] is True


def test_an_inbound_message_without_a_sender_is_a_clear_400(client: TestClient) -> None:
    form = {"MessageSid": "SM" + "1" * 32, "Body": "hi"}
    headers = {TWILIO_SIGNATURE: twilio_signature(f"{PUBLIC}{SMS}", form)}
    response = client.post(SMS, data=form, headers=headers)
    assert response.status_code == 400 and "From" in response.text


def test_start_opts_back_in_to_sms_only(client: TestClient, session: Session, clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    number = patient.phone_e164 or ""
    inbound(client, number, "STOP")
    inbound(client, number, "START")
    session.expire_all()
    assert consent_state(session, patient.id or 0) == {Channel.sms: True, Channel.email: False}
    active = session.exec(select(Suppression).where(col(Suppression.lifted_at).is_(None))).all()
    assert [(s.channel, s.reason) for s in active] == [(Channel.email, "opt_out")]
    assert count(session, OutboundReply) == 0  # Twilio confirms its own STOP and START


def test_help_gets_one_reply_through_the_outbox_with_no_phi(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, first_name="Zoraida")
    status, text, _ = inbound(client, patient.phone_e164 or "", "AYUDA")
    assert (status, text) == (200, EMPTY_TWIML)
    reply = session.exec(select(OutboundReply)).one()
    assert (reply.template, reply.to_address, reply.language.value) == ("help_reply", patient.phone_e164, "es")
    session.refresh(reply)
    assert reply.status == TouchpointStatus.sent and reply.provider_id == fake_providers.sent_sms[0].sid
    body = fake_providers.sent_sms[0].body
    assert "Demo Los Cabos" in body and "Zoraida" not in body and patient.last_name not in body


def test_twilio_advanced_opt_out_answers_help_itself(client: TestClient, session: Session, clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    inbound(client, patient.phone_e164 or "", "HELP", OptOutType="HELP")
    assert count(session, OutboundReply) == 0
    assert session.exec(select(InboundMessage)).one().intent == InboundIntent.help


def test_a_reply_from_a_patient_waits_for_a_person(client: TestClient, session: Session, clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    tp = make_touchpoint(session, make_procedure(session, clinic, patient))
    status, text, _ = inbound(client, patient.phone_e164 or "", "I stopped the ibuprofen, pain is 3 today")
    assert (status, text) == (200, EMPTY_TWIML)
    stored = session.exec(select(InboundMessage)).one()
    assert (stored.intent, stored.handled, stored.patient_id) == (InboundIntent.text, False, patient.id)
    task = session.exec(select(CoordinatorTask)).one()
    assert (task.kind, task.patient_id, task.inbound_id) == ("patient_reply", patient.id, stored.id)
    assert reload(session, tp).status == TouchpointStatus.scheduled
    assert consent_state(session, patient.id or 0)[Channel.sms] is True and count(session, OutboundReply) == 0


def test_an_unknown_number_is_stored_for_staff_and_gets_a_polite_reply(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    status, _, _ = inbound(client, "+13055550123", "Hola, ¿a qué hora abren?")
    assert status == 200
    stored = session.exec(select(InboundMessage)).one()
    assert (stored.patient_id, stored.clinic_id, stored.body) == (None, clinic.id, "Hola, ¿a qué hora abren?")
    assert session.exec(select(CoordinatorTask)).one().kind == "unknown_sender"
    assert [s.to for s in fake_providers.sent_sms] == ["+13055550123"]


def test_a_status_callback_faster_than_the_create_response_is_no_error(
    session: Session, clinic: Clinic
) -> None:
    from aftercare.dispatch.outcome import Attempt, Outcome, record_sent
    from aftercare.messaging.base import SendReceipt
    from aftercare.webhooks.delivery import apply_twilio_status

    patient = make_patient(session, clinic)
    tp = make_touchpoint(session, make_procedure(session, clinic, patient), status=TouchpointStatus.sending,
                         lease_owner="me", attempts=1)
    apply_twilio_status(session, message_sid="SM" + "a" * 32, status="sent", error_code=None,
                        message_id=f"tp-{tp.id}")
    session.commit()
    attempt = Attempt(tp.id or 0, "me", 1, Channel.sms)
    with get_engine().begin() as conn:
        outcome = record_sent(conn, attempt, SendReceipt("SM" + "a" * 32, "accepted"), "twilio", tp.created_at)
    assert outcome == Outcome.sent
    tp = reload(session, tp)
    assert (tp.status, tp.provider_id, tp.provider_status) == (TouchpointStatus.sent, "SM" + "a" * 32, "sent")
