"""What triage sees for one source: the message or answer, the day since the procedure, baseline and previous answers.

A survey answer is triaged with every answer its response has so far (a rule over two answers, like a red and
warm knee, needs both) and the response's KOOS JR score when there is one. A free-text message is triaged on its
own, with the patient's latest check-in as `previous`. The day is counted from the procedure the source belongs
to (for a message: the patient's latest procedure performed by then, else the next one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from aftercare.models import (
    Clinic,
    InboundMessage,
    Patient,
    Procedure,
    ProcedureStatus,
    SurveyAnswer,
    SurveyResponse,
    SurveyScore,
    SurveyStatus,
    TouchpointKind,
    TriageRequest,
)
from aftercare.triage import ANSWER_FIELDS, TriageInput
from aftercare.triage.fields import check_value

FREE_TEXT_ITEM = "free_text"  # the check-in's "anything else?" item: its answer is read as free text


class SourceGone(LookupError):
    """The answer or message a request names no longer exists (or belongs to no patient)."""


@dataclass
class Source:
    """One thing to triage, with the rows it came from."""

    request: TriageRequest
    patient: Patient
    clinic: Clinic
    procedure: Procedure | None
    at: datetime  # when the patient sent it
    text: str | None
    inbound: InboundMessage | None
    answer: SurveyAnswer | None
    response: SurveyResponse | None
    input: TriageInput


def load(session: Session, request: TriageRequest) -> Source:
    """The source of a request with its triage input. Raises SourceGone."""
    if request.source_kind == "answer":
        return _answer_source(session, request)
    return _message_source(session, request)


def _answer_source(session: Session, request: TriageRequest) -> Source:
    answer = session.get(SurveyAnswer, request.source_id)
    response = session.get(SurveyResponse, answer.response_id) if answer else None
    if answer is None or response is None:
        raise SourceGone(f"survey answer {request.source_id} not found")
    patient, clinic = _patient(session, response.patient_id)
    procedure = session.get(Procedure, response.procedure_id)
    inbound = session.get(InboundMessage, answer.inbound_id) if answer.inbound_id else None
    answers = current_answers(session, response)
    free_text = answer.item_id == FREE_TEXT_ITEM
    text = answer.raw_text.strip() or None
    inp = TriageInput(
        day=days_since(procedure, answer.created_at),
        text=text,
        text_kind="free_text" if free_text else ("answer" if text else None),
        answers=answers,
        baseline=baseline(session, procedure),
        **checkin_history(session, procedure, before=response),
        survey=response.survey_id[:64],
    )
    return Source(request, patient, clinic, procedure, answer.created_at, text, inbound, answer, response, inp)


def _message_source(session: Session, request: TriageRequest) -> Source:
    inbound = session.get(InboundMessage, request.source_id)
    if inbound is None:
        raise SourceGone(f"inbound message {request.source_id} not found")
    patient_id = inbound.patient_id or request.patient_id
    if patient_id is None:
        raise SourceGone(f"inbound message {request.source_id} is from a number that matches no patient")
    patient, clinic = _patient(session, patient_id)
    procedure = procedure_at(session, patient_id, inbound.received_at)
    text = inbound.body.strip() or None
    kind = request.text_kind if request.text_kind in ("free_text", "keyword", "answer") else None
    inp = TriageInput(
        day=days_since(procedure, inbound.received_at),
        text=text[:5000] if text else None,
        text_kind=kind,
        baseline=baseline(session, procedure),
        **checkin_history(session, procedure, before=None),
    )
    return Source(request, patient, clinic, procedure, inbound.received_at, text, inbound, None, None, inp)


def _patient(session: Session, patient_id: int) -> tuple[Patient, Clinic]:
    query = select(Patient, Clinic).where(Patient.id == patient_id, Patient.clinic_id == Clinic.id)
    found = session.exec(query).first()
    if found is None:
        raise SourceGone(f"patient {patient_id} not found")
    return found[0], found[1]


def days_since(procedure: Procedure | None, at: datetime) -> float:
    """Days from the procedure to `at` (negative before it). No procedure: 0, so early-course rules still apply."""
    if procedure is None:
        return 0.0
    return round((at - procedure.performed_at).total_seconds() / 86400, 3)


def procedure_at(session: Session, patient_id: int, at: datetime) -> Procedure | None:
    """The procedure a message at `at` is about: the latest performed by then, else the next one; active first."""
    rows = list(session.exec(
        select(Procedure).where(Procedure.patient_id == patient_id).order_by(col(Procedure.performed_at))
    ))
    live = [p for p in rows if p.status != ProcedureStatus.cancelled] or rows
    done = [p for p in live if p.performed_at <= at]
    if done:
        return done[-1]
    return live[0] if live else None


def valid_answers(values: Mapping[str, Any]) -> dict[str, Any]:
    """The answers triage understands, each checked against its field (a value it cannot read is left out)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = ANSWER_FIELDS.get(key)
        if spec is None or value is None:
            continue
        try:
            check_value(spec, value)
        except ValueError:
            continue
        out[key] = value
    return out


def current_answers(session: Session, response: SurveyResponse) -> dict[str, Any]:
    """Field -> value from the latest counting answer per item, plus the response's KOOS JR score."""
    assert response.id is not None
    rows = session.exec(
        select(SurveyAnswer.item_id, SurveyAnswer.value)
        .where(SurveyAnswer.response_id == response.id, col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.id))
    )
    values: dict[str, Any] = {str(item): value for item, value in rows}
    koos = session.exec(
        select(SurveyScore.value).where(SurveyScore.response_id == response.id, SurveyScore.instrument_id == "koos_jr",
                                        col(SurveyScore.complete).is_(True))
    ).first()
    if koos is not None:
        values["koos_jr"] = koos
    return valid_answers(values)


def baseline(session: Session, procedure: Procedure | None) -> dict[str, Any]:
    if procedure is None:
        return {}
    values: dict[str, Any] = {"nrs_pain": procedure.baseline_nrs}
    if procedure.baseline_koos_jr is not None:
        values["koos_jr"] = procedure.baseline_koos_jr
    return valid_answers(values)


def checkin_history(session: Session, procedure: Procedure | None, *, before: SurveyResponse | None) -> dict[str, Any]:
    """`previous` (the answers of the latest earlier check-in that has any) and `missed_checkins`, in one query."""
    if procedure is None:
        return {"previous": {}, "missed_checkins": 0}
    checkins = list(session.exec(
        select(SurveyResponse)
        .where(SurveyResponse.procedure_id == procedure.id, SurveyResponse.kind == TouchpointKind.checkin)
        .order_by(col(SurveyResponse.id).desc())
    ))
    missed = sum(1 for r in checkins if r.status == SurveyStatus.missed)
    previous: dict[str, Any] = {}
    earlier = [r for r in checkins if before is None or (r.id or 0) < (before.id or 0)]
    for response in earlier[:5]:
        if response.started_at is None and response.status == SurveyStatus.missed:
            continue
        previous = current_answers(session, response)
        if previous:
            break
    return {"previous": previous, "missed_checkins": missed}
