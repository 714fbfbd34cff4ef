"""SendGrid Event Webhook through the app: signature on the raw body, stale and replayed events, suppression."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

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
from tests.fakes import FakeProviders, SentEmail
from tests.fakes.signing import SendGridSigner, sendgrid_event, sendgrid_signer

EVENTS = "/webhooks/sendgrid/events"


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


def send_email(session: Session, clinic: Clinic, settings: Settings, fake: FakeProviders,
               **patient: object) -> tuple[Touchpoint, SentEmail]:
    owner = make_patient(session, clinic, **patient)  # type: ignore[arg-type]
    tp = make_touchpoint(session, make_procedure(session, clinic, owner), channel=Channel.email)
    engine = get_engine()
    dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine))
    return reload(session, tp), fake.email_for(f"tp-{tp.id}")[-1]


def reload(session: Session, tp: Touchpoint) -> Touchpoint:
    session.expire_all()
    fresh = session.get(Touchpoint, tp.id)
    assert fresh is not None
    return fresh


def post(client: TestClient, events: list[dict[str, object]], signer: SendGridSigner | None = None,
         timestamp: str | None = None) -> int:
    body, headers = (signer or sendgrid_signer()).signed(events, timestamp)
    return client.post(EVENTS, content=body, headers=headers).status_code


def count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def test_delivered_is_applied_once_however_often_it_arrives(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, email = send_email(session, clinic, app_settings, fake_providers)
    processed, delivered = sendgrid_event(email, "processed"), sendgrid_event(email, "delivered")
    assert post(client, [processed, delivered]) == 200
    assert post(client, [delivered, processed]) == 200  # SendGrid retried the batch, in another order
    tp = reload(session, tp)
    assert (tp.status, tp.provider_status) == (TouchpointStatus.delivered, "delivered")
    assert count(session, DeliveryEvent) == 2


def test_forged_stale_and_reserialised_events_are_refused(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, email = send_email(session, clinic, app_settings, fake_providers)
    event = [sendgrid_event(email, "delivered")]
    body, headers = sendgrid_signer().signed(event)
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    assert client.post(EVENTS, content=reserialised, headers=headers).status_code == 403
    assert post(client, event, signer=SendGridSigner()) == 403  # somebody else's key
    assert post(client, event, timestamp=str(int(time.time()) - 301)) == 403  # replayed later
    assert post(client, event, timestamp=str(int(time.time()) + 301)) == 403
    assert client.post(EVENTS, content=body).status_code == 403  # no signature headers
    assert count(session, DeliveryEvent) == 0 and reload(session, tp).status == TouchpointStatus.sent
    assert post(client, event, timestamp=str(int(time.time()) - 120)) == 200  # a little late is fine


def test_a_signed_body_that_is_not_an_event_list_is_a_clear_400(client: TestClient) -> None:
    body = b'{"event": "delivered"}'
    assert client.post(EVENTS, content=body, headers=sendgrid_signer().sign(body)).status_code == 400


def test_an_unknown_message_is_accepted_and_kept(client: TestClient, session: Session) -> None:
    event = {"event": "delivered", "sg_event_id": "x1", "sg_message_id": "nope.filter", "email": "a@b.example"}
    assert post(client, [event]) == 200
    assert session.exec(select(DeliveryEvent)).one().applied is False


def test_a_bounce_fails_the_email_suppresses_the_address_and_switches_to_sms(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, email = send_email(session, clinic, app_settings, fake_providers)
    assert post(client, [sendgrid_event(email, "bounce", type="bounce", reason="550 no such user")]) == 200

    tp = reload(session, tp)
    assert (tp.status, tp.error_code) == (TouchpointStatus.failed, "sendgrid_bounce")
    suppression = session.exec(select(Suppression)).one()
    assert (suppression.channel, suppression.address, suppression.source) == (Channel.email, email.to[0], "provider")
    assert consent_state(session, tp.patient_id) == {Channel.sms: True, Channel.email: False}
    replacement = session.exec(select(Touchpoint).where(Touchpoint.id != tp.id)).one()
    assert (replacement.channel, replacement.status) == (Channel.sms, TouchpointStatus.scheduled)
    assert session.exec(select(CoordinatorTask)).one().touchpoint_id == tp.id


def test_a_blocked_bounce_fails_without_blaming_the_address(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp, email = send_email(session, clinic, app_settings, fake_providers)
    assert post(client, [sendgrid_event(email, "bounce", type="blocked", reason="IP blocklisted")]) == 200
    assert reload(session, tp).status == TouchpointStatus.failed
    assert count(session, Suppression) == 0 and consent_state(session, tp.patient_id)[Channel.email] is True


@pytest.mark.parametrize("kind", ["dropped", "spamreport", "unsubscribe", "group_unsubscribe"])
def test_drops_spam_reports_and_unsubscribes_stop_email(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders,
    kind: str,
) -> None:
    tp, email = send_email(session, clinic, app_settings, fake_providers)
    before = [] if kind == "dropped" else [sendgrid_event(email, "delivered")]  # a drop is never delivered
    assert post(client, [*before, sendgrid_event(email, kind)]) == 200

    assert consent_state(session, tp.patient_id)[Channel.email] is False
    suppression = session.exec(select(Suppression).where(col(Suppression.lifted_at).is_(None))).one()
    assert (suppression.channel, suppression.reason) == (Channel.email, f"sendgrid_{kind}")
    tp = reload(session, tp)
    expected = TouchpointStatus.failed if kind == "dropped" else TouchpointStatus.delivered
    assert tp.status == expected

    patient = session.get(Patient, tp.patient_id)
    assert patient is not None
    later = make_touchpoint(session, make_procedure(session, clinic, patient), channel=Channel.email)
    engine = get_engine()
    dispatch_due(app_settings, engine=engine, providers=providers(app_settings, engine=engine))
    later = reload(session, later)
    assert (later.channel, later.status) == (Channel.sms, TouchpointStatus.sent)
    assert fake_providers.creates("email") == 1
