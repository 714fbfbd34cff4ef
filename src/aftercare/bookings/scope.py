"""What a booking action needs at hand: the clinic, its calendar, the patient, the procedure and physicians."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare.bookings import calendar as calendars
from aftercare.bookings.calendar import ClinicCalendar, PhysicianCalendar
from aftercare.bookings.slots import resolve_physicians
from aftercare.errors import ConflictError, NotFoundError
from aftercare.models import Clinic, Patient, Procedure, ProcedureStatus
from aftercare.settings import Settings


@dataclass
class Scope:
    clinic: Clinic
    patient: Patient
    procedure: Procedure | None
    calendar: ClinicCalendar | None
    physicians: dict[int, PhysicianCalendar]  # staff id -> calendar entry (every physician of the calendar)
    settings: Settings
    calendar_problem: str | None = None  # the calendar file is broken: why (bookings wait for a fix)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.clinic.timezone)

    @property
    def clinic_id(self) -> int:
        assert self.clinic.id is not None
        return self.clinic.id

    @property
    def patient_id(self) -> int:
        assert self.patient.id is not None
        return self.patient.id

    def need_calendar(self) -> ClinicCalendar:
        if self.calendar_problem is not None:
            raise ConflictError(f"the clinic calendar cannot be used: {self.calendar_problem}")
        if self.calendar is None:
            raise ConflictError(
                f"clinic {self.clinic.slug!r} has no calendar: add it under `clinics:` in "
                f"{calendars.calendar_path(self.settings)}"
            )
        return self.calendar

    def for_visit(self, physician_id: int | None) -> dict[int, PhysicianCalendar]:
        """The physicians a visit may be with: the procedure's physician when the calendar has them."""
        wanted = physician_id or (self.procedure.physician_id if self.procedure else None)
        if wanted is not None and wanted in self.physicians:
            return {wanted: self.physicians[wanted]}
        return dict(self.physicians)


def load(
    session: Session, settings: Settings, *, patient: Patient, procedure: Procedure | None = None
) -> Scope:
    clinic = session.get(Clinic, patient.clinic_id)
    if clinic is None:
        raise NotFoundError(f"no clinic {patient.clinic_id}")
    try:
        calendar, problem = calendars.for_clinic(settings, clinic.slug), None
    except calendars.CalendarError as exc:
        calendar, problem = None, str(exc)
    physicians = resolve_physicians(session, clinic.id or 0, calendar) if calendar else {}
    return Scope(clinic, patient, procedure, calendar, physicians, settings, problem)


def latest_procedure(session: Session, patient_id: int) -> Procedure | None:
    """The patient's most recent active procedure (booking messages hang off a plan)."""
    return session.exec(
        select(Procedure)
        .where(Procedure.patient_id == patient_id, Procedure.status == ProcedureStatus.active)
        .order_by(col(Procedure.performed_at).desc(), col(Procedure.id).desc())
    ).first()
