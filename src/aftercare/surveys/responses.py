"""Survey responses: one per check-in/survey touchpoint, created when its invitation is prepared, opened
when it goes out.

Answer windows. An outcome survey may be answered until its touchpoint's window ends. An early check-in
stays answerable through the next local day (so the midday reminder of the next day can still be
answered), unless a newer check-in goes out first.

One conversation at a time. When an invitation goes out it becomes the patient's current SMS
conversation (it is the last thing they were asked). Then:
- a newer CHECK-IN closes an older open check-in of the same patient ("superseded"): a check-in is about
  today, so yesterday's unanswered one is missed (partly answered: closed with what it has);
- any other newer invitation PAUSES the older open survey: it keeps its window and its web link, and its
  SMS questions resume (the tick asks the next one) once the newer conversation has ended.
So answers never interleave: a reply always answers the question the patient was asked last.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from aftercare.models import (
    Channel,
    Patient,
    Procedure,
    SurveyResponse,
    SurveyStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.settings import Settings
from aftercare.surveys import items, state
from aftercare.timeutil import utcnow
from aftercare.timing import local_wall_time

log = logging.getLogger(__name__)
SURVEY_KINDS = (TouchpointKind.checkin, TouchpointKind.survey)
SENT = (TouchpointStatus.sent, TouchpointStatus.delivered, TouchpointStatus.answered)
LOOKBACK = timedelta(days=10)  # invitations (and closed windows) older than this are not looked at again


def closes_at_for(tp: Touchpoint, zone: str) -> datetime:
    """When answers stop being accepted (see the module docstring)."""
    if tp.kind != TouchpointKind.checkin:
        return tp.window_end
    local = ZoneInfo(zone)
    day = tp.planned_at.astimezone(local).date()
    return max(tp.window_end, local_wall_time(day + timedelta(days=2), time(0, 0), local))


def locked(session: Session, response_id: int) -> SurveyResponse | None:
    """The response, re-read and (on PostgreSQL) locked for the rest of the transaction."""
    query = select(SurveyResponse).where(SurveyResponse.id == response_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.exec(query).first()


def find(session: Session, procedure_id: int, key: str) -> SurveyResponse | None:
    return session.exec(
        select(SurveyResponse).where(SurveyResponse.procedure_id == procedure_id, SurveyResponse.touchpoint_key == key)
    ).first()


def ensure_response(session: Session, tp: Touchpoint) -> SurveyResponse | None:
    """The response of a check-in/survey touchpoint, created (once, even under races) if needed."""
    survey_id = (tp.payload or {}).get("survey")
    if tp.kind not in SURVEY_KINDS or not survey_id:
        return None
    existing = find(session, tp.procedure_id, tp.key)
    if existing is not None:
        return existing
    procedure = session.get(Procedure, tp.procedure_id)
    patient = session.get(Patient, tp.patient_id)
    assert procedure is not None and patient is not None and tp.id is not None
    protocol = items.protocol_of(session, procedure)
    now = utcnow()
    row = SurveyResponse(
        patient_id=tp.patient_id, procedure_id=tp.procedure_id, touchpoint_id=tp.id, touchpoint_key=tp.key,
        kind=tp.kind, survey_id=str(survey_id), instrument_ids=items.instrument_ids(protocol, str(survey_id), tp.kind),
        channel=tp.channel, closes_at=closes_at_for(tp, patient.timezone), created_at=now, updated_at=now,
    )
    values = row.model_dump(exclude={"id"})
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SurveyResponse).values(**values).on_conflict_do_nothing())
    return find(session, tp.procedure_id, tp.key)


def reminded_response(session: Session, tp: Touchpoint) -> SurveyResponse | None:
    """The response a reminder touchpoint is about (payload `reminder_for`)."""
    ref = (tp.payload or {}).get("reminder_for")
    return session.get(SurveyResponse, int(ref)) if isinstance(ref, int) else None


def activate(session: Session, response: SurveyResponse, tp: Touchpoint, *, settings: Settings, now: datetime) -> None:
    """The invitation went out: open the response, close older check-ins, and make it the SMS conversation."""
    from aftercare.surveys.store import end

    sent_at = tp.sent_at or now
    if response.opened_at is None:
        response.opened_at, response.channel, response.updated_at = sent_at, tp.channel, now
        session.add(response)
    if response.status != SurveyStatus.open:
        return
    if response.kind == TouchpointKind.checkin:
        older = session.exec(
            select(SurveyResponse).where(
                SurveyResponse.patient_id == response.patient_id,
                SurveyResponse.status == SurveyStatus.open,
                SurveyResponse.kind == TouchpointKind.checkin,
                SurveyResponse.id != response.id,
                col(SurveyResponse.opened_at).is_not(None),
                col(SurveyResponse.opened_at) <= sent_at,
            )
        ).all()
        for old in older:
            end(session, old, now=now, settings=settings, reason=f"a newer check-in ({tp.key}) took its place")
    if response.channel != Channel.sms:
        return
    if response.current_item is None:
        registry = items.instrument_registry(settings.config_dir)
        answers = items.current_answers(session, response.id or 0)
        first = items.next_item(registry, response, items.protocol_settings(session, response), answers)
        if first is None:
            return
        response.current_item = first.item.id
        # The check-in invitation itself asks the quick-status question ("Reply 0 ... 1 ..."); a survey's
        # first question is texted by the tick right after its invitation.
        asked = response.kind == TouchpointKind.checkin and first.item.id == items.QUICK_STATUS
        response.asked_at = sent_at if asked else None
        session.add(response)
    assert response.id is not None
    state.point(session, patient_id=response.patient_id, kind=state.SURVEY, ref_id=response.id, asked_at=sent_at,
                only_if_newer=True)


def activate_sent(
    session: Session, *, settings: Settings, now: datetime, patient_ids: list[int] | None = None
) -> int:
    """Open every response whose invitation has gone out since the last look (oldest first, so a newer
    check-in closes an older one). Returns how many were opened."""
    query = (
        select(Touchpoint)
        .outerjoin(
            SurveyResponse,
            and_(
                col(SurveyResponse.procedure_id) == col(Touchpoint.procedure_id),
                col(SurveyResponse.touchpoint_key) == col(Touchpoint.key),
            ),
        )
        .where(
            col(Touchpoint.kind).in_(SURVEY_KINDS),
            col(Touchpoint.status).in_(SENT),
            col(Touchpoint.sent_at) >= now - LOOKBACK,
            or_(col(SurveyResponse.id).is_(None), col(SurveyResponse.opened_at).is_(None)),
        )
        .order_by(col(Touchpoint.sent_at), col(Touchpoint.id))
    )
    if patient_ids is not None:
        query = query.where(col(Touchpoint.patient_id).in_(patient_ids))
    opened = 0
    for tp in session.exec(query).all():
        response = ensure_response(session, tp)
        if response is None or response.opened_at is not None:
            continue
        response = locked(session, response.id or 0)
        if response is None or response.opened_at is not None:
            continue
        activate(session, response, tp, settings=settings, now=now)
        opened += 1
    session.flush()
    return opened
