"""Reminders for surveys nobody has finished, and closing windows (missed or closed responses).

Reminders are ordinary touchpoints (`<key>_reminder<n>`, template `survey_reminder`, payload
`reminder_for`), created when they fall due, so the dispatcher applies consent, suppression, quiet
hours, the daily cap (outcome surveys are not clinical) and the channel switch, and the message carries
the same survey link as the invitation:
- early check-in: one reminder at `checkin_reminder_time` (12:00) local on the day after the invitation;
- outcome survey: `survey_reminder_days` after the invitation (default +2 d and +5 d; a protocol setting
  `survey_reminder_days: "2,5"` overrides), only inside its window.
None after a handoff (a person is on it) or once the survey is complete. When several reminder times
have passed (the ticker was down), only the latest is sent.

When `closes_at` passes, an open response ends: missed without answers, closed (scored) with some. An
invitation that never went out (skipped, failed, cancelled by an opt-out) ends as missed too, so "not
received" counts; not counted: plans cancelled or migrated, rows merged into another plan, and
touchpoints already past when the plan was built.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from aftercare.models import (
    OPEN_TOUCHPOINT_STATUSES,
    Patient,
    Procedure,
    ProcedureStatus,
    SurveyLink,
    SurveyResponse,
    SurveyStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.planning import PAST_AT_PLANNING
from aftercare.settings import Settings
from aftercare.surveys import items, store
from aftercare.surveys.responses import LOOKBACK, SURVEY_KINDS, closes_at_for, ensure_response, locked
from aftercare.timing import local_wall_time, parse_hhmm

log = logging.getLogger(__name__)
REMINDER_TEMPLATE = "survey_reminder"
_NOT_COUNTED_PREFIXES = ("procedure cancelled", "protocol migrated")


def reminder_days(settings: Settings, protocol_settings: dict[str, object]) -> list[int]:
    override = protocol_settings.get("survey_reminder_days")
    if isinstance(override, str):
        try:
            return sorted({int(part) for part in override.replace(" ", "").split(",") if part})
        except ValueError:
            log.warning("protocol setting survey_reminder_days=%r is not a list of days; using the default", override)
    return sorted(set(settings.survey_reminder_days))


def reminder_times(
    response: SurveyResponse, zone: str, *, settings: Settings, protocol_settings: dict[str, object]
) -> list[datetime]:
    """When reminders are due for this (opened) response, inside its window."""
    assert response.opened_at is not None
    if response.kind == TouchpointKind.checkin:
        local = ZoneInfo(zone)
        next_day = response.opened_at.astimezone(local).date() + timedelta(days=1)
        times = [local_wall_time(next_day, parse_hhmm(settings.checkin_reminder_time), local)]
    else:
        times = [response.opened_at + timedelta(days=d) for d in reminder_days(settings, protocol_settings) if d > 0]
    return [t for t in times if t < response.closes_at]


def due_reminders(session: Session, *, settings: Settings, now: datetime) -> int:
    """Create the reminder touchpoints that are due now. Returns how many."""
    rows = session.exec(
        select(SurveyResponse, Patient)
        .join(Patient, col(Patient.id) == col(SurveyResponse.patient_id))
        .where(
            SurveyResponse.status == SurveyStatus.open,
            col(SurveyResponse.opened_at).is_not(None),
            col(SurveyResponse.handoff_at).is_(None),
            col(SurveyResponse.closes_at) > now,
        )
    ).all()
    created = 0
    for response, patient in rows:
        times = reminder_times(response, patient.timezone, settings=settings,
                               protocol_settings=items.protocol_settings(session, response))
        passed = [t for t in times if t <= now]
        if len(passed) <= response.reminders_sent:
            continue
        fresh = locked(session, response.id or 0)
        if fresh is None or fresh.status != SurveyStatus.open or len(passed) <= fresh.reminders_sent:
            continue
        invitation = session.get(Touchpoint, fresh.touchpoint_id)
        if invitation is None:
            continue
        number = len(passed)
        _insert_reminder(session, fresh, invitation, number=number, due=passed[-1], now=now)
        fresh.reminders_sent, fresh.updated_at = number, now
        session.add(fresh)
        created += 1
    session.flush()
    return created


def _insert_reminder(
    session: Session, response: SurveyResponse, invitation: Touchpoint, *, number: int, due: datetime, now: datetime
) -> None:
    row = Touchpoint(
        procedure_id=invitation.procedure_id, patient_id=invitation.patient_id,
        key=f"{invitation.key}_reminder{number}"[:64], kind=TouchpointKind.message, template=REMINDER_TEMPLATE,
        channel=invitation.channel, clinical=invitation.clinical, planned_at=due, due_at=due,
        window_end=response.closes_at, status=TouchpointStatus.scheduled,
        payload={"survey": response.survey_id, "reminder_for": response.id, "reminds": invitation.key},
        created_at=now, updated_at=now,
    )
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Touchpoint).values(**row.model_dump(exclude={"id"})).on_conflict_do_nothing())


def close_windows(session: Session, *, settings: Settings, now: datetime) -> int:
    """End every response whose window has closed, including invitations that never went out. Returns how
    many ended. Oldest first, so a run of missed check-ins is seen in order."""
    ended = 0
    for tp in _unopened_past(session, now):
        patient = session.get(Patient, tp.patient_id)
        if patient is None or closes_at_for(tp, patient.timezone) > now:
            continue
        ensure_response(session, tp)
    due = session.exec(
        select(SurveyResponse.id, Touchpoint.planned_at)
        .join(Touchpoint, col(Touchpoint.id) == col(SurveyResponse.touchpoint_id))
        .where(SurveyResponse.status == SurveyStatus.open, col(SurveyResponse.closes_at) <= now)
        .order_by(col(Touchpoint.planned_at), col(SurveyResponse.id))
    ).all()
    for response_id, _planned in due:
        response = locked(session, response_id or 0)
        if response is None or response.status != SurveyStatus.open or response.closes_at > now:
            continue
        if _moved(session, response, now):
            continue
        store.end(session, response, now=now, settings=settings, reason="its window closed")
        ended += 1
    session.flush()
    return ended


def _moved(session: Session, response: SurveyResponse, now: datetime) -> bool:
    """An invitation not sent yet whose plan moved later (the procedure was rescheduled): the response and its
    links follow the new window instead of closing."""
    tp = session.get(Touchpoint, response.touchpoint_id)
    patient = session.get(Patient, response.patient_id)
    if response.opened_at is not None or tp is None or patient is None or tp.status not in OPEN_TOUCHPOINT_STATUSES:
        return False
    later = closes_at_for(tp, patient.timezone)
    if later <= now:
        return False
    response.closes_at, response.updated_at = later, now
    session.add(response)
    for link in session.exec(select(SurveyLink).where(SurveyLink.response_id == response.id)):
        link.expires_at = later
        session.add(link)
    return True


def _unopened_past(session: Session, now: datetime) -> list[Touchpoint]:
    """Recent check-in/survey touchpoints past their sending window that have no response yet."""
    rows = session.exec(
        select(Touchpoint, SurveyResponse.id)
        .join(Procedure, col(Procedure.id) == col(Touchpoint.procedure_id))
        .outerjoin(
            SurveyResponse,
            (col(SurveyResponse.procedure_id) == col(Touchpoint.procedure_id))
            & (col(SurveyResponse.touchpoint_key) == col(Touchpoint.key)),
        )
        .where(
            col(Touchpoint.kind).in_(SURVEY_KINDS),
            col(Touchpoint.window_end) <= now,
            col(Touchpoint.window_end) > now - LOOKBACK,
            col(Touchpoint.status) != TouchpointStatus.merged,
            col(Procedure.status).in_((ProcedureStatus.active, ProcedureStatus.completed)),
        )
        .order_by(col(Touchpoint.planned_at), col(Touchpoint.id))
    ).all()
    out = []
    for tp, response_id in rows:
        if response_id is not None:
            continue
        if tp.status == TouchpointStatus.skipped and tp.cancel_reason == PAST_AT_PLANNING:
            continue
        if tp.status == TouchpointStatus.cancelled and (tp.cancel_reason or "").startswith(_NOT_COUNTED_PREFIXES):
            continue
        out.append(tp)
    return out
