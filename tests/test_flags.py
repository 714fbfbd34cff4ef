"""Triage into flags through the real paths: the signed SMS webhook, the SMS check-in, the service and the ticker.

Pages and patient texts are read back from the fake Twilio and SendGrid. SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from aftercare.flags import intake, service
from aftercare.flags.ticker import flags_tick
from aftercare.models import (
    AuditEvent,
    CoordinatorTask,
    FlagStatus,
    FlagTier,
    OutboundReply,
    TaskPriority,
    TouchpointStatus,
    TriageRequest,
    TriageStatus,
)
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.fakes import FakeProviders
from tests.flag_helpers import (
    PRIMARY,
    Team,
    flags_of,
    make_team,
    pages_of,
    patient_with_procedure,
    requests,
    stored_text,
    triage_text,
    use_oncall,
)
from tests.survey_helpers import dispatch, post_sms, snapshot, survey_touchpoint, texts_to

LINK = re.compile(r"https://aftercare\.example/flags/(\d+)")


@pytest.fixture
def app_settings(
    database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def team(session: Session, app_settings: Settings) -> Team:
    made = make_team(session)
    snapshot(session, app_settings)
    return made


def no_phi(text: str, *words: str) -> None:
    for word in words:
        assert word.lower() not in text.lower(), f"{word!r} in page: {text}"


# -- the webhook path -----------------------------------------------------------------------------------


def test_an_urgent_sms_through_the_signed_webhook_pages_the_doctor_on_call_without_phi(
    client: TestClient, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    patient, procedure = patient_with_procedure(session, team.clinic, days_ago=4, first_name="Zoraida",
                                                language="en", timezone="Etc/UTC")
    body = "I have a fever of 38.9 and the knee is swollen and hot"
    with time_machine.travel(datetime.now(UTC).replace(hour=10, minute=0), tick=True):
        response = post_sms(client, patient.phone_e164 or "", body)
        assert response.status_code == 200

        [flag] = flags_of(session, patient)
    assert (flag.tier, flag.status, flag.source_kind, flag.procedure_id) == (
        FlagTier.urgent, FlagStatus.open, "message", procedure.id)
    assert {"U1-fever-measured", "U2-fever-reported"} <= set(flag.rules)
    assert any("38.9" in reason for reason in flag.reasons)
    assert flag.escalation_level == 0 and flag.next_escalation_at is not None
    assert flag.sla_due_at - flag.created_at == timedelta(minutes=15)

    # The primary on call got an SMS and an email, each with only the flag's number, the clinic and the link.
    pages = pages_of(session, flag)
    assert {(p.channel.value, p.to_address, p.status) for p in pages} == {
        ("sms", team.primary.phone, TouchpointStatus.sent), ("email", PRIMARY, TouchpointStatus.sent)}
    [sms] = [s for s in fake_providers.sent_sms if s.to == team.primary.phone]
    assert sms.body == f"Urgent flag #{flag.id} at {team.clinic.name}: https://aftercare.example/flags/{flag.id}"
    [mail] = [e for e in fake_providers.sent_email if e.to == [PRIMARY]]
    assert mail.subject == f"Urgent flag #{flag.id} at {team.clinic.name}"
    for text in (sms.body, mail.subject, mail.text or "", mail.html or ""):
        no_phi(text, "Zoraida", patient.last_name, patient.phone_e164 or "", "fever", "38.9", "knee", "swollen")
    assert sms.sid == next(p.provider_id for p in pages if p.channel.value == "sms")

    # The patient got the acknowledgement, with what to do if it gets worse.
    [ack] = texts_to(fake_providers, patient.phone_e164 or "")
    assert "the doctor on call will contact you soon" in ack and "call 911 now" in ack
    assert flag.patient_told == "acknowledged"
    [request] = requests(session)
    assert (request.status, request.severity, request.flag_id) == (TriageStatus.done, "urgent", flag.id)
    actions = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.entity_type == "flag"))]
    assert actions[:3] == ["flag.raised", "flag.paged", "flag.patient_told"]


def test_an_emergency_at_night_tells_the_patient_at_once_and_pages_the_night_doctor(
    client: TestClient, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, days_ago=2, language="es", timezone="Etc/UTC")
    night = datetime.now(UTC).replace(hour=2, minute=30)  # quiet hours for the patient; the night shift on call
    with time_machine.travel(night, tick=True):
        post_sms(client, patient.phone_e164 or "", "No puedo respirar y me duele el pecho")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.emergency and "E1-breathing-chest" in flag.rules
    [told] = texts_to(fake_providers, patient.phone_e164 or "")
    assert told.startswith(f"{team.clinic.name}: Ana, esto necesita atencion ya. Llame al 911")  # GSM-7
    assert flag.patient_told == "emergency"
    paged = [s for s in fake_providers.sent_sms if s.to == team.night.phone]
    assert [s.body for s in paged] == [f"EMERGENCY flag #{flag.id} at {team.clinic.name}: "
                                       f"https://aftercare.example/flags/{flag.id}"]
    assert not [s for s in fake_providers.sent_sms if s.to == team.primary.phone]


def test_a_review_finding_is_queued_for_business_days_without_a_page(
    client: TestClient, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, days_ago=9, language="en")
    tuesday = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    with time_machine.travel(tuesday, tick=False):
        triage_text(session, get_settings(), patient, "I fell in the garden yesterday")
    [flag] = flags_of(session, patient)
    assert (flag.tier, flag.human_now) == (FlagTier.review, False) and "R7-fall" in flag.rules
    assert flag.sla_due_at == datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    assert pages_of(session, flag) == [] and flag.next_escalation_at is None
    assert texts_to(fake_providers, patient.phone_e164 or "") == []  # free text is not answered automatically
    [task] = session.exec(select(CoordinatorTask)).all()
    assert (task.kind, task.patient_id) == ("patient_reply", patient.id)  # and a person reads it


def test_a_patient_asking_for_help_reaches_a_person_now(session: Session, team: Team, app_settings: Settings) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, days_ago=1)
    triage_text(session, app_settings, patient, "please call me")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.review and flag.human_now
    assert flag.sla_due_at - flag.created_at == timedelta(minutes=120)
    now_task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "flag_now")).one()
    assert now_task.priority == TaskPriority.high and f"/flags/{flag.id}" in (now_task.detail or "")


def test_routine_text_is_logged_without_a_flag(session: Session, team: Team, app_settings: Settings) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, days_ago=10)
    triage_text(session, app_settings, patient, "Thank you, all is well")
    assert flags_of(session) == []
    [request] = requests(session)
    assert (request.status, request.severity, request.rules) == (TriageStatus.done, "routine", ["T0-free-text"])
    assert request.result["needs_human"] is True and request.result["tasks"] == ["patient_reply"]


# -- the SMS check-in path ----------------------------------------------------------------------------


def test_checkin_answers_are_triaged_one_by_one_and_a_red_flag_answer_pages(
    client: TestClient, app_settings: Settings, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    patient, procedure = patient_with_procedure(session, team.clinic, days_ago=2.2, language="en")
    survey_touchpoint(session, team.clinic, patient, key="checkin_d2", procedure=procedure)
    dispatch(app_settings)
    phone = patient.phone_e164 or ""
    post_sms(client, phone, "0")  # quick status: all fine
    post_sms(client, phone, "5")  # pain now 5 on day 2: the expected flare -> education, no flag
    assert flags_of(session) == []
    flare = [t for t in texts_to(fake_providers, phone) if "often peak on days 2-3" in t]
    assert len(flare) == 1
    post_sms(client, phone, "10")  # worst pain in 24 h: 10 -> urgent
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.urgent and flag.rules == ["U8-pain-9", "R1-high-pain-early"]
    assert flag.human_now  # R1: a nurse calls the same day
    assert flag.source_kind == "answer" and flag.response_id is not None and flag.answer_id is not None
    assert len(pages_of(session, flag)) == 2  # SMS + email to the primary
    post_sms(client, phone, "no")  # fever? no: nothing new, no second flag, no second page
    assert [f.id for f in flags_of(session)] == [flag.id] and len(pages_of(session, flag)) == 2
    assert len([t for t in texts_to(fake_providers, phone) if "often peak on days 2-3" in t]) == 1  # once
    done = requests(session)
    assert len(done) == 4 and all(r.status == TriageStatus.done and r.source_kind == "answer" for r in done)
    assert [r.flag_id for r in done] == [None, None, flag.id, None]


# -- idempotency, one open flag per patient, upgrades ---------------------------------------------------


def test_a_source_is_triaged_once(session: Session, team: Team, app_settings: Settings,
                                  fake_providers: FakeProviders) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    inbound = stored_text(session, patient, "my calf is swollen and painful")
    assert inbound.id is not None
    first = intake.request_triage(session, source_kind="message", source_id=inbound.id, patient_id=patient.id)
    again = intake.request_triage(session, source_kind="message", source_id=inbound.id, patient_id=patient.id)
    session.commit()
    assert first is not None and again is None
    assert service.triage_requests(app_settings).claimed == 0  # done already, at commit
    [flag] = flags_of(session)
    assert len(pages_of(session, flag)) == 2 and fake_providers.creates("sms") == 2  # page + acknowledgement


def test_new_findings_join_the_open_flag_and_a_higher_tier_pages_again(
    session: Session, team: Team, app_settings: Settings, fake_providers: FakeProviders
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic, days_ago=9)
    triage_text(session, app_settings, patient, "I fell down the stairs")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.review and pages_of(session, flag) == []
    triage_text(session, app_settings, patient, "my calf is red and swollen")
    triage_text(session, app_settings, patient, "now I also have a fever of 39")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.urgent
    assert {"R7-fall", "U6-calf", "U1-fever-measured"} <= set(flag.rules)
    assert len(pages_of(session, flag)) == 2  # paged once, when it became urgent
    texts = texts_to(fake_providers, patient.phone_e164 or "")
    assert len(texts) == 1 and "el médico de guardia se comunicara con usted pronto" in texts[0]  # once, in Spanish
    triage_text(session, app_settings, patient, "I can't breathe")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.emergency and flag.patient_told == "emergency"
    assert [(p.tier.value, p.channel.value) for p in pages_of(session, flag)] == [
        ("urgent", "sms"), ("urgent", "email"), ("emergency", "sms"), ("emergency", "email")]
    assert len(texts_to(fake_providers, patient.phone_e164 or "")) == 2


def test_after_acknowledgement_a_new_red_flag_opens_a_new_flag(
    session: Session, team: Team, app_settings: Settings
) -> None:
    from aftercare.flags import handling

    patient, _ = patient_with_procedure(session, team.clinic)
    triage_text(session, app_settings, patient, "fever 38.5")
    [first] = flags_of(session, patient)
    handling.acknowledge(session, team.primary, first, via="test")
    session.commit()
    triage_text(session, app_settings, patient, "now there is pus coming out")
    second = flags_of(session, patient)[-1]
    assert second.id != first.id and second.rules[0] == "U3-pus" and len(pages_of(session, second)) == 2


# -- when the flow does not run: the ticker ------------------------------------------------------------


def test_requests_no_flow_handled_are_triaged_by_the_ticker_after_the_grace(
    session: Session, team: Team, app_settings: Settings, fake_providers: FakeProviders
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    start = datetime.now(UTC).replace(hour=11, minute=0, microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        inbound = stored_text(session, patient, "the wound is leaking pus")
        # The request row as the hook writes it, but no flow ever started (Prefect was down).
        session.add(TriageRequest(source_kind="message", source_id=inbound.id or 0, patient_id=patient.id,
                                  text_kind="free_text", created_at=utcnow()))
        session.commit()
        assert flags_tick(app_settings)["triaged"]["claimed"] == 0  # within the grace: a flow may still come
        clock.shift(timedelta(seconds=app_settings.triage_grace_seconds + 1))
        counts = flags_tick(app_settings)
    assert counts["triaged"]["claimed"] == 1 and counts["triaged"]["severities"] == {"urgent": 1}
    [flag] = flags_of(session, patient)
    assert len([s for s in fake_providers.sent_sms if s.to == team.primary.phone]) == 1


def test_a_broken_rules_file_never_loses_a_message(
    session: Session, team: Team, app_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Triage fails (a clinic saved a broken config/triage.yaml): retried, then a person is told to read it."""
    config = tmp_path / "config"
    shutil.copytree(app_settings.config_dir, config)
    (config / "triage.yaml").write_text("rules: [{id: X1, tier: severe}]\n", encoding="utf-8")
    monkeypatch.setenv("AFTERCARE_CONFIG_DIR", str(config))
    get_settings.cache_clear()
    broken = get_settings()
    patient, _ = patient_with_procedure(session, team.clinic)
    triage_text(session, broken, patient, "fever 39")  # attempt 1, at commit: fails
    [request] = requests(session)
    assert (request.status, request.attempts) == (TriageStatus.pending, 1) and "RulesError" in (request.error or "")
    for _ in range(service.MAX_ATTEMPTS - 1):
        service.triage_requests(broken)
    [request] = requests(session)
    assert request.status == TriageStatus.failed
    task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "triage_failed")).one()
    assert task.priority == TaskPriority.high and task.inbound_id == request.source_id
    assert flags_of(session) == []
    monkeypatch.delenv("AFTERCARE_CONFIG_DIR")
    get_settings.cache_clear()


