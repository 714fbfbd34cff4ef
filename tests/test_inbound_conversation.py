"""SMS survey conversations through the SIGNED Twilio webhook, with the real dispatcher and the fake Twilio.

The invitation is sent by the dispatcher, the patient's replies are posted to /webhooks/twilio/sms, and
every question the patient gets is read back from the fake Twilio. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from aftercare import plans, procedures
from aftercare.db import get_engine
from aftercare.models import (
    Clinic,
    Conversation,
    InboundMessage,
    OutboundReply,
    SurveyAnswer,
    SurveyResponse,
    SurveyScore,
    SurveyStatus,
    TaskPriority,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings, get_settings
from aftercare.surveys import items, state
from aftercare.surveys.service import tick
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient, midday_zone
from tests.factories import make_clinic, procedure_in
from tests.fakes import FakeProviders
from tests.survey_helpers import (
    LINK,
    answer_to,
    counting_answers,
    dispatch,
    post_sms,
    reload,
    response_of,
    snapshot,
    survey_touchpoint,
    tasks_of,
    texts_to,
)


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def clinic(session: Session, app_settings: Settings) -> Clinic:
    clinic = make_clinic(session)
    snapshot(session, app_settings)
    return clinic


def reply(client: TestClient, fake: FakeProviders, phone: str, body: str) -> str | None:
    """Text `body` from `phone`; returns the conversation's reply the patient got (None: no reply)."""
    with Session(get_engine()) as session:
        return answer_to(session, fake, post_sms(client, phone, body))


# -- the full day-3 check-in ---------------------------------------------------------------------------


def test_day3_checkin_by_sms_end_to_end(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders,
) -> None:
    registry = ProtocolRegistry.from_dir(app_settings.config_dir / "protocols")
    phone = "+14165550142"
    recorded = procedures.record(
        session, clinic=clinic, registry=registry, settings=app_settings, actor="test", source="test",
        data=procedure_in(external_id="E2E-1", performed_at=utcnow() - timedelta(days=3),
                          patient={"phone": phone, "language": "en", "timezone": midday_zone()}),
    )
    session.commit()
    plans.build_for(session, [recorded.procedure.id or 0])
    session.commit()

    report = dispatch(app_settings)

    invite = session.exec(select(Touchpoint).where(Touchpoint.key == "checkin_d3")).one()
    assert (report.as_dict()["sent"], invite.status) == (1, TouchpointStatus.sent)
    [text] = texts_to(fake_providers, phone)
    assert "Reply 0 if all is well, 1 if we should call" in text and LINK.search(text)  # the signed link too

    script = [
        ("0", "How bad is your knee pain right now?"),
        ("pain is about 4", "WORST knee pain in the last 24 hours"),
        ("11", "Please reply with one number from 0"),  # out of range: one clarifying question
        ("6/10", "fever or chills"),
        ("yes", "If you took your temperature"),  # asked only because of the fever
        ("101 F", "Is the skin around the knee red?"),
        ("2", "hot to the touch"),
        ("no", "swelling 1 better, 2 the same, or 3 worse"),
        ("better", "put weight on the leg"),
        ("1", "calf or thigh"),
        ("nope", "shortness of breath or chest pain"),
        ("no", "allergic reaction"),
        ("1", "fluid leaking"),
        ("1", "numbness or weakness"),
        ("no", "fallen or hurt the knee"),
        ("no", "Anything else you want us to know?"),
        ("Thanks, all good", "Thank you, Ana, we have your answers"),
    ]
    for answer, expected in script:
        got = reply(client, fake_providers, phone, answer)
        assert got is not None and expected in got, (answer, got)

    response = response_of(session, invite)
    assert response.status == SurveyStatus.complete and response.completed_at is not None
    answers = counting_answers(session, response)
    assert answers["quick_status"] == "all_fine" and answers["nrs_now"] == 4 and answers["nrs_worst_24h"] == 6
    assert answers["fever_or_chills_reported"] is True and answers["temp_c"] == pytest.approx(38.3, abs=0.05)
    assert answers["free_text"] == "Thanks, all good" and len(answers) == 16
    rows = session.exec(select(SurveyAnswer).where(SurveyAnswer.response_id == response.id)).all()
    eleven = next(r for r in rows if r.raw_text == "11")
    assert (eleven.outcome.value, eleven.counts, eleven.value, eleven.item_id) == ("out_of_range", False, 11,
                                                                                    "nrs_worst_24h")
    inbound = {m.id: m for m in session.exec(select(InboundMessage))}
    assert all(r.inbound_id in inbound and inbound[r.inbound_id].body == r.raw_text for r in rows)
    assert all(m.handled and m.patient_id == invite.patient_id for m in inbound.values())
    stored = session.exec(select(SurveyScore).where(SurveyScore.response_id == response.id))
    scores = {s.instrument_id: s for s in stored}
    assert set(scores) == {"quick_status", "nrs_now", "nrs_worst_24h", "redflag_checkin"}
    assert (scores["nrs_now"].value, scores["nrs_now"].instrument_version, scores["nrs_now"].complete) == (4, "1.0.0",
                                                                                                         True)
    assert "fever_or_chills_reported" in scores["redflag_checkin"].detail["red_flags"]
    assert reload(session, invite).status == TouchpointStatus.answered
    replies = session.exec(select(OutboundReply).where(col(OutboundReply.inbound_id).is_not(None))).all()
    assert len(replies) == len(script) and all(r.status == TouchpointStatus.sent for r in replies)
    assert tasks_of(session, "patient_reply") == tasks_of(session, "needs_help") == []  # no free text, no handoff


