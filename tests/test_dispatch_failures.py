"""Every failure class through the real SDKs against the fake: retry, permanent, rejected, ambiguous."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from aftercare.db import get_engine
from aftercare.dispatch.service import DispatchReport, dispatch_due
from aftercare.messaging.registry import providers
from aftercare.messaging.twilio_sms import TwilioSms
from aftercare.models import (
    Channel,
    Clinic,
    ConsentEvent,
    CoordinatorTask,
    Patient,
    Suppression,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.patients import consent_state
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import make_patient, make_procedure, make_touchpoint
from tests.factories import make_clinic
from tests.fakes import FakeProviders, replies


@pytest.fixture
def dispatch_settings(database_url: str, fake_provider_settings: Settings,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("AFTERCARE_DISPATCH_RECONCILE_GRACE_SECONDS", "60")
    monkeypatch.setenv("AFTERCARE_DISPATCH_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


def later(seconds: float) -> Callable[[], datetime]:
    """A clock `seconds` ahead of now (leases and grace periods run out without sleeping)."""
    return lambda: utcnow() + timedelta(seconds=seconds)


def run(settings: Settings, **kwargs: object) -> DispatchReport:
    engine = get_engine()
    return dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine), **kwargs)  # type: ignore[arg-type]


def reload(session: Session, tp: Touchpoint) -> Touchpoint:
    session.expire_all()
    fresh = session.get(Touchpoint, tp.id)
    assert fresh is not None
    return fresh


def one_touchpoint(session: Session, clinic: Clinic, channel: Channel = Channel.sms, **patient: object) -> Touchpoint:
    owner = make_patient(session, clinic, **patient)  # type: ignore[arg-type]
    return make_touchpoint(session, make_procedure(session, clinic, owner), channel=channel)


def tasks_for(session: Session, tp: Touchpoint) -> list[CoordinatorTask]:
    return list(session.exec(select(CoordinatorTask).where(CoordinatorTask.touchpoint_id == tp.id)))


# -- retryable ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [Channel.sms, Channel.email])
def test_429_is_retried_after_retry_after_and_then_sent(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders, channel: Channel
) -> None:
    tp = one_touchpoint(session, clinic, channel)
    fake_providers.script(replies.rate_limited(retry_after=600), channel=channel.value)

    started = utcnow()
    assert run(dispatch_settings).outcomes == {"retry": 1}

    tp = reload(session, tp)
    assert (tp.status, tp.attempts, tp.provider_id) == (TouchpointStatus.scheduled, 1, None)
    assert tp.due_at >= started + timedelta(seconds=600)
    assert tp.error_code in ("20429", "429")
    assert run(dispatch_settings).claimed == 0  # not due yet

    assert run(dispatch_settings, clock=later(700)).outcomes == {"sent": 1}
    tp = reload(session, tp)
    assert (tp.status, tp.attempts, tp.error_code) == (TouchpointStatus.sent, 2, None)
    assert fake_providers.creates(channel.value) == 2
    assert len(fake_providers.sent_sms) + len(fake_providers.sent_email) == 1


def test_connection_refused_is_retryable(dispatch_settings: Settings, session: Session, clinic: Clinic) -> None:
    tp = one_touchpoint(session, clinic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    sms = TwilioSms.from_settings(dispatch_settings)
    sms.api_base_url = f"http://127.0.0.1:{closed_port}"
    engine = get_engine()
    email = providers(dispatch_settings, engine=engine)[Channel.email]
    report = dispatch_due(dispatch_settings, engine=engine, providers={Channel.sms: sms, Channel.email: email})
    assert report.outcomes == {"retry": 1}
    assert reload(session, tp).status == TouchpointStatus.scheduled


def test_retries_stop_at_the_attempt_limit_with_a_task(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp = one_touchpoint(session, clinic)
    fake_providers.rule(replies.rate_limited(retry_after=1), channel="sms")
    for hours in (0, 2, 4):
        run(dispatch_settings, clock=later(hours * 3600 - 60 if hours else 0))
    tp = reload(session, tp)
    assert (tp.status, tp.attempts) == (TouchpointStatus.failed, 3)
    assert [t.kind for t in tasks_for(session, tp)] == ["delivery_failed"]
    assert fake_providers.creates("sms") == 3


# -- permanent ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_a_permanent_sms_failure_revokes_sms_switches_to_email_and_opens_a_task(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders, code: int
) -> None:
    tp = one_touchpoint(session, clinic)
    fake_providers.script(replies.twilio_error(code), channel="sms")

    assert run(dispatch_settings).outcomes == {"failed": 1, "sent": 1}  # the email replacement, same run

    tp = reload(session, tp)
    assert (tp.status, tp.error_code) == (TouchpointStatus.failed, str(code))
    suppression = session.exec(select(Suppression).where(Suppression.patient_id == tp.patient_id)).one()
    assert (suppression.channel, suppression.reason, suppression.source) == (Channel.sms, f"twilio_{code}", "provider")
    revoked = session.exec(select(ConsentEvent).where(ConsentEvent.patient_id == tp.patient_id,
                                                      col(ConsentEvent.granted).is_(False))).one()
    assert (revoked.channel, revoked.source) == (Channel.sms, "provider")
    assert consent_state(session, tp.patient_id) == {Channel.sms: False, Channel.email: True}
    replacement = session.exec(select(Touchpoint).where(Touchpoint.key == tp.key, Touchpoint.id != tp.id)).one()
    assert (replacement.channel, replacement.status, replacement.payload["replaces"]) == (
        Channel.email, TouchpointStatus.sent, tp.id)
    task = tasks_for(session, tp)[0]
    assert task.kind == "delivery_failed" and "sent by email instead" in task.title
    assert fake_providers.creates("sms") == 1 and len(fake_providers.sent_email) == 1

    patient = session.get(Patient, tp.patient_id)
    assert patient is not None
    next_sms = make_touchpoint(session, make_procedure(session, clinic, patient), channel=Channel.sms)
    run(dispatch_settings)
    next_sms = reload(session, next_sms)
    assert (next_sms.channel, next_sms.status) == (Channel.email, TouchpointStatus.sent)
    assert fake_providers.creates("sms") == 1


def test_a_permanent_failure_without_another_channel_just_fails(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp = one_touchpoint(session, clinic, email=False)
    fake_providers.script(replies.twilio_error(21211), channel="sms")
    assert run(dispatch_settings).outcomes == {"failed": 1}
    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.failed
    assert session.exec(select(Touchpoint).where(Touchpoint.key == tp.key)).all() == [tp]
    task = tasks_for(session, tp)[0]
    assert "instead" not in task.title and "21211" in (task.detail or "")


# -- rejected ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "reply"), [
    (Channel.sms, replies.twilio_error(21602)),
    (Channel.email, replies.sendgrid_error(400, "The from address does not match a verified Sender Identity")),
])
def test_a_rejected_send_fails_with_a_task_and_blames_no_address(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders,
    channel: Channel, reply: replies.Reply,
) -> None:
    tp = one_touchpoint(session, clinic, channel)
    fake_providers.script(reply, channel=channel.value)
    assert run(dispatch_settings).outcomes == {"failed": 1}
    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.failed and len(tasks_for(session, tp)) == 1
    assert session.exec(select(Suppression)).all() == []
    assert consent_state(session, tp.patient_id) == {Channel.sms: True, Channel.email: True}
    assert run(dispatch_settings, clock=later(7200)).claimed == 0


# -- ambiguous ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [replies.server_error(503, record=True), replies.drop(), replies.hang(3)],
                         ids=["5xx-after-sending", "connection-reset", "read-timeout"])
def test_a_maybe_sent_sms_that_twilio_has_is_reconciled_not_resent(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders,
    reply: replies.Reply,
) -> None:
    tp = one_touchpoint(session, clinic)
    fake_providers.script(reply, channel="sms")

    assert run(dispatch_settings).outcomes == {"ambiguous": 1}
    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.sending and tp.ambiguous_at is not None and tp.provider_id is None

    report = run(dispatch_settings, clock=later(10))
    assert report.reconcile.found == 1 and report.claimed == 0
    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.sent and tp.provider_id == fake_providers.sent_sms[0].sid
    assert fake_providers.creates("sms") == 1 and len(fake_providers.sent_sms) == 1


def test_a_maybe_sent_sms_twilio_never_got_is_resent_only_after_the_grace_period(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp = one_touchpoint(session, clinic)
    fake_providers.script(replies.server_error(500, record=False), channel="sms")
    assert run(dispatch_settings).outcomes == {"ambiguous": 1}

    early = run(dispatch_settings, clock=later(10))
    assert early.reconcile.found == 0 and early.reconcile.waiting == 1 and fake_providers.creates("sms") == 1
    assert reload(session, tp).status == TouchpointStatus.sending

    late = run(dispatch_settings, clock=later(10 + 61 + 60))
    assert late.reconcile.resent == 1 and late.outcomes == {"sent": 1}
    tp = reload(session, tp)
    assert (tp.status, tp.attempts) == (TouchpointStatus.sent, 2)
    assert fake_providers.creates("sms") == 2 and len(fake_providers.sent_sms) == 1


def test_a_maybe_sent_email_tied_by_its_event_is_not_resent(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    from aftercare.webhooks.delivery import apply_sendgrid_event

    tp = one_touchpoint(session, clinic, Channel.email)
    fake_providers.script(replies.server_error(502, record=True), channel="email")
    assert run(dispatch_settings).outcomes == {"ambiguous": 1}
    sent = fake_providers.sent_email[0]
    apply_sendgrid_event(session, {"event": "processed", "sg_event_id": "ev-1", "sg_message_id": sent.msg_id,
                                   "email": sent.to[0], "m": sent.message_id, "timestamp": 1})
    session.commit()
    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.sent and tp.provider_id == sent.x_message_id
    report = run(dispatch_settings, clock=later(3600))
    assert report.reconcile.checked == 0 and fake_providers.creates("email") == 1


def test_a_dead_dispatchers_claim_is_reconciled_after_its_lease(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    from aftercare.dispatch.claim import claim_batch

    tp = one_touchpoint(session, clinic)
    with Session(get_engine()) as other:
        claimed = claim_batch(other, owner="dead", now=utcnow(), limit=10, lease_seconds=300, daily_cap=1)
        other.commit()
    assert [job.touchpoint_id for job in claimed.jobs] == [tp.id]

    settings = dispatch_settings.model_copy(update={"dispatch_reconcile_grace_seconds": 600})
    assert run(settings).claimed == 0 and fake_providers.creates() == 0  # lease still valid
    waiting = run(settings, clock=later(301))
    assert waiting.reconcile.waiting == 1 and fake_providers.creates() == 0  # no record, grace not over
    resent = run(settings, clock=later(662))
    assert resent.reconcile.resent == 1 and resent.outcomes == {"sent": 1}
    assert reload(session, tp).status == TouchpointStatus.sent and fake_providers.creates("sms") == 1
