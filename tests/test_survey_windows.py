"""Reminders, closing windows, misses and the coordinator tasks they call for, with a controlled clock.

The dispatcher sends the invitations and reminders (real SDKs against the fake Twilio/SendGrid); the
survey tick runs at chosen instants. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from aftercare import plans, scheduler
from aftercare.cli import app as cli_app
from aftercare.models import (
    Channel,
    Clinic,
    Patient,
    Procedure,
    SurveyLink,
    SurveyResponse,
    SurveyStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.settings import Settings, get_settings
from aftercare.surveys.responses import ensure_response
from aftercare.surveys.service import tick
from aftercare.surveys.tokens import token_for
from aftercare.web.app import create_app
from tests.dispatch_helpers import make_patient, make_procedure
from tests.factories import make_clinic
from tests.fakes import FakeProviders, replies
from tests.survey_helpers import LINK, dispatch, post_sms, response_of, snapshot, survey_touchpoint, tasks_of, texts_to

ZONE = ZoneInfo("America/Toronto")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant on June `day`, 2030 at hour:minute in Toronto (no DST change nearby)."""
    return datetime(2030, 6, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def clinic(session: Session, app_settings: Settings) -> Clinic:
    clinic = make_clinic(session)
    snapshot(session, app_settings)
    return clinic


def patient_in_toronto(session: Session, clinic: Clinic, **kw: object) -> Patient:
    return make_patient(session, clinic, language="en", timezone="America/Toronto", **kw)  # type: ignore[arg-type]


def at(settings: Settings, when: datetime) -> None:
    """What the service does around `when`: the survey tick (reminders fall due), the dispatcher (sends them
    and invitations), the survey tick again (opens what went out)."""
    tick(settings, now=when, send=False)
    dispatch(settings, clock=lambda: when)
    tick(settings, now=when, send=False)


def reminders(session: Session) -> list[Touchpoint]:
    session.expire_all()
    return list(session.exec(select(Touchpoint).where(col(Touchpoint.key).contains("_reminder"))
                             .order_by(col(Touchpoint.id))))


# -- early check-ins ---------------------------------------------------------------------------------


def test_an_unanswered_checkin_gets_one_reminder_at_midday_next_day_then_is_missed(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic)
    invite = survey_touchpoint(session, clinic, patient, key="checkin_d5", due=local(3, 10))
    at(app_settings, local(3, 10))
    response = response_of(session, invite)
    assert response.opened_at is not None and response.closes_at == local(5, 0)  # through the next local day

    at(app_settings, local(4, 11, 59))
    assert reminders(session) == []
    at(app_settings, local(4, 12))
    [reminder] = reminders(session)
    assert (reminder.key, reminder.template, reminder.status) == ("checkin_d5_reminder1", "survey_reminder",
                                                                  TouchpointStatus.sent)
    assert (reminder.due_at, reminder.window_end, reminder.clinical) == (local(4, 12), local(5, 0), True)
    invitation_text, reminder_text = texts_to(fake_providers, patient.phone_e164 or "")
    assert "your survey is open until" in reminder_text
    assert LINK.search(reminder_text).group(0) == LINK.search(invitation_text).group(0)  # type: ignore[union-attr]
    at(app_settings, local(4, 18))
    assert len(reminders(session)) == 1  # one reminder only

    at(app_settings, local(5, 0, 1))
    response = response_of(session, invite)
    assert response.status == SurveyStatus.missed and response.miss_reason == "not_answered"
    assert response.miss_detail == "SMS sent (no delivery report), no answer"
    assert tasks_of(session) == []  # one miss is not a pattern


def test_two_checkins_in_a_row_unanswered_open_a_tracing_task(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    d1, d2, d3 = (survey_touchpoint(session, clinic, patient, key=f"checkin_d{n}", due=local(n, 10),
                                    procedure=procedure) for n in (1, 2, 3))
    at(app_settings, local(1, 10))
    at(app_settings, local(2, 10))  # d2 goes out: d1 (unanswered) is over
    assert response_of(session, d1).status == SurveyStatus.missed
    assert "newer check-in (checkin_d2)" in (response_of(session, d1).end_reason or "")
    assert tasks_of(session) == []
    at(app_settings, local(2, 12))
    assert reminders(session) == []  # d1 is no longer open: no reminder for it

    at(app_settings, local(3, 10))  # d3 goes out: d2 is over too, the day after it

    [task] = tasks_of(session, "checkin_tracing")
    assert task.title == "No answer to 2 check-ins in a row: call the patient"
    assert task.detail == ("- Day 1 check-in: not answered (SMS sent (no delivery report), no answer)\n"
                           "- Day 2 check-in: not answered (SMS sent (no delivery report), no answer)")
    assert (task.patient_id, task.touchpoint_id, task.priority.value) == (patient.id, d2.id, "normal")
    assert response_of(session, d3).status == SurveyStatus.open
    at(app_settings, local(5, 0, 1))  # d3 missed too: the same run of misses, no second task
    assert len(tasks_of(session, "checkin_tracing")) == 1


def test_checkins_that_never_reached_the_patient_are_told_apart(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic, email=False)  # SMS only: nothing to switch to
    procedure = make_procedure(session, clinic, patient)
    fake_providers.script(replies.twilio_error(21614))  # not a mobile number: refused for good
    d1 = survey_touchpoint(session, clinic, patient, key="checkin_d1", due=local(1, 10), procedure=procedure)
    at(app_settings, local(1, 10))
    d2 = survey_touchpoint(session, clinic, patient, key="checkin_d2", due=local(2, 10), procedure=procedure)
    at(app_settings, local(2, 10))  # the number is suppressed now: skipped
    at(app_settings, local(4, 0, 1))

    first, second = response_of(session, d1), response_of(session, d2)
    assert first.status == second.status == SurveyStatus.missed
    assert first.miss_reason == second.miss_reason == "not_received"
    assert (first.miss_detail or "").startswith("SMS failed:") and (second.miss_detail or "").startswith(
        "SMS skipped: sms suppressed")
    [task] = tasks_of(session, "checkin_tracing")
    assert task.title == "2 check-ins did not reach the patient: check contact details and consent"
    assert [line.split(":")[1].strip().split(" (")[0] for line in (task.detail or "").splitlines()] == [
        "not received", "not received"]


def test_a_handoff_stops_reminders_and_a_cancelled_plan_opens_no_task(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic)
    invite = survey_touchpoint(session, clinic, patient, key="checkin_d3", due=local(3, 10))
    at(app_settings, local(3, 10))
    response = response_of(session, invite)
    response.handoff_at = local(3, 10, 5)
    session.add(response)
    session.commit()
    at(app_settings, local(4, 12))
    assert reminders(session) == []

    other = patient_in_toronto(session, clinic)
    procedure = make_procedure(session, clinic, other)
    for n in (1, 2):
        survey_touchpoint(session, clinic, other, key=f"checkin_d{n}", due=local(n, 10), procedure=procedure)
    at(app_settings, local(1, 10))
    plans.cancel(session, session.get(Procedure, procedure.id), "patient moved away", actor="test")  # type: ignore[arg-type]
    session.commit()
    at(app_settings, local(6, 0))
    assert tasks_of(session, "checkin_tracing") == []


# -- outcome surveys ----------------------------------------------------------------------------------


def test_outcome_survey_reminders_at_2_and_5_days_inside_the_window(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic, preferred_channel=Channel.email)
    invite = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_wk6", survey="wk6",
                               channel=Channel.email, due=local(3, 10), window=timedelta(days=7))
    at(app_settings, local(3, 10))
    at(app_settings, local(5, 9, 59))
    assert reminders(session) == []
    at(app_settings, local(5, 10))
    at(app_settings, local(8, 10))
    at(app_settings, local(9, 10))
    first, second = reminders(session)
    assert [(r.key, r.due_at, r.channel, r.clinical) for r in (first, second)] == [
        ("survey_wk6_reminder1", local(5, 10), Channel.email, False),
        ("survey_wk6_reminder2", local(8, 10), Channel.email, False)]
    mails = [m for m in fake_providers.sent_email if m.to == [patient.email]]
    assert [m.subject.split(": ", 1)[1] for m in mails] == ["how are you doing?", "your survey is still open",
                                                           "your survey is still open"]
    assert len({LINK.search(m.text or "").group(0) for m in mails}) == 1  # type: ignore[union-attr]

    at(app_settings, local(10, 10, 1))
    assert response_of(session, invite).status == SurveyStatus.missed


def test_no_reminder_once_complete_and_repeated_misses_open_a_coordinator_task(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic)
    procedure = make_procedure(session, clinic, patient)
    wk6 = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_wk6", survey="wk6",
                            due=local(1, 10), window=timedelta(days=7), procedure=procedure)
    at(app_settings, local(1, 10))
    response = response_of(session, wk6)
    response.status = SurveyStatus.complete
    session.add(response)
    session.commit()
    at(app_settings, local(3, 10))
    assert reminders(session) == []

    mo3 = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_mo3", survey="mo3",
                            due=local(9, 10), window=timedelta(days=2), procedure=procedure)
    mo6 = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_mo6", survey="mo6",
                            due=local(12, 10), window=timedelta(days=2), procedure=procedure)
    at(app_settings, local(9, 10))
    at(app_settings, local(11, 11))
    assert response_of(session, mo3).status == SurveyStatus.missed and tasks_of(session) == []
    at(app_settings, local(12, 10))
    at(app_settings, local(14, 11))

    [task] = tasks_of(session)
    assert (task.kind, task.title) == ("survey_missed", "Outcome survey not answered (2 missed): contact the patient")
    assert task.detail is not None and "3-month outcome survey: not answered" in task.detail
    assert "6-month outcome survey: not answered" in task.detail and task.touchpoint_id == mo6.id


