"""The dispatcher end to end: real Twilio/SendGrid SDKs against the local fake, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from aftercare import consent
from aftercare.db import get_engine
from aftercare.dispatch.policy import CAP_NO_ROOM, STALE
from aftercare.dispatch.service import DispatchReport, dispatch_due
from aftercare.messaging.registry import providers
from aftercare.models import (
    Channel,
    Clinic,
    ConsentEvent,
    CoordinatorTask,
    Patient,
    ProcedureStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import make_patient, make_procedure, make_touchpoint, zone_at
from tests.factories import make_clinic
from tests.fakes import FakeProviders


@pytest.fixture
def dispatch_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    """App settings on the test database with both providers pointed at the fake."""
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


def run(settings: Settings, **kwargs: object) -> DispatchReport:
    engine = get_engine()
    return dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine), **kwargs)  # type: ignore[arg-type]


def reload(session: Session, tp: Touchpoint) -> Touchpoint:
    session.expire_all()
    fresh = session.get(Touchpoint, tp.id)
    assert fresh is not None
    return fresh


def test_it_sends_sms_and_email_once_and_stores_the_provider_ids(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    sms = make_touchpoint(session, procedure, channel=Channel.sms)
    email = make_touchpoint(session, procedure, channel=Channel.email, key=sms.key)

    report = run(dispatch_settings)

    assert report.as_dict()["sent"] == 2
    sms, email = reload(session, sms), reload(session, email)
    assert sms.status == email.status == TouchpointStatus.sent
    assert [s.sid for s in fake_providers.sent_sms] == [sms.provider_id]
    assert [e.x_message_id for e in fake_providers.sent_email] == [email.provider_id]
    assert (sms.provider, email.provider, sms.attempts, sms.lease_owner) == ("twilio", "sendgrid", 1, None)
    sent = fake_providers.sent_sms[0]
    assert sent.to == patient.phone_e164 and sent.message_id == f"tp-{sms.id}"
    assert parse_qs(urlsplit(sent.status_callback or "").query)["m"] == [f"tp-{sms.id}"]
    assert sent.validity_period is not None and 600 <= sent.validity_period <= dispatch_settings.twilio_validity_seconds
    assert fake_providers.sent_email[0].custom_args == {"m": f"tp-{email.id}"}

    again = run(dispatch_settings)
    assert again.claimed == 0 and fake_providers.creates() == 2


def test_nothing_is_claimed_before_it_is_due(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    procedure = make_procedure(session, clinic, make_patient(session, clinic))
    later = make_touchpoint(session, procedure, due_at=utcnow() + timedelta(minutes=5))
    visit = make_touchpoint(session, procedure, kind=TouchpointKind.visit)
    assert run(dispatch_settings).claimed == 0
    assert reload(session, later).status == reload(session, visit).status == TouchpointStatus.scheduled


def test_claim_time_rechecks_procedure_lateness_and_consent(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    cancelled = make_procedure(session, clinic, patient, status=ProcedureStatus.cancelled, cancel_reason="withdrew")
    gone = make_touchpoint(session, cancelled)
    active = make_procedure(session, clinic, patient)
    stale = make_touchpoint(session, active, kind=TouchpointKind.checkin, window_end=utcnow() - timedelta(minutes=1))
    no_email = make_patient(session, clinic, email=False, sms=False)
    nowhere = make_touchpoint(session, make_procedure(session, clinic, no_email))

    report = run(dispatch_settings)

    assert report.verdicts == {"cancel": 1, "skip": 2}
    assert fake_providers.creates() == 0
    gone, stale, nowhere = reload(session, gone), reload(session, stale), reload(session, nowhere)
    assert (gone.status, gone.cancel_reason) == (TouchpointStatus.cancelled, "procedure cancelled: withdrew")
    assert (stale.status, stale.cancel_reason) == (TouchpointStatus.skipped, STALE)
    assert (nowhere.status, nowhere.cancel_reason) == (TouchpointStatus.skipped, "no consent for sms")
    assert gone.attempts == stale.attempts == 0 and gone.lease_owner is None


def test_lateness_follows_each_kinds_window_a_late_checkin_is_skipped_a_late_survey_still_goes(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    procedure = make_procedure(session, clinic, make_patient(session, clinic))
    ten_hours_ago, ten_days_ago = utcnow() - timedelta(hours=10), utcnow() - timedelta(days=10)
    checkin = make_touchpoint(session, procedure, kind=TouchpointKind.checkin, template="checkin_invite",
                              planned_at=ten_hours_ago, due_at=ten_hours_ago,
                              window_end=ten_hours_ago + timedelta(hours=8), payload={"survey": "checkin"})
    survey = make_touchpoint(session, procedure, kind=TouchpointKind.survey, template="survey_invite",
                             planned_at=ten_days_ago, due_at=ten_days_ago, clinical=False,
                             window_end=ten_days_ago + timedelta(days=30), payload={"survey": "mo6"})
    run(dispatch_settings)
    checkin, survey = reload(session, checkin), reload(session, survey)
    assert (checkin.status, checkin.cancel_reason) == (TouchpointStatus.skipped, STALE)
    assert survey.status == TouchpointStatus.sent
    assert [s.message_id for s in fake_providers.sent_sms] == [f"tp-{survey.id}"]


def test_quiet_hours_hold_until_the_patients_morning(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    now = utcnow()
    night = zone_at(2, now)
    patient = make_patient(session, clinic, timezone=night)
    local = now.astimezone(ZoneInfo(night))
    assert local.hour in (1, 2, 3), f"{night} is not night ({local})"
    tp = make_touchpoint(session, make_procedure(session, clinic, patient), window_end=now + timedelta(days=2))

    assert run(dispatch_settings).verdicts == {"hold": 1}

    tp = reload(session, tp)
    assert tp.status == TouchpointStatus.held and tp.attempts == 0 and fake_providers.creates() == 0
    opening = tp.due_at.astimezone(ZoneInfo(night))
    assert (opening.hour, opening.minute, opening.date()) == (8, 0, local.date())


def test_daily_cap_sends_one_non_clinical_message_and_moves_the_next_to_tomorrow(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    window = utcnow() + timedelta(days=5)
    first = make_touchpoint(session, procedure, clinical=False, window_end=window)
    second = make_touchpoint(session, procedure, clinical=False, window_end=window,
                             due_at=first.due_at + timedelta(seconds=1))
    clinical = make_touchpoint(session, procedure, clinical=True)
    short = make_touchpoint(session, procedure, clinical=False, window_end=utcnow() + timedelta(hours=3),
                            due_at=first.due_at + timedelta(seconds=2))

    report = run(dispatch_settings)

    assert report.as_dict()["sent"] == 2 and report.verdicts["defer"] == 1 and report.verdicts["skip"] == 1
    first, second, clinical, short = (reload(session, t) for t in (first, second, clinical, short))
    assert first.status == clinical.status == TouchpointStatus.sent
    assert second.status == TouchpointStatus.scheduled and second.attempts == 0
    zone = ZoneInfo(patient.timezone)
    assert second.due_at.astimezone(zone).date() == utcnow().astimezone(zone).date() + timedelta(days=1)
    assert second.due_at.astimezone(zone).hour == 8
    assert (short.status, short.cancel_reason) == (TouchpointStatus.skipped, CAP_NO_ROOM)


def test_a_channel_without_consent_is_switched_to_the_other(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, sms=False)
    tp = make_touchpoint(session, make_procedure(session, clinic, patient), channel=Channel.sms)

    assert run(dispatch_settings).switched == 1

    tp = reload(session, tp)
    assert (tp.channel, tp.status) == (Channel.email, TouchpointStatus.sent)
    assert tp.payload["channel_history"] == [{"from": "sms", "to": "email", "because": "no consent for sms"}]
    assert fake_providers.creates("sms") == 0 and fake_providers.creates("email") == 1


def test_an_opted_out_patient_gets_nothing(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    tps = [make_touchpoint(session, procedure, channel=ch) for ch in Channel]
    consent.opt_out(session, patients=[patient], source="keyword", actor="test")
    session.commit()
    assert run(dispatch_settings).claimed == 0
    assert {reload(session, t).cancel_reason for t in tps} == {consent.OPTED_OUT}
    events = session.exec(select(ConsentEvent).where(ConsentEvent.patient_id == patient.id,
                                                     col(ConsentEvent.granted).is_(False))).all()
    assert {e.channel for e in events} == {Channel.sms, Channel.email}
    assert fake_providers.creates() == 0


def test_a_suppression_for_an_old_number_does_not_block_a_new_one(
    dispatch_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    consent.suppress(session, patient=patient, channel=Channel.sms, reason="twilio_21211", source="provider",
                     actor="test", address="+14165550000")
    session.commit()
    tp = make_touchpoint(session, make_procedure(session, clinic, patient))
    run(dispatch_settings)
    assert reload(session, tp).status == TouchpointStatus.sent and fake_providers.creates("sms") == 1
    assert session.exec(select(CoordinatorTask)).all() == []
    assert session.get(Patient, patient.id) is not None
