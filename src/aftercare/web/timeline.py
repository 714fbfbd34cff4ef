"""The patient timeline view-model shared by the API and the pages: each touchpoint in words and local times."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare.errors import NotFoundError
from aftercare.models import (
    Channel,
    Clinic,
    Patient,
    Procedure,
    StaffUser,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.patients import consent_state

_FIXED_LABELS = {
    "pre_nsaid_hold": "Before: pause anti-inflammatories",
    "baseline_survey": "Baseline survey",
    "pre_logistics": "Before: the day ahead",
    "discharge": "Discharge guidance",
    "nsaid_hold_end": "Anti-inflammatory pause ends",
}
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^checkin_d(\d+)$"), "Day {0} check-in"),
    (re.compile(r"^rest_d(\d+)$"), "Rest guidance, day {0}"),
    (re.compile(r"^rehab_p(\d+)$"), "Rehab phase P{0}"),
    (re.compile(r"^survey_wk(\d+)$"), "{0}-week outcome survey"),
    (re.compile(r"^survey_mo(\d+)$"), "{0}-month outcome survey"),
    (re.compile(r"^visit_(\d+)w_offer$"), "Offer: {0}-week follow-up visit"),
    (re.compile(r"^visit_(\d+)mo_offer$"), "Offer: {0}-month follow-up visit"),
]


_REMINDER = re.compile(r"^(.+)_reminder(\d+)$")


def label(key: str) -> str:
    """A coordinator-readable name for a protocol touchpoint id (`checkin_d1` -> `Day 1 check-in`)."""
    if key in _FIXED_LABELS:
        return _FIXED_LABELS[key]
    if reminder := _REMINDER.match(key):  # a survey reminder: checkin_d3_reminder1
        return f"Reminder {reminder[2]}: {label(reminder[1])}"
    for pattern, text in _PATTERNS:
        if match := pattern.match(key):
            return text.format(*match.groups())
    return key.replace("_", " ").capitalize()


def held_for_quiet_hours(tp: Touchpoint) -> bool:
    return tp.status == TouchpointStatus.held or tp.due_at != tp.planned_at


def status_words(tp: Touchpoint) -> str:
    """The touchpoint's state as a coordinator reads it, with the reason when it will not go out."""
    status, reason = tp.status, tp.cancel_reason
    if status in (TouchpointStatus.scheduled, TouchpointStatus.held):
        return "held for quiet hours" if held_for_quiet_hours(tp) else "scheduled"
    if status == TouchpointStatus.merged:
        return "merged into another plan's message"
    if status in (TouchpointStatus.skipped, TouchpointStatus.cancelled, TouchpointStatus.failed):
        return f"{status.value} — {reason}" if reason else status.value
    return status.value


@dataclass
class TimelineEntry:
    """One touchpoint as shown on the timeline."""

    id: int
    procedure_id: int
    key: str
    label: str
    kind: TouchpointKind
    channel: Channel
    status: TouchpointStatus
    status_text: str
    planned_at: datetime
    due_at: datetime
    due_local: datetime  # in the patient's zone
    due_clinic: datetime  # in the clinic's zone
    held_for_quiet_hours: bool
    reason: str | None
    merged_into_id: int | None
    sent_at: datetime | None
    delivered_at: datetime | None


def entry(tp: Touchpoint, patient_zone: ZoneInfo, clinic_zone: ZoneInfo) -> TimelineEntry:
    assert tp.id is not None
    return TimelineEntry(
        id=tp.id,
        procedure_id=tp.procedure_id,
        key=tp.key,
        label=label(tp.key),
        kind=tp.kind,
        channel=tp.channel,
        status=tp.status,
        status_text=status_words(tp),
        planned_at=tp.planned_at,
        due_at=tp.due_at,
        due_local=tp.due_at.astimezone(patient_zone),
        due_clinic=tp.due_at.astimezone(clinic_zone),
        held_for_quiet_hours=held_for_quiet_hours(tp),
        reason=tp.cancel_reason,
        merged_into_id=tp.merged_into_id,
        sent_at=tp.sent_at,
        delivered_at=tp.delivered_at,
    )


def entries(session: Session, patient: Patient, clinic: Clinic) -> list[TimelineEntry]:
    """Every touchpoint of the patient, all plans, in due order."""
    rows = session.exec(
        select(Touchpoint)
        .where(Touchpoint.patient_id == patient.id)
        .order_by(col(Touchpoint.due_at), col(Touchpoint.key), col(Touchpoint.channel))
    )
    patient_zone, clinic_zone = ZoneInfo(patient.timezone), ZoneInfo(clinic.timezone)
    return [entry(tp, patient_zone, clinic_zone) for tp in rows]


@dataclass
class ProcedureView:
    procedure: Procedure
    physician: StaffUser | None
    entries: list[TimelineEntry] = field(default_factory=list)
    surveys: list[Any] = field(default_factory=list)  # aftercare.surveys.views.SurveyView: answers and scores

    def past(self, now: datetime) -> list[TimelineEntry]:
        return [e for e in self.entries if e.due_at < now]

    def upcoming(self, now: datetime) -> list[TimelineEntry]:
        return [e for e in self.entries if e.due_at >= now]


@dataclass
class PatientView:
    patient: Patient
    clinic: Clinic
    consent: dict[Channel, bool]
    procedures: list[ProcedureView]


def get_patient(session: Session, clinic: Clinic, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic.id:
        raise NotFoundError(f"no patient {patient_id}")
    return patient


def patient_procedures(session: Session, patient: Patient) -> list[Procedure]:
    return list(
        session.exec(
            select(Procedure)
            .where(Procedure.patient_id == patient.id)
            .order_by(col(Procedure.performed_at).desc(), col(Procedure.id).desc())
        )
    )


def patient_view(session: Session, clinic: Clinic, patient_id: int) -> PatientView:
    """The patient, their consent per channel, and each procedure with its own touchpoints."""
    patient = get_patient(session, clinic, patient_id)
    assert patient.id is not None
    procedures = patient_procedures(session, patient)
    physician_ids = {p.physician_id for p in procedures if p.physician_id is not None}
    physicians = {s.id: s for s in session.exec(select(StaffUser).where(col(StaffUser.id).in_(physician_ids)))}
    views = {p.id: ProcedureView(p, physicians.get(p.physician_id)) for p in procedures}
    for item in entries(session, patient, clinic):
        views[item.procedure_id].entries.append(item)
    from aftercare.settings import get_settings
    from aftercare.surveys.views import survey_views

    for procedure_id, surveys in survey_views(session, get_settings(), [p for p in views if p is not None]).items():
        views[procedure_id].surveys = surveys
    return PatientView(patient, clinic, consent_state(session, patient.id), list(views.values()))