# -- the tick's entry points ---------------------------------------------------------------------------


def test_the_ticker_runs_the_survey_job_and_the_cli_too(app_settings: Settings, session: Session) -> None:
    assert "surveys-tick" in [job.name for job in scheduler.JOBS]
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["surveys", "tick", "--now", "2030-06-03T17:00:00Z", "--no-send"])
    assert ok.exit_code == 0, ok.output
    assert "reminders: 0" in ok.output and "questions: 0" in ok.output
    bad = runner.invoke(cli_app, ["surveys", "tick", "--now", "tomorrow"])
    naive = runner.invoke(cli_app, ["surveys", "tick", "--now", "2030-06-03T17:00:00"])
    assert bad.exit_code == naive.exit_code == 2
    assert "--now: not an ISO 8601 date and time: 'tomorrow'" in bad.output
    assert "--now: give a time zone" in naive.output


def test_a_reply_after_the_window_closed_is_kept_and_answered_once(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic, language="es")
    invite = survey_touchpoint(session, clinic, patient, window=timedelta(minutes=5),
                               due=datetime.now(UTC) - timedelta(days=3))
    at(app_settings, invite.due_at)
    tick(app_settings, send=False)  # now: long past its window
    assert response_of(session, invite).status == SurveyStatus.missed

    with TestClient(create_app(app_settings)) as client:
        first = post_sms(client, patient.phone_e164 or "", "5")
        second = post_sms(client, patient.phone_e164 or "", "perdon, 5")
    assert first.status_code == second.status_code == 200
    texts = texts_to(fake_providers, patient.phone_e164 or "")
    assert "Esta encuesta ya cerro; pasamos su mensaje a nuestro equipo" in texts[-1]
    assert len(texts) == 2  # the invitation, then ONE closed notice
    assert [t.title for t in tasks_of(session, "patient_reply")] == ["Reply to a survey that has closed"] * 2
    assert session.exec(select(SurveyResponse)).one().closed_notice_at is not None


def test_a_response_whose_invitation_was_moved_later_follows_the_new_window(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = patient_in_toronto(session, clinic, preferred_channel=Channel.email)
    invite = survey_touchpoint(session, clinic, patient, kind=TouchpointKind.survey, key="survey_wk6", survey="wk6",
                               channel=Channel.email, due=local(3, 10), window=timedelta(days=7))
    response = ensure_response(session, invite)  # prepared for a send that did not happen (a retry was due)
    assert response is not None
    token_for(session, response, app_settings)
    invite.planned_at = invite.due_at = local(20, 10)  # the procedure was moved two weeks later
    invite.window_end = local(27, 10)
    session.add(invite)
    session.commit()

    tick(app_settings, now=local(11, 0), send=False)

    response = response_of(session, invite)
    assert response.status == SurveyStatus.open and response.closes_at == local(27, 10)
    assert session.exec(select(SurveyLink)).one().expires_at == local(27, 10)
