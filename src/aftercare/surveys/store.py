"""Storing answers and scores, and ending a response (complete, missed or closed).

Every reply read against an item is kept (`survey_answer`), with the raw text, the parser's outcome and
reason, and whether it stands for the item (`counts`; the latest counting row wins, so a web form may
change an answer). Scores are computed with the instrument as configured now and stored with its
version; a complete survey also marks its invitation touchpoint `answered`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.flags.intake import request_triage
from aftercare.instruments import AnswerValue, InstrumentError, SurveyItem, score
from aftercare.models import (
    AnswerOutcome,
    SurveyAnswer,
    SurveyLink,
    SurveyResponse,
    SurveyScore,
    SurveyStatus,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.settings import Settings
from aftercare.surveys import items

log = logging.getLogger(__name__)
ACTOR = "surveys"
ANSWERABLE = (TouchpointStatus.sending, TouchpointStatus.sent, TouchpointStatus.delivered)


def record_answer(
    session: Session,
    response: SurveyResponse,
    question: SurveyItem,
    *,
    raw: str,
    value: AnswerValue,
    outcome: AnswerOutcome | str,
    reason: str,
    counts: bool,
    source: str,
    now: datetime,
    inbound_id: int | None = None,
) -> SurveyAnswer:
    assert response.id is not None
    row = SurveyAnswer(
        response_id=response.id, item_id=question.item.id, instrument_id=question.instrument.id,
        instrument_version=question.instrument.version, raw_text=raw, value=value,
        outcome=AnswerOutcome(outcome), reason=reason[:40], counts=counts, source=source, inbound_id=inbound_id,
        created_at=now,
    )
    session.add(row)
    if counts and response.started_at is None:
        response.started_at = now
    response.updated_at = now
    session.add(response)
    session.flush()
    assert row.id is not None
    request_triage(session, source_kind="answer", source_id=row.id, patient_id=response.patient_id)  # every answer
    return row


def compute_scores(
    session: Session, response: SurveyResponse, *, settings: Settings, now: datetime
) -> list[SurveyScore]:
    """Score every instrument of the response from its current answers (stored, replacing earlier scores)."""
    assert response.id is not None
    registry = items.instrument_registry(settings.config_dir)
    answers = items.current_answers(session, response.id)
    existing = {s.instrument_id: s for s in session.exec(
        select(SurveyScore).where(SurveyScore.response_id == response.id))}
    stored: list[SurveyScore] = []
    for instrument_id in response.instrument_ids:
        try:
            instrument = registry.get(instrument_id)
            own = {item.id: answers[item.id] for item in instrument.items if item.id in answers}
            result = score(instrument, own)
        except (InstrumentError, ValueError) as exc:
            log.warning("survey response %s: %s not scored: %s", response.id, instrument_id, exc)
            continue
        row = existing.get(instrument_id) or SurveyScore(response_id=response.id, instrument_id=instrument_id,
                                                         instrument_version=instrument.version, name=result.name)
        row.instrument_version, row.name = result.instrument_version, result.name[:100]
        row.value, row.complete, row.raw = result.value, result.complete, result.raw
        row.category = result.category[:40] if result.category else None
        row.detail = {"missing": list(result.missing), "fields": dict(result.fields),
                      "red_flags": list(result.red_flags)}
        row.caveats, row.computed_at = list(result.caveats), now
        session.add(row)
        stored.append(row)
    session.flush()
    return stored


def complete(
    session: Session, response: SurveyResponse, *, settings: Settings, now: datetime, link: SurveyLink | None = None,
    via: str = "sms",
) -> list[SurveyScore]:
    """Every question answered: scores stored, the invitation marked answered, the link used up."""
    response.status, response.completed_at, response.ended_at = SurveyStatus.complete, now, now
    response.current_item, response.asked_at, response.updated_at = None, None, now
    session.add(response)
    scores = compute_scores(session, response, settings=settings, now=now)
    mark_answered(session, response, now=now)
    if link is not None:
        link.used_at = now
        session.add(link)
    audit.record(session, actor=ACTOR, action="survey.completed", entity_type="survey_response",
                 entity_id=response.id, via=via, scores=len(scores))
    session.flush()
    return scores


def mark_answered(session: Session, response: SurveyResponse, *, now: datetime) -> None:
    """The invitation (on every channel the plan sent it on) is now `answered`."""
    rows = session.exec(
        select(Touchpoint).where(
            Touchpoint.procedure_id == response.procedure_id,
            Touchpoint.key == response.touchpoint_key,
            col(Touchpoint.status).in_(ANSWERABLE),
        )
    )
    for tp in rows:
        tp.status, tp.updated_at = TouchpointStatus.answered, now
        session.add(tp)


def end(session: Session, response: SurveyResponse, *, now: datetime, settings: Settings, reason: str) -> None:
    """Stop accepting answers: missed when nothing was answered, else closed with what it has (scored)."""
    from aftercare.surveys.misses import after_miss, classify

    if response.status != SurveyStatus.open:
        return
    assert response.id is not None
    answered = bool(items.current_answers(session, response.id))
    response.status = SurveyStatus.closed if answered else SurveyStatus.missed
    response.ended_at, response.end_reason = now, reason[:200]
    response.current_item, response.asked_at, response.updated_at = None, None, now
    if not answered:
        response.miss_reason, response.miss_detail = classify(session, response)
    session.add(response)
    session.flush()
    if answered:
        compute_scores(session, response, settings=settings, now=now)
    else:
        after_miss(session, response, now=now)
    audit.record(session, actor=ACTOR, action=f"survey.{response.status.value}", entity_type="survey_response",
                 entity_id=response.id, reason=reason, miss=response.miss_reason)


def answers_view(session: Session, response_id: int) -> list[dict[str, Any]]:
    """The counting answers, oldest first, as plain dicts (for pages)."""
    rows = session.exec(
        select(SurveyAnswer)
        .where(SurveyAnswer.response_id == response_id, col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.id))
    )
    latest: dict[str, SurveyAnswer] = {}
    for row in rows:
        latest[row.item_id] = row
    return [{"item_id": r.item_id, "instrument_id": r.instrument_id, "instrument_version": r.instrument_version,
             "value": r.value, "raw": r.raw_text, "source": r.source, "outcome": r.outcome.value,
             "at": r.created_at} for r in latest.values()]