# -- restarts and one conversation at a time ------------------------------------------------------------


def test_the_conversation_survives_a_restart(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)
    with TestClient(create_app(app_settings)) as first:
        assert "pain right now" in (reply(first, fake_providers, patient.phone_e164 or "", "0") or "")
        assert "WORST" in (reply(first, fake_providers, patient.phone_e164 or "", "3") or "")
    items.instrument_registry.cache_clear()  # a new process: nothing cached
    items._protocols.clear()
    with TestClient(create_app(app_settings)) as second:
        assert "fever or chills" in (reply(second, fake_providers, patient.phone_e164 or "", "5") or "")
    assert counting_answers(session, response_of(session, invite)) == {
        "quick_status": "all_fine", "nrs_now": 3, "nrs_worst_24h": 5}


def test_a_newer_checkin_closes_the_older_one_and_takes_the_replies(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    phone = patient.phone_e164 or ""
    older = survey_touchpoint(session, clinic, patient, key="checkin_d2", due=utcnow() - timedelta(hours=2))
    dispatch(app_settings)
    assert "pain right now" in (reply(client, fake_providers, phone, "0") or "")
    newer = survey_touchpoint(session, clinic, patient, key="checkin_d1")  # another procedure's check-in
    dispatch(app_settings)

    assert "pain right now" in (reply(client, fake_providers, phone, "0") or "")  # answers the NEWER one

    old, new = response_of(session, older), response_of(session, newer)
    assert old.status == SurveyStatus.closed and "newer check-in" in (old.end_reason or "")
    assert counting_answers(session, old) == {"quick_status": "all_fine"}
    assert counting_answers(session, new) == {"quick_status": "all_fine"}
    assert session.get(Conversation, patient.id).ref_id == new.id  # type: ignore[union-attr]


def test_an_outcome_survey_pauses_behind_a_checkin_and_resumes_after_it(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    phone = patient.phone_e164 or ""
    survey = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_wk6",
                               survey="wk6", window=timedelta(days=7))
    dispatch(app_settings)
    tick(app_settings)  # texts the first question right after the invitation
    assert "how bad was your knee pain on average" in texts_to(fake_providers, phone)[-1]
    assert "stiff" in (reply(client, fake_providers, phone, "5") or "")

    checkin = survey_touchpoint(session, clinic, patient, key="checkin_d1")
    dispatch(app_settings)
    assert "pain right now" in (reply(client, fake_providers, phone, "0") or "")  # the check-in's, not KOOS
    for answer in ["2", "3", "no", "1", "no", "2", "1", "1", "no", "no", "1", "1", "no", "no", "n"]:
        last = reply(client, fake_providers, phone, answer)
    assert last is not None and "we have your answers" in last
    assert response_of(session, checkin).status == SurveyStatus.complete
    assert response_of(session, survey).status == SurveyStatus.open  # paused, not closed

    tick(app_settings)  # resumes the survey: its pending question again
    assert "stiff" in texts_to(fake_providers, phone)[-1]
    assert "twisting" in (reply(client, fake_providers, phone, "1") or "")
    assert counting_answers(session, response_of(session, survey)) == {"nrs_pain": 5, "koos_s6": 1}


# -- clarifying, handing off, free text -----------------------------------------------------------------


def test_one_clarifying_question_then_the_raw_text_is_kept_and_the_survey_moves_on(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="es")
    phone = patient.phone_e164 or ""
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)

    assert "dolor" in (reply(client, fake_providers, phone, "todo bien") or "")
    assert "Responda con un solo numero del 0" in (reply(client, fake_providers, phone, "mmm") or "")
    assert "PEOR" in (reply(client, fake_providers, phone, "no se, regular") or "")  # moves on
    assert "fiebre" in (reply(client, fake_providers, phone, "siete") or "")

    rows = session.exec(select(SurveyAnswer).where(SurveyAnswer.response_id == response_of(session, invite).id)
                        .order_by(col(SurveyAnswer.id))).all()
    assert [(r.item_id, r.outcome.value, r.counts, r.value) for r in rows] == [
        ("quick_status", "ok", True, "all_fine"),
        ("nrs_now", "unclear", False, None),
        ("nrs_now", "unclear", True, None),  # kept, value unknown
        ("nrs_worst_24h", "ok", True, 7),
    ]
    assert rows[2].raw_text == "no se, regular"


