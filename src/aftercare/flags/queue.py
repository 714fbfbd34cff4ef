"""The review queue and the flag page as view-models, shared by the staff pages and the API.

Queue order: tier (emergency, urgent, review, routine), then age (oldest first), each row with its SLA timer
("due in 40 min", "overdue by 2 h"). The flag page: the messages and answers behind the flag, the rules and
reasons, the patient's recent answers and texts, the pages sent, notes, history, and the pain / KOOS JR
trajectory since the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import case
from sqlmodel import Session, col, select

from aftercare.flags import sla
from aftercare.models import (
    AuditEvent,
    Clinic,
    Flag,
    FlagNote,
    FlagPage,
    FlagStatus,
    FlagTier,
    InboundMessage,
    Patient,
    Procedure,
    Role,
    StaffUser,
    SurveyAnswer,
    SurveyResponse,
    SurveyScore,
    TriageRequest,
)
from aftercare.triage import ANSWER_FIELDS

StatusFilter = Literal["active", "open", "acknowledged", "resolved", "all"]
STATUS_FILTERS: dict[str, tuple[FlagStatus, ...]] = {
    "active": (FlagStatus.open, FlagStatus.acknowledged),
    "open": (FlagStatus.open,),
    "acknowledged": (FlagStatus.acknowledged,),
    "resolved": (FlagStatus.resolved,),
    "all": tuple(FlagStatus),
}
TIER_ORDER = case(
    {FlagTier.emergency.value: 0, FlagTier.urgent.value: 1, FlagTier.review.value: 2, FlagTier.routine.value: 3},
    value=col(Flag.tier), else_=4,
)
PAIN_ITEMS = ("nrs_now", "nrs_pain")
RECENT_ANSWERS = 25
RECENT_TEXTS = 10


@dataclass
class QueueRow:
    flag: Flag
    patient: Patient
    summary: str
    age: str
    sla_text: str
    overdue: bool


def list_flags(
    session: Session, clinic_id: int, *, status: StatusFilter = "active", tier: FlagTier | None = None,
    limit: int = 200, offset: int = 0,
) -> list[tuple[Flag, Patient]]:
    """The clinic's flags in queue order."""
    query = (
        select(Flag, Patient)
        .where(Flag.patient_id == Patient.id, Flag.clinic_id == clinic_id,
               col(Flag.status).in_(STATUS_FILTERS[status]))
        .order_by(TIER_ORDER, col(Flag.created_at), col(Flag.id))
        .offset(offset)
        .limit(limit)
    )
    if tier is not None:
        query = query.where(Flag.tier == tier)
    return list(session.exec(query).all())


def timer(flag: Flag, now: datetime) -> tuple[str, bool]:
    """The SLA timer in words and whether it has run out (an acknowledged page has stopped its timer)."""
    if flag.status == FlagStatus.resolved:
        return "resolved", False
    if flag.status == FlagStatus.acknowledged and flag.tier in (FlagTier.urgent, FlagTier.emergency):
        return "acknowledged", False
    return sla.describe(flag.sla_due_at, now)


def rows(pairs: list[tuple[Flag, Patient]], now: datetime) -> list[QueueRow]:
    out = []
    for flag, patient in pairs:
        text, overdue = timer(flag, now)
        summary = flag.reasons[0] if flag.reasons else ", ".join(flag.rules)
        out.append(QueueRow(flag, patient, summary, sla.age(flag.created_at, now), text, overdue))
    return out


@dataclass
class SourceItem:
    """One message or answer behind the flag."""

    kind: str  # message, answer
    at: datetime
    text: str
    item: str | None
    severity: str | None
    rules: list[str]


@dataclass
class AnswerItem:
    at: datetime
    survey: str
    item: str
    label: str
    value: Any
    raw: str


@dataclass
class Series:
    """Points (day since the procedure, value) of one measure, with its baseline."""

    name: str
    points: list[tuple[float, float]]
    baseline: float | None


@dataclass
class FlagDetail:
    flag: Flag
    patient: Patient
    clinic: Clinic
    procedure: Procedure | None
    sources: list[SourceItem]
    answers: list[AnswerItem]
    texts: list[InboundMessage]
    pages: list[tuple[FlagPage, StaffUser | None]]
    notes: list[tuple[FlagNote, StaffUser | None]]
    history: list[AuditEvent]
    pain: Series
    koos: Series
    physicians: list[StaffUser]
    staff_names: dict[int, str] = field(default_factory=dict)
    sla_text: str = ""
    overdue: bool = False


def _label(item_id: str) -> str:
    spec = ANSWER_FIELDS.get(item_id)
    return spec.doc if spec is not None else item_id.replace("_", " ")


def _days(procedure: Procedure | None, at: datetime) -> float:
    return 0.0 if procedure is None else (at - procedure.performed_at).total_seconds() / 86400