def test_a_patient_who_opted_out_is_not_texted_but_the_doctor_is_paged(
    client: TestClient, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    post_sms(client, patient.phone_e164 or "", "stop texting me, I am at the ER with chest pain")
    [flag] = flags_of(session, patient)
    assert flag.tier == FlagTier.emergency and flag.patient_told == "not_possible"
    [confirmation] = texts_to(fake_providers, patient.phone_e164 or "")  # the opt-out's own confirmation only
    assert "START" in confirmation and "911" not in confirmation
    assert [s.to for s in fake_providers.sent_sms if s.to != patient.phone_e164] == [team.primary.phone]
    triage_texts = select(OutboundReply).where(col(OutboundReply.template).like("triage_%"))
    assert session.exec(triage_texts).all() == []
    assert flag.status == FlagStatus.open and flag.next_escalation_at is not None  # escalates like any other


def test_a_red_flag_behind_a_backlog_is_triaged_and_paged_first(
    session: Session, team: Team, app_settings: Settings, fake_providers: FakeProviders
) -> None:
    everyday = []
    for n in range(service.ROUND + 5):
        patient, _ = patient_with_procedure(session, team.clinic)
        everyday.append(stored_text(session, patient, f"thanks, all well today ({n})"))
    sick, _ = patient_with_procedure(session, team.clinic)
    urgent = stored_text(session, sick, "fever 39.4 and chills")
    for inbound in [*everyday, urgent]:  # a backlog: stored, no flow started yet
        session.add(TriageRequest(source_kind="message", source_id=inbound.id or 0, patient_id=inbound.patient_id,
                                  text_kind="free_text"))
    session.commit()

    report = service.triage_requests(app_settings)

    assert report.claimed == len(everyday) + 1 and report.severities == {"routine": len(everyday), "urgent": 1}
    done = requests(session)
    first = min(done, key=lambda r: r.triaged_at or utcnow())
    assert first.source_id == urgent.id and first.severity == "urgent"
    assert report.pages == {"sent": 2}
