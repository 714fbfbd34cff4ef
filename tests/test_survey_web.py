"""The web survey behind a signed link: the email invitation, GET changes nothing, partial saves, completion,
and every kind of bad link (expired, used, closed, unknown, tampered, replayed). SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from aftercare.models import (
    Channel,
    Clinic,
    Patient,
    SurveyAnswer,
    SurveyLink,
    SurveyResponse,
    SurveyScore,
    SurveyStatus,
    TaskPriority,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.settings import Settings, get_settings
from aftercare.surveys.service import tick
from aftercare.surveys.tokens import token_hash
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.survey_helpers import (
    LINK,
    count,
    counting_answers,
    dispatch,
    reload,
    response_of,
    snapshot,
    survey_touchpoint,
    tasks_of,
)

NONCE = re.compile(r'name="nonce" value="([0-9a-f]{32})"')
WK6_ANSWERS = {"nrs_pain": "4", "koos_s6": "1", "koos_p2": "2", "koos_p3": "0", "koos_p6": "2", "koos_p9": "1",
               "koos_a3": "1", "koos_a5": "2", "pgic": "2"}


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


def emailed_survey(session: Session, clinic: Clinic, settings: Settings, fake: FakeProviders, *,
                   language: str = "en", kind: TouchpointKind = TouchpointKind.survey,
                   **kw: Any) -> tuple[Patient, Touchpoint, str]:
    """An outcome survey (wk6) invitation sent by email through the dispatcher; returns its link's path."""
    patient = make_patient(session, clinic, language=language, preferred_channel=Channel.email)
    options: dict[str, Any] = {"kind": kind, "key": "survey_wk6", "survey": "wk6", "window": timedelta(days=7)}
    if kind == TouchpointKind.checkin:
        options = {"kind": kind}
    options.update(kw)
    tp = survey_touchpoint(session, clinic, patient, channel=Channel.email, **options)
    dispatch(settings)
    [mail] = [m for m in fake.sent_email if m.to == [patient.email]]
    found = LINK.search(mail.text or "")
    assert found and f'href="{found.group(0)}"' in (mail.html or ""), mail.text
    return patient, reload(session, tp), f"/s/{found.group(1)}"


def nonce(html: str) -> str:
    found = NONCE.search(html)
    assert found, "no nonce on the page"
    return found.group(1)


def state(session: Session) -> tuple[Any, ...]:
    """Everything a survey page could change."""
    session.expire_all()
    responses = [r.model_dump() for r in session.exec(select(SurveyResponse).order_by(col(SurveyResponse.id)))]
    links = [r.model_dump() for r in session.exec(select(SurveyLink).order_by(col(SurveyLink.id)))]
    return responses, links, count(session, SurveyAnswer), count(session, SurveyScore)


def test_the_email_links_to_the_form_and_opening_it_changes_nothing(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers)
    link = session.exec(select(SurveyLink)).one()
    assert link.token_hash == token_hash(path.rsplit("/", 1)[1]) and link.expires_at == tp.window_end
    assert path.rsplit("/", 1)[1] not in str([r.model_dump() for r in session.exec(select(SurveyLink))])  # hashed
    before = state(session)

    first = client.get(path)
    again = client.get(path)
    head = client.head(path)

    assert first.status_code == again.status_code == head.status_code == 200
    assert "set-cookie" not in first.headers and first.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in first.headers["x-robots-tag"] and first.headers["cache-control"] == "no-store"
    assert state(session) == before  # a link-preview bot used nothing up
    page = first.text
    assert "Your survey" in page and f"Hi {patient.first_name}" in page and 'name="nonce"' in page
    assert "In the past week, how stiff was your knee" in page and "Knee function (KOOS JR)" in page
    assert 'value="send"' in page and "Save and finish later" in page and "call 911 now" in page
    assert "+52 624 123 4567" in page  # the clinic's number (international form: the patient is in Canada)


def test_partial_answers_are_kept_and_a_complete_form_scores_and_uses_up_the_link(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers)
    token = nonce(client.get(path).text)

    saved = client.post(path, data={"nonce": token, "action": "save", "nrs_pain": "4", "koos_s6": "1"})
    assert saved.status_code == 200 and "Saved. You can finish later" in saved.text
    response = response_of(session, tp)
    assert counting_answers(session, response) == {"nrs_pain": 4, "koos_s6": 1}
    assert response.status == SurveyStatus.open and response.started_at is not None
    reopened = client.get(path).text
    assert re.search(r'name="nrs_pain" value="4" checked', reopened)  # the saved answers are on the page

    short = client.post(path, data={"nonce": token, "action": "send", "koos_p2": "2"})
    assert short.status_code == 422 and short.text.count("Please answer this question.") == 6  # 5 KOOS + PGIC
    assert counting_answers(session, response_of(session, tp))["koos_p2"] == 2  # kept anyway

    done = client.post(path, data={"nonce": token, "action": "send", **WK6_ANSWERS, "nrs_pain": "3"})

    assert done.status_code == 200 and "We have your answers" in done.text
    response = response_of(session, tp)
    assert response.status == SurveyStatus.complete and reload(session, tp).status == TouchpointStatus.answered
    assert counting_answers(session, response)["nrs_pain"] == 3  # changed on the form: the latest counts
    scores = {s.instrument_id: s for s in session.exec(select(SurveyScore))}
    assert scores["koos_jr"].complete and scores["koos_jr"].raw == 9 and scores["koos_jr"].instrument_version
    assert scores["nrs_pain"].value == 3 and scores["pgic"].category == "much_improved"
    assert session.exec(select(SurveyLink)).one().used_at is not None
    web = session.exec(select(SurveyAnswer).where(SurveyAnswer.item_id == "nrs_pain")).all()
    assert [(a.source, a.raw_text, a.value) for a in web] == [("web", "4", 4), ("web", "3", 3)]

    used = client.get(path)
    replayed = client.post(path, data={"nonce": token, "action": "send", **WK6_ANSWERS})
    assert used.status_code == replayed.status_code == 410
    assert "already answered" in used.text and "+52 624 123 4567" in used.text
    assert count(session, SurveyAnswer) == 10  # one row per new or changed answer; the replay stored nothing


