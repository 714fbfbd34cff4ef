"""The staff's view of visits: a day or week per physician as a list grouped by day, and one patient's visits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare.bookings.texts import visit_label
from aftercare.models import Appointment, AppointmentStatus, Clinic, Patient, StaffUser
from aftercare.timing import local_wall_time

SHOWN = (AppointmentStatus.booked, AppointmentStatus.attended, AppointmentStatus.no_show)


@dataclass
class AgendaRow:
    appointment: Appointment
    patient: Patient
    physician: StaffUser | None
    label: str

    @property
    def due(self) -> bool:
        """Started: it can be marked attended or no-show."""
        return self.appointment.starts_at <= datetime.now(self.appointment.starts_at.tzinfo)


@dataclass
class AgendaDay:
    day: date
    rows: list[AgendaRow] = field(default_factory=list)


def _rows(session: Session, appointments: list[Appointment]) -> list[AgendaRow]:
    patients = {p.id: p for p in session.exec(
        select(Patient).where(col(Patient.id).in_({a.patient_id for a in appointments})))}
    staff = {s.id: s for s in session.exec(
        select(StaffUser).where(col(StaffUser.id).in_({a.physician_id for a in appointments})))}
    return [AgendaRow(a, patients[a.patient_id], staff.get(a.physician_id), visit_label(a.visit)) for a in appointments]


def agenda(
    session: Session, clinic: Clinic, *, start: date, days: int, physician_id: int | None = None,
    with_cancelled: bool = False,
) -> list[AgendaDay]:
    """Visits from `start` for `days` days (clinic calendar days), earliest first, grouped by day."""
    zone = ZoneInfo(clinic.timezone)
    begin, end = local_wall_time(start, time(0), zone), local_wall_time(start + timedelta(days=days), time(0), zone)
    query = select(Appointment).where(
        Appointment.clinic_id == clinic.id, col(Appointment.starts_at) >= begin, col(Appointment.starts_at) < end,
    )
    if not with_cancelled:
        query = query.where(col(Appointment.status).in_(SHOWN))
    if physician_id is not None:
        query = query.where(Appointment.physician_id == physician_id)
    rows = _rows(session, list(session.exec(query.order_by(col(Appointment.starts_at), col(Appointment.id)))))
    grouped: dict[date, AgendaDay] = {}
    for row in rows:
        day = row.appointment.starts_at.astimezone(zone).date()
        grouped.setdefault(day, AgendaDay(day)).rows.append(row)
    return [grouped[d] for d in sorted(grouped)]


def of_patient(session: Session, clinic: Clinic, patient_id: int) -> list[AgendaRow]:
    """Every visit of one patient, newest first (moved ones too: the history)."""
    appointments = list(session.exec(
        select(Appointment).where(Appointment.clinic_id == clinic.id, Appointment.patient_id == patient_id)
        .order_by(col(Appointment.starts_at).desc(), col(Appointment.id).desc())
    ))
    return _rows(session, appointments)
