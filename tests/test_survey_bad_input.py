"""Bad input in a survey conversation, through the signed webhook: a clear reply, the raw text kept, never a 500.

Empty bodies, emoji, MMS with only a picture, 1,600-character texts, mixed languages, numbers far out of range,
and (hypothesis) any text at all. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from aftercare.db import get_engine
from aftercare.models import Clinic, InboundMessage, Patient, SurveyAnswer, SurveyStatus, Touchpoint
from aftercare.settings import Settings, get_settings
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.survey_helpers import (
    answer_to,
    count,
    dispatch,
    post_sms,
    response_of,
    snapshot,
    survey_touchpoint,
    tasks_of,
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


@pytest.fixture
def in_survey(session: Session, clinic: Clinic, app_settings: Settings,
              fake_providers: FakeProviders) -> tuple[Patient, Touchpoint]:
    """A patient who answered 0 to a check-in invitation and was asked the pain question."""
    patient = make_patient(session, clinic, language="en")
    invite = survey_touchpoint(session, clinic, patient)
    dispatch(app_settings)
    return patient, invite


def say(client: TestClient, fake: FakeProviders, patient: Patient, body: str, **extra: str) -> str | None:
    with Session(get_engine()) as session:
        return answer_to(session, fake, post_sms(client, patient.phone_e164 or "", body, **extra))


def rows(session: Session) -> list[SurveyAnswer]:
    session.expire_all()
    return list(session.exec(select(SurveyAnswer).order_by(col(SurveyAnswer.id))))


def test_empty_bodies_get_one_clarifying_question_then_move_on(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, _ = in_survey
    assert "Please reply 0 if all is fine, or 1 if you need help." in (say(client, fake_providers, patient, "") or "")
    assert "pain right now" in (say(client, fake_providers, patient, "   ") or "")
    assert [(r.item_id, r.raw_text, r.outcome.value, r.counts) for r in rows(session)] == [
        ("quick_status", "", "unclear", False), ("quick_status", "   ", "unclear", True)]


def test_emoji_answers(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, _ = in_survey
    for text in ("0", "3", "4"):
        say(client, fake_providers, patient, text)
    assert "Please reply YES or NO" in (say(client, fake_providers, patient, "🤷") or "")
    assert "temperature" not in (say(client, fake_providers, patient, "👎") or "temperature")  # no fever: no temp
    assert [(r.raw_text, r.value) for r in rows(session)][-2:] == [("🤷", None), ("👎", False)]


def test_a_picture_without_words_goes_to_a_person_and_the_question_stays(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, _ = in_survey
    say(client, fake_providers, patient, "0")

    text = say(client, fake_providers, patient, "", NumMedia="1", MediaUrl0="https://api.twilio.com/m/ME1",
               MediaContentType0="image/jpeg")

    assert text is not None and "our team will read your message" in text and "pain right now" in text
    [task] = tasks_of(session, "patient_reply")
    assert task.title == "Patient sent a picture"
    stored = session.exec(select(InboundMessage).where(col(InboundMessage.num_media) == 1)).one()
    assert stored.params["MediaUrl0"] == "https://api.twilio.com/m/ME1" and not stored.handled
    assert [r.item_id for r in rows(session)] == ["quick_status"]  # not read as an answer


def test_a_1600_character_text_is_kept_whole_and_goes_to_a_person(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, _ = in_survey
    say(client, fake_providers, patient, "0")
    story = ("I wanted to tell you that since yesterday the knee feels different and I am not sure what to do. "
             * 20)[:1600]

    text = say(client, fake_providers, patient, story, NumSegments="11")

    assert text is not None and "pain right now" in text
    assert rows(session)[-1].raw_text == story and len(story) == 1600
    assert session.exec(select(InboundMessage).where(InboundMessage.body == story)).one().body == story
    assert len(tasks_of(session, "patient_reply")) == 1


def test_mixed_languages_and_numbers_far_out_of_range(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, invite = in_survey
    assert "pain right now" in (say(client, fake_providers, patient, "todo bien thanks") or "")
    assert "one number from 0" in (say(client, fake_providers, patient, "99999999999999999999999999") or "")
    assert "WORST" in (say(client, fake_providers, patient, "dolor 6 out of 10") or "")
    assert "fever" in (say(client, fake_providers, patient, "siete, bastante") or "")
    got = [(r.raw_text, r.outcome.value, r.value, r.counts) for r in rows(session)]
    assert got == [("todo bien thanks", "ok", "all_fine", True),
                   ("99999999999999999999999999", "out_of_range", None, False),
                   ("dolor 6 out of 10", "ok", 6, True),
                   ("siete, bastante", "ok", 7, True)]
    assert response_of(session, invite).status == SurveyStatus.open


def test_no_text_crashes_the_webhook(
    client: TestClient, session: Session, fake_providers: FakeProviders, in_survey: tuple[Patient, Touchpoint]
) -> None:
    patient, invite = in_survey
    posted: list[str] = []

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
        st.text(alphabet="0123456789 .,/-sSyYnN", max_size=40),
        st.sampled_from(["", "\x00", "STOP please", "HELP", "1", "yes", "🙂" * 200, "x" * 1600, "١٢", "१०"]),
    ), media=st.sampled_from(["0", "1", "", "abc", "-1"]))
    @example(body="\x00", media="0")  # NUL: no PostgreSQL text column takes it
    @example(body="7\x00/10", media="1")
    @example(body="", media="99999999999999999999")
    def post(body: str, media: str) -> None:
        response = post_sms(client, patient.phone_e164 or "", body, NumMedia=media)
        assert response.status_code == 200, (body, response.text)
        posted.append(body)

    post()
    session.expire_all()
    assert count(session, InboundMessage) == len(posted)  # every message stored, as received
    assert response_of(session, invite).status in (SurveyStatus.open, SurveyStatus.complete)