def _sources(session: Session, flag: Flag) -> list[SourceItem]:
    requests = list(session.exec(
        select(TriageRequest).where(TriageRequest.flag_id == flag.id).order_by(col(TriageRequest.id))))
    if not requests and (flag.inbound_id or flag.answer_id):  # the flag's own source, when no request names it
        kind, source_id = ("answer", flag.answer_id) if flag.answer_id else ("message", flag.inbound_id)
        requests = [TriageRequest(source_kind=kind, source_id=source_id or 0, severity=flag.tier.value,
                                  rules=list(flag.rules))]
    out: list[SourceItem] = []
    for request in requests:
        if request.source_kind == "message":
            inbound = session.get(InboundMessage, request.source_id)
            if inbound is not None:
                out.append(SourceItem("message", inbound.received_at, inbound.body, None, request.severity,
                                      request.rules))
        else:
            answer = session.get(SurveyAnswer, request.source_id)
            if answer is not None:
                out.append(SourceItem("answer", answer.created_at, answer.raw_text, _label(answer.item_id),
                                      request.severity, request.rules))
    return out


def _answers(session: Session, patient_id: int) -> list[AnswerItem]:
    found = session.exec(
        select(SurveyAnswer, SurveyResponse)
        .where(SurveyAnswer.response_id == SurveyResponse.id, SurveyResponse.patient_id == patient_id,
               col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.created_at).desc(), col(SurveyAnswer.id).desc())
        .limit(RECENT_ANSWERS)
    ).all()
    return [AnswerItem(a.created_at, r.survey_id, a.item_id, _label(a.item_id), a.value, a.raw_text) for a, r in found]


def trajectories(session: Session, patient_id: int, procedure: Procedure | None) -> tuple[Series, Series]:
    """Pain (NRS answers) and KOOS JR (complete scores) by day since the procedure, with the baselines."""
    pain_rows = session.exec(
        select(SurveyAnswer.created_at, SurveyAnswer.value)
        .where(SurveyAnswer.response_id == SurveyResponse.id, SurveyResponse.patient_id == patient_id,
               col(SurveyAnswer.item_id).in_(PAIN_ITEMS), col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.created_at))
    ).all()
    koos_rows = session.exec(
        select(SurveyScore.computed_at, SurveyScore.value, SurveyResponse.completed_at)
        .where(SurveyScore.response_id == SurveyResponse.id, SurveyResponse.patient_id == patient_id,
               SurveyScore.instrument_id == "koos_jr", col(SurveyScore.complete).is_(True))
        .order_by(col(SurveyScore.computed_at))
    ).all()
    pain = [(_days(procedure, at), float(v)) for at, v in pain_rows if _number(v)]
    koos = [(_days(procedure, done or at), float(v)) for at, v, done in koos_rows if _number(v)]
    return (
        Series("Pain (NRS 0-10)", pain, float(procedure.baseline_nrs) if procedure else None),
        Series("KOOS JR (0-100)", koos, procedure.baseline_koos_jr if procedure else None),
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def detail(session: Session, flag: Flag, now: datetime) -> FlagDetail:
    patient = session.get(Patient, flag.patient_id)
    clinic = session.get(Clinic, flag.clinic_id)
    assert patient is not None and clinic is not None
    procedure = session.get(Procedure, flag.procedure_id) if flag.procedure_id else None
    texts = list(session.exec(
        select(InboundMessage).where(InboundMessage.patient_id == patient.id)
        .order_by(col(InboundMessage.received_at).desc()).limit(RECENT_TEXTS)))
    pages = list(session.exec(select(FlagPage).where(FlagPage.flag_id == flag.id).order_by(col(FlagPage.id))))
    notes = list(session.exec(select(FlagNote).where(FlagNote.flag_id == flag.id).order_by(col(FlagNote.id))))
    history = list(session.exec(
        select(AuditEvent).where(AuditEvent.entity_type == "flag", AuditEvent.entity_id == flag.id)
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(100)))
    staff_ids = {p.staff_id for p in pages} | {n.staff_id for n in notes} | {flag.acknowledged_by, flag.resolved_by}
    staff_ids |= {int(e.actor.split(":", 1)[1]) for e in history if e.actor.startswith("staff:")
                  and e.actor.split(":", 1)[1].isdigit()}
    people = {s.id: s for s in session.exec(select(StaffUser).where(col(StaffUser.id).in_(
        [i for i in staff_ids if i is not None])))}
    physicians = list(session.exec(select(StaffUser).where(
        StaffUser.clinic_id == clinic.id, StaffUser.role == Role.physician, col(StaffUser.active).is_(True))
        .order_by(col(StaffUser.name))))
    pain, koos = trajectories(session, patient.id or 0, procedure)
    sla_text, overdue = timer(flag, now)
    return FlagDetail(
        flag=flag, patient=patient, clinic=clinic, procedure=procedure, sources=_sources(session, flag),
        answers=_answers(session, patient.id or 0), texts=texts,
        pages=[(p, people.get(p.staff_id) if p.staff_id else None) for p in pages],
        notes=[(n, people.get(n.staff_id)) for n in notes], history=history, pain=pain, koos=koos,
        physicians=physicians, staff_names={i: s.name for i, s in people.items() if i is not None},
        sla_text=sla_text, overdue=overdue,
    )
