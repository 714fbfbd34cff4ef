"""Patient search for the list page and the API: name, phone, email or MRN, with each patient's next touchpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import and_, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from aftercare.models import OPEN_TOUCHPOINT_STATUSES, Patient, Procedure, Touchpoint
from aftercare.timeutil import utcnow

MAX_ROWS = 100


@dataclass
class PatientRow:
    patient: Patient
    procedure_count: int
    next_touchpoint: Touchpoint | None


def _term_filter(term: str) -> ColumnElement[bool]:
    like = f"%{term}%"
    matches = [
        col(Patient.first_name).ilike(like),
        col(Patient.last_name).ilike(like),
        col(Patient.email).ilike(like),
        col(Patient.mrn).ilike(like),
    ]
    digits = re.sub(r"\D", "", term)
    if len(digits) >= 3:
        matches.append(col(Patient.phone_e164).like(f"%{digits}%"))
    return or_(*matches)


def search(session: Session, clinic_id: int, q: str | None, limit: int = MAX_ROWS) -> list[PatientRow]:
    """Patients of the clinic matching every word of `q` (all of them when empty), by last name."""
    query = select(Patient).where(Patient.clinic_id == clinic_id)
    q = (q or "").strip()
    if re.sub(r"[\d\s()+.-]", "", q) == "" and q:
        query = query.where(_term_filter(q))  # a phone number, possibly with spaces
    else:
        for term in q.split():
            query = query.where(_term_filter(term))
    patients = list(
        session.exec(query.order_by(col(Patient.last_name), col(Patient.first_name), col(Patient.id)).limit(limit))
    )
    ids = [p.id for p in patients if p.id is not None]
    counts = _procedure_counts(session, ids)
    upcoming = _next_touchpoints(session, ids)
    return [PatientRow(p, counts.get(p.id or 0, 0), upcoming.get(p.id or 0)) for p in patients]


def _procedure_counts(session: Session, patient_ids: list[int]) -> dict[int, int]:
    if not patient_ids:
        return {}
    rows = session.exec(
        select(Procedure.patient_id, func.count())
        .where(col(Procedure.patient_id).in_(patient_ids))
        .group_by(col(Procedure.patient_id))
    )
    return {patient_id: int(count) for patient_id, count in rows}


def _next_touchpoints(session: Session, patient_ids: list[int]) -> dict[int, Touchpoint]:
    """Each patient's earliest touchpoint still to go out (scheduled or held, its window not yet closed)."""
    if not patient_ids:
        return {}
    is_open = and_(col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES), col(Touchpoint.window_end) >= utcnow())
    firsts = list(
        session.exec(
            select(Touchpoint.patient_id, func.min(Touchpoint.due_at))
            .where(col(Touchpoint.patient_id).in_(patient_ids), is_open)
            .group_by(col(Touchpoint.patient_id))
        )
    )
    if not firsts:
        return {}
    pairs = [and_(col(Touchpoint.patient_id) == pid, col(Touchpoint.due_at) == due) for pid, due in firsts]
    found: dict[int, Touchpoint] = {}
    rows = session.exec(select(Touchpoint).where(is_open, or_(*pairs)).order_by(col(Touchpoint.id)))
    for tp in rows:
        found.setdefault(tp.patient_id, tp)
    return found
