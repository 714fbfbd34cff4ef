"""Opt-out by keyword and by sentence (English and Spanish): recognised, applied at once, confirmed once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from aftercare.models import (
    Channel,
    Clinic,
    ConsentEvent,
    CoordinatorTask,
    InboundIntent,
    OutboundReply,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.optout import classify
from aftercare.patients import consent_state
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient, make_procedure, make_touchpoint
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.fakes.signing import twilio_inbound

SMS = "/webhooks/twilio/sms"
PUBLIC = "https://aftercare.example"


@pytest.mark.parametrize("body", [
    "STOP", "stop.", " Stop! ", "STOPALL", "unsubscribe", "CANCEL", "end", "QUIT", "revoke", "optout",
])
def test_twilio_keywords_opt_out_and_twilio_confirms_them(body: str) -> None:
    found = classify(body)
    assert found.intent == InboundIntent.opt_out and found.twilio_keyword and not found.sentence


@pytest.mark.parametrize("body", ["BAJA", "baja", "Alto", "no más", "opt out", "cancelar"])
def test_other_single_words_opt_out_and_we_confirm_them(body: str) -> None:
    found = classify(body)
    assert found.intent == InboundIntent.opt_out and not found.twilio_keyword and not found.sentence


@pytest.mark.parametrize("body", [
    "Please stop texting me",
    "please stop",
    "Stop texting me!!",
    "stop sending me messages",
    "Don't text me anymore",
    "do not contact me again",
    "no more texts please",
    "Can you remove me from this list",
    "leave me alone",
    "no más mensajes por favor",
    "Ya no me escriban",
    "ya no me manden nada",
    "Por favor dejen de escribirme",
    "no me envíen más mensajes",
    "Quiero darme de baja",
    "baja por favor",
])
def test_plain_language_opt_outs_in_english_and_spanish(body: str) -> None:
    found = classify(body)
    assert found.intent == InboundIntent.opt_out and found.sentence, body


@pytest.mark.parametrize("body", [
    "I stopped the ibuprofen",
    "the swelling stopped yesterday",
    "Can I cancel my appointment on Friday?",
    "pain 3, no more swelling",
    "no me mandaron el enlace",
    "ya no me duele",
    "ya no me molesta la rodilla",
    "help, my knee is hot and red",
    "7",
    "yes",
    "",
])
def test_ordinary_replies_are_not_opt_outs(body: str) -> None:
    assert classify(body).intent == InboundIntent.text


def test_keywords_for_start_and_help() -> None:
    assert classify("START").intent == InboundIntent.opt_in and classify("START").twilio_keyword
    assert classify("unstop").intent == InboundIntent.opt_in
    assert classify("yes").intent == InboundIntent.text
    assert classify("yes", opted_out=True).intent == InboundIntent.opt_in
    assert classify("HELP").intent == classify("ayuda").intent == classify("Info").intent == InboundIntent.help


# -- applied through the inbound webhook ----------------------------------------------------------------


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


@pytest.mark.parametrize(("language", "sentence"), [("en", "Please stop texting me"), ("es", "no más mensajes")])
def test_a_sentence_opts_out_of_all_channels_cancels_everything_queued_and_is_confirmed_once(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders, language: str,
    sentence: str,
) -> None:
    patient = make_patient(session, clinic, language=language)
    first, second = (make_procedure(session, clinic, patient) for _ in range(2))
    queued = [make_touchpoint(session, p, channel=ch, key="k") for p in (first, second) for ch in Channel]
    held = make_touchpoint(session, first, status=TouchpointStatus.held, key="h")
    sent = make_touchpoint(session, first, status=TouchpointStatus.sent, key="s")

    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", patient.phone_e164 or "", sentence)
    assert client.post(SMS, data=form, headers=headers).status_code == 200
    assert client.post(SMS, data=form, headers=headers).status_code == 200  # Twilio retried

    session.expire_all()
    assert consent_state(session, patient.id or 0) == {Channel.sms: False, Channel.email: False}
    sources = {e.source for e in session.exec(select(ConsentEvent).where(ConsentEvent.granted == False))}  # noqa: E712
    assert sources == {"natural_language"}
    rows = {t.id: t for t in session.exec(select(Touchpoint))}
    assert {(rows[t.id].status, rows[t.id].cancel_reason) for t in [*queued, held]} == {
        (TouchpointStatus.cancelled, "patient opted out")}
    assert rows[sent.id].status == TouchpointStatus.sent
    task = session.exec(select(CoordinatorTask).where(CoordinatorTask.kind == "opt_out_review")).one()
    assert (task.kind, task.patient_id) == ("opt_out_review", patient.id)
    reply = session.exec(select(OutboundReply)).one()
    assert (reply.template, reply.language.value, reply.status) == ("opt_out_confirmation", language,
                                                                   TouchpointStatus.sent)
    assert [s.to for s in fake_providers.sent_sms] == [patient.phone_e164]  # one confirmation, nothing else


def test_an_opt_out_wins_over_a_conversation_in_progress(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    survey = make_touchpoint(session, make_procedure(session, clinic, patient), key="survey_mo6",
                             status=TouchpointStatus.sent)
    reminder = make_touchpoint(session, make_procedure(session, clinic, patient), key="survey_mo6_reminder")
    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", patient.phone_e164 or "", "8 but please stop texting me")
    assert client.post(SMS, data=form, headers=headers).status_code == 200
    session.expire_all()
    assert session.get(Touchpoint, reminder.id).status == TouchpointStatus.cancelled  # type: ignore[union-attr]
    assert session.get(Touchpoint, survey.id).status == TouchpointStatus.sent  # type: ignore[union-attr]
    assert consent_state(session, patient.id or 0)[Channel.sms] is False
    assert int(session.exec(select(func.count()).select_from(OutboundReply)).one()) == 1