def test_bad_values_are_shown_back_and_not_stored(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers)
    token = nonce(client.get(path).text)

    bad = client.post(path, data={"nonce": token, "action": "save", "nrs_pain": "11", "koos_s6": "9",
                                  "pgic": "<script>alert(1)</script>", "unknown_field": "x" * 10_000})

    assert bad.status_code == 422 and "Please check the questions marked below." in bad.text
    assert bad.text.count("Please choose one answer.") == 2 and "<script>alert(1)</script>" not in bad.text
    assert counting_answers(session, response_of(session, tp)) == {}


def test_spanish_page_and_the_language_switch(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, _tp, path = emailed_survey(session, clinic, app_settings, fake_providers, language="es")
    page = client.get(path).text
    assert 'lang="es"' in page and "Su encuesta" in page and "Guardar y terminar después" in page
    assert "En la última semana" in page and "llame ya al 911" in page
    english = client.get(path + "?lang=en").text
    assert "Your survey" in english and 'action="' + path + '?lang=en"' in english


def test_a_checkin_form_with_i_need_help_reaches_a_person(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers, kind=TouchpointKind.checkin)
    page = client.get(path).text
    assert "Your check-in" in page and 'data-show-if="fever_or_chills_reported" data-show-values="yes"' in page

    saved = client.post(path, data={"nonce": nonce(page), "action": "save", "quick_status": "1",
                                    "fever_or_chills_reported": "no", "temp_c": "39.5"})

    assert saved.status_code == 200
    [task] = tasks_of(session, "needs_help")
    assert task.priority == TaskPriority.high and "on the web form" in (task.detail or "")
    answers = counting_answers(session, response_of(session, tp))
    assert answers == {"quick_status": "need_help", "fever_or_chills_reported": False}  # temp: not asked after "no"


# -- links that no longer (or never did) open a survey ----------------------------------------------------


def test_expired_closed_unknown_and_tampered_links(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers, language="es")
    token = path.rsplit("/", 1)[1]
    page = client.get(path).text

    tampered = client.get(path[:-1] + ("A" if token[-1] != "A" else "B"))
    unknown = client.get("/s/" + "x" * 22)
    malformed = client.get("/s/%00%ff' OR 1=1--")
    forged = client.post(path, data={"nonce": "0" * 32, "action": "save", "nrs_pain": "4"})
    no_nonce = client.post(path, data={"action": "save", "nrs_pain": "4"})
    assert tampered.status_code == unknown.status_code == malformed.status_code == 404
    assert "No encontramos esta encuesta" in tampered.text and "+52 624 123 4567" in tampered.text
    assert forged.status_code == no_nonce.status_code == 403 and "Abra otra vez el enlace" in forged.text
    assert count(session, SurveyAnswer) == 0

    tick(app_settings, now=tp.window_end + timedelta(minutes=1), send=False)  # the window closes: missed
    expired = client.get(path)
    late = client.post(path, data={"nonce": nonce(page), "action": "send", **WK6_ANSWERS})
    assert expired.status_code == late.status_code == 410
    assert "Esta encuesta ya cerró" in expired.text and "+52 624 123 4567" in expired.text
    assert response_of(session, tp).status == SurveyStatus.missed and count(session, SurveyAnswer) == 0


def test_a_link_past_its_expiry_is_refused_even_before_the_tick_runs(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, _tp, path = emailed_survey(session, clinic, app_settings, fake_providers)
    link = session.exec(select(SurveyLink)).one()
    link.expires_at = utcnow() - timedelta(seconds=1)
    session.add(link)
    session.commit()
    assert client.get(path).status_code == 410
    assert "The time to answer this survey has passed." in client.get(path).text


def test_too_many_fields_is_a_clear_400(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, _tp, path = emailed_survey(session, clinic, app_settings, fake_providers)
    response = client.post(path, data={f"f{i}": "1" for i in range(300)})
    assert response.status_code == 400


def test_no_form_content_crashes_the_page(
    client: TestClient, app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    _patient, tp, path = emailed_survey(session, clinic, app_settings, fake_providers, kind=TouchpointKind.checkin)
    token = nonce(client.get(path).text)
    names = ["quick_status", "nrs_now", "temp_c", "free_text", "fever_or_chills_reported", "action", "nonce", "x"]

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(names), st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)))
    @example({"nonce": token, "action": "save", "free_text": "a\x00b", "temp_c": "\x00"})
    @example({"nonce": token, "action": "save", "nrs_now": "99999999999999999999", "temp_c": "1e308"})
    def post(fields: dict[str, str]) -> None:
        fields.setdefault("nonce", token)
        response = client.post(path, data=fields)
        assert response.status_code in (200, 403, 422), (fields, response.status_code)

    post()
    assert response_of(session, tp).status in (SurveyStatus.open, SurveyStatus.complete)