def test_quick_status_1_goes_to_a_person_at_once_and_the_questions_wait(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    phone = patient.phone_e164 or ""
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)

    text = reply(client, fake_providers, phone, "1")

    assert text is not None and "Someone from our team will call you soon" in text and "call 911 now" in text
    [task] = tasks_of(session, "needs_help")
    assert (task.priority, task.patient_id, task.touchpoint_id) == (TaskPriority.high, patient.id, invite.id)
    tick(app_settings)
    questions = session.exec(select(OutboundReply).where(OutboundReply.template == "survey_question")).all()
    assert questions == []  # nothing pushed after a handoff
    response = response_of(session, invite)
    assert response.handoff_at is not None and response.asked_at is None

    follow_up = reply(client, fake_providers, phone, "my knee is really swollen and hot since last night")
    assert follow_up is not None and "pain right now" in follow_up  # the patient continued: the next question
    [free] = tasks_of(session, "patient_reply")
    assert free.title == "Patient wrote after asking for help"
    assert "WORST" in (reply(client, fake_providers, phone, "8") or "")
    assert counting_answers(session, response_of(session, invite)) == {"quick_status": "need_help", "nrs_now": 8}


def test_a_question_mid_survey_is_free_text_and_the_item_stays_open(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    phone = patient.phone_e164 or ""
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)
    reply(client, fake_providers, phone, "0")

    text = reply(client, fake_providers, phone, "When can I take a shower?")
    assert text is not None and text.startswith(clinic.name.replace("í", "i")[:10])
    assert "our team will read your message" in text and "pain right now" in text  # asked again
    booking = reply(client, fake_providers, phone, "Can I move my appointment to Friday?")
    assert booking is not None and "pain right now" in booking
    assert [t.title for t in tasks_of(session, "patient_reply")] == [
        "Patient asked a question", "Patient wrote about an appointment"]
    assert "WORST" in (reply(client, fake_providers, phone, "2") or "")
    response = response_of(session, invite)
    assert counting_answers(session, response) == {"quick_status": "all_fine", "nrs_now": 2}
    kept = session.exec(select(SurveyAnswer).where(SurveyAnswer.outcome == "not_an_answer")).all()
    assert [r.raw_text for r in kept] == ["When can I take a shower?", "Can I move my appointment to Friday?"]
    assert not any(m.handled for m in session.exec(select(InboundMessage)) if m.body.endswith("?"))


def test_a_text_with_no_survey_still_goes_to_a_person(
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    assert reply(client, fake_providers, patient.phone_e164 or "", "7") is None
    [task] = tasks_of(session)
    assert (task.kind, task.title, task.patient_id) == ("patient_reply", "Reply from a patient", patient.id)
    assert session.exec(select(SurveyResponse)).all() == []


def test_after_another_conversation_lets_go_a_reply_still_finds_the_open_survey(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="en")
    phone = patient.phone_e164 or ""
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)
    assert "pain right now" in (reply(client, fake_providers, phone, "0") or "")
    pointer = session.get(Conversation, patient.id)
    assert pointer is not None
    state.point(session, patient_id=patient.id or 0, kind=state.BOOKING, ref_id=99, asked_at=utcnow())
    state.release(session, patient_id=patient.id or 0, kind=state.BOOKING, ref_id=99)  # a booking ended
    session.commit()

    assert "WORST" in (reply(client, fake_providers, phone, "3") or "")
    assert counting_answers(session, response_of(session, invite))["nrs_now"] == 3
