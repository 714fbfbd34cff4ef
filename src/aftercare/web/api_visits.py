"""REST API for visits: list, free times, book, move, cancel, mark attended/no-show, urgent visit.

Thin over `aftercare.bookings.service`; every staff role may use it (physicians book urgent visits).
Times without an offset are read in the clinic's zone. A time someone else booked first is a 409.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from aftercare.bookings import agenda, service
from aftercare.bookings import scope as scopes
from aftercare.errors import ConflictError, NotFoundError
from aftercare.models import AppointmentStatus, Patient, VisitMode
from aftercare.timing import local_wall_time
from aftercare.web.deps import CurrentStaff, IdPath, SessionDep, SettingsDep, actor, clinic_of

router = APIRouter(prefix="/api/v1", tags=["visits"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VisitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: int
    procedure_id: int | None
    physician_id: int
    visit: str = Field(description="the protocol's visit id (visit_6w), or urgent / other")
    mode: VisitMode
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    source: str
    reason: str | None
    replaces_id: int | None = Field(description="the visit this one was moved from")
    cancel_reason: str | None


class SlotOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    physician_id: int


class BookIn(_In):
    patient_id: int = Field(ge=1)
    procedure_id: int | None = Field(None, ge=1, description="required for a protocol visit (visit_6w ...)")
    visit: str = Field(min_length=1, max_length=48, description="a protocol visit id, or urgent / other")
    mode: VisitMode
    physician_id: int = Field(ge=1)
    starts_at: datetime = Field(description="ISO 8601; without an offset it is read in the clinic's zone")
    reason: str | None = Field(None, max_length=250)


class MoveVisitIn(_In):
    starts_at: datetime = Field(description="ISO 8601; without an offset it is read in the clinic's zone")
    physician_id: int | None = Field(None, ge=1, description="another physician (default: the same)")


class CancelVisitIn(_In):
    reason: str = Field(min_length=1, max_length=250)


class MarkIn(_In):
    status: Literal["attended", "no_show"]


class UrgentIn(_In):
    physician_id: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=500)


def _aware(value: datetime, zone: str) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone))


def _out(appointment: object) -> VisitOut:
    return VisitOut.model_validate(appointment)


@router.get("/visits")
def list_visits(
    session: SessionDep, staff: CurrentStaff,
    start: Annotated[date | None, Query(description="first clinic calendar day (default today)")] = None,
    days: Annotated[int, Query(ge=1, le=62)] = 7,
    physician_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    include_cancelled: bool = False,
) -> list[VisitOut]:
    """Visits of your clinic from `start` for `days` days, earliest first."""
    clinic = clinic_of(session, staff)
    first = start or datetime.now(ZoneInfo(clinic.timezone)).date()
    days_ = agenda.agenda(session, clinic, start=first, days=days, physician_id=physician_id,
                          with_cancelled=include_cancelled)
    return [_out(row.appointment) for day in days_ for row in day.rows]


@router.get("/patients/{patient_id}/free-times")
def free_times(
    patient_id: IdPath, session: SessionDep, staff: CurrentStaff, settings: SettingsDep,
    mode: VisitMode = VisitMode.in_person, start: Annotated[date | None, Query()] = None,
    days: Annotated[int, Query(ge=1, le=31)] = 7, physician_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[SlotOut]:
    """Open times for this patient's clinic, in the calendar's hours (clinic days from `start`)."""
    clinic = clinic_of(session, staff)
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic.id:
        raise NotFoundError(f"no patient {patient_id}")
    scope = scopes.load(session, settings, patient=patient)
    first = start or datetime.now(scope.zone).date()
    begin = local_wall_time(first, time(0), scope.zone)
    slots = service.free_slots(session, scope, mode=mode, start=begin, end=begin + timedelta(days=days),
                               physician_id=physician_id, limit=500)
    return [SlotOut(starts_at=s.starts_at, ends_at=s.ends_at, physician_id=s.physician_id) for s in slots]


@router.post("/visits", status_code=201)
def book_visit(body: BookIn, session: SessionDep, staff: CurrentStaff, settings: SettingsDep) -> VisitOut:
    """Book a visit for a patient (409 when the time was taken, or the patient has this visit already)."""
    clinic = clinic_of(session, staff)
    try:
        appointment = service.book(
            session, settings, patient_id=body.patient_id, physician_id=body.physician_id,
            starts_at=_aware(body.starts_at, clinic.timezone), mode=body.mode, visit=body.visit,
            procedure_id=body.procedure_id, actor=actor(staff), reason=body.reason, clinic_id=clinic.id,
        )
    except service.SlotTaken as exc:
        session.rollback()
        raise ConflictError(f"starts_at: {exc}; choose another time") from None
    session.commit()
    return _out(appointment)


@router.post("/visits/{appointment_id}/move")
def move_visit(appointment_id: IdPath, body: MoveVisitIn, session: SessionDep, staff: CurrentStaff,
               settings: SettingsDep) -> VisitOut:
    """Move a booked visit; the answer is the new visit (the old one is kept as `moved`)."""
    clinic = clinic_of(session, staff)
    appointment = service.get(session, clinic.id or 0, appointment_id)
    try:
        moved = service.move(session, settings, appointment=appointment,
                             starts_at=_aware(body.starts_at, clinic.timezone), physician_id=body.physician_id,
                             actor=actor(staff))
    except service.SlotTaken as exc:
        session.rollback()
        raise ConflictError(f"starts_at: {exc}; choose another time") from None
    session.commit()
    return _out(moved)


@router.post("/visits/{appointment_id}/cancel")
def cancel_visit(appointment_id: IdPath, body: CancelVisitIn, session: SessionDep, staff: CurrentStaff,
                 settings: SettingsDep) -> VisitOut:
    appointment = service.get(session, staff.clinic_id, appointment_id)
    service.cancel(session, settings, appointment=appointment, actor=actor(staff), reason=body.reason)
    session.commit()
    return _out(appointment)


@router.post("/visits/{appointment_id}/mark")
def mark_visit(appointment_id: IdPath, body: MarkIn, session: SessionDep, staff: CurrentStaff) -> VisitOut:
    """Attended or no-show, once the visit has started."""
    appointment = service.get(session, staff.clinic_id, appointment_id)
    service.mark(session, appointment=appointment, status=AppointmentStatus(body.status), actor=actor(staff))
    session.commit()
    return _out(appointment)


@router.post("/patients/{patient_id}/urgent-visit", status_code=201)
def urgent_visit(patient_id: IdPath, body: UrgentIn, session: SessionDep, staff: CurrentStaff) -> VisitOut:
    """The physician's first free time, booked now (what the review queue's "book urgent visit" does)."""
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != staff.clinic_id:
        raise NotFoundError(f"no patient {patient_id}")
    appointment = service.book_urgent_visit(session, patient_id=patient_id, physician_id=body.physician_id,
                                            actor=actor(staff), reason=body.reason)
    session.commit()
    return _out(appointment)
