"""Staff pages for visits: the calendar (a day or week per physician, grouped by day), one visit (move,
cancel, attended, no-show), a patient's visits with booking, the physician's private .ics feed.

Every signed-in staff member may use them (physicians book too, e.g. an urgent visit from a flag). The
calendar feed /calendar/<token>.ics needs no login: the token is the key, and only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from aftercare.bookings import agenda, feeds, offers, service
from aftercare.bookings import scope as scopes
from aftercare.bookings.calendar import CalendarError
from aftercare.bookings.scope import Scope
from aftercare.bookings.slots import Slot, unknown_physicians
from aftercare.bookings.texts import MODE_LABELS, visit_label
from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.models import AppointmentStatus, Patient, Procedure, ProcedureStatus, Role, StaffUser, VisitMode
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.csrf import check_csrf
from aftercare.web.deps import IdPath, PageStaff, SessionDep, SettingsDep, actor, clinic_of
from aftercare.web.templating import flash, render

router = APIRouter(include_in_schema=False)
SlotForm = Annotated[str, Form(max_length=40)]
DayQuery = Annotated[str, Query(max_length=10, description="YYYY-MM-DD (clinic calendar day)")]
PICK_DAYS = 7


def _day(value: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError("start", f"{value!r} is not a date (YYYY-MM-DD)") from None


def _scope(session: Session, settings: Settings, patient: Patient, procedure: Procedure | None = None) -> Scope:
    return scopes.load(session, settings, patient=patient, procedure=procedure)


def _calendar_physicians(session: Session, settings: Settings, staff: StaffUser) -> tuple[list[StaffUser], str | None]:
    """The clinic's physicians in the calendar, and a problem with the calendar to show (if any)."""
    clinic = clinic_of(session, staff)
    try:
        from aftercare.bookings import calendar as calendars

        calendar = calendars.for_clinic(settings, clinic.slug)
    except CalendarError as exc:
        return [], str(exc)
    if calendar is None:
        return [], f"this clinic ({clinic.slug}) has no calendar in {calendars.calendar_path(settings)}"
    emails = [d.email for d in calendar.physicians]
    found = list(session.exec(select(StaffUser).where(StaffUser.clinic_id == clinic.id,
                                                      col(StaffUser.email).in_(emails))))
    missing = unknown_physicians(session, clinic.id or 0, calendar)
    problem = f"no active staff account for {', '.join(missing)} (config/clinic.yaml)" if missing else None
    return sorted(found, key=lambda s: s.name), problem


def _slot_value(slot: Slot) -> str:
    return f"{slot.starts_at.astimezone(UTC).strftime('%Y%m%dT%H%MZ')}.{slot.physician_id}"


def _parse_slot(value: str) -> tuple[datetime, int]:
    try:
        when, physician = value.split(".", 1)
        return datetime.strptime(when, "%Y%m%dT%H%MZ").replace(tzinfo=UTC), int(physician)
    except ValueError:
        raise InputError("slot", "choose one of the times listed") from None


def _grouped(slots: list[Slot], zone: ZoneInfo) -> list[tuple[date, list[Slot]]]:
    days: dict[date, list[Slot]] = {}
    for slot in slots:
        days.setdefault(slot.starts_at.astimezone(zone).date(), []).append(slot)
    return sorted(days.items())


# -- the calendar --------------------------------------------------------------------------------


@router.get("/visits")
def visits_page(
    request: Request, session: SessionDep, staff: PageStaff, settings: SettingsDep,
    physician: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None, start: DayQuery = "",
    days: Annotated[int, Query(ge=1, le=31)] = 7, cancelled: bool = False,
) -> Response:
    clinic = clinic_of(session, staff)
    doctors, problem = _calendar_physicians(session, settings, staff)
    if physician is None and staff.role == Role.physician and any(d.id == staff.id for d in doctors):
        physician = staff.id
    chosen = physician or None
    first = _day(start, utcnow().astimezone(ZoneInfo(clinic.timezone)).date())
    listing = agenda.agenda(session, clinic, start=first, days=days, physician_id=chosen, with_cancelled=cancelled)
    zone = ZoneInfo(clinic.timezone)
    return render(request, "visits.html", staff=staff, clinic=clinic, doctors=doctors, physician=chosen,
                  start=first, days=days, listing=listing, problem=problem, cancelled=cancelled,
                  prev=first - timedelta(days=days), next=first + timedelta(days=days), modes=MODE_LABELS,
                  hm=lambda instant: instant.astimezone(zone).strftime("%H:%M"))


@router.get("/visits/feed")
def feed_page(request: Request, session: SessionDep, staff: PageStaff, settings: SettingsDep) -> Response:
    feed = feeds.active(session, staff.id or 0)
    return render(request, "visits_feed.html", staff=staff, feed=feed, new_url=None)


@router.post("/visits/feed", dependencies=[Depends(check_csrf)])
def create_feed(request: Request, session: SessionDep, staff: PageStaff, settings: SettingsDep,
                action: Annotated[str, Form(max_length=10)] = "create") -> Response:
    if action == "revoke":
        feeds.revoke(session, staff=staff, actor=actor(staff))
        session.commit()
        flash(request, "Your calendar feed address no longer works.")
        return RedirectResponse("/visits/feed", status_code=303)
    token = feeds.create(session, staff=staff, actor=actor(staff))
    session.commit()
    url = f"{settings.public_base_url.rstrip('/')}/calendar/{token}.ics"
    return render(request, "visits_feed.html", staff=staff, feed=feeds.active(session, staff.id or 0), new_url=url)


@router.get("/calendar/{token}.ics")
def calendar_feed(token: Annotated[str, Path(max_length=80)], session: SessionDep, settings: SettingsDep) -> Response:
    owner = feeds.owner(session, token)
    if owner is None:
        return Response("Unknown or revoked calendar address.\n", status_code=404, media_type="text/plain")
    return Response(feeds.body(session, settings, owner), media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


# -- one visit -------------------------------------------------------------------------------------


@router.get("/visits/{appointment_id}")
def visit_page(
    request: Request, appointment_id: IdPath, session: SessionDep, staff: PageStaff, settings: SettingsDep,
    start: DayQuery = "", physician: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    clinic = clinic_of(session, staff)
    appointment = service.get(session, clinic.id or 0, appointment_id)
    patient = session.get(Patient, appointment.patient_id)
    assert patient is not None
    scope = _scope(session, settings, patient)
    choices: list[tuple[date, list[Slot]]] = []
    first = _day(start, utcnow().astimezone(scope.zone).date())
    if appointment.status == AppointmentStatus.booked and scope.calendar is not None:
        begin = datetime.combine(first, datetime.min.time(), scope.zone).astimezone(UTC)
        choices = _grouped(service.free_slots(session, scope, mode=appointment.mode, start=begin,
                                              end=begin + timedelta(days=PICK_DAYS),
                                              physician_id=physician or None), scope.zone)
    doctors, problem = _calendar_physicians(session, settings, staff)
    history = [r for r in agenda.of_patient(session, clinic, patient.id or 0) if r.appointment.visit ==
               appointment.visit and r.appointment.procedure_id == appointment.procedure_id]
    return render(request, "visits_detail.html", staff=staff, clinic=clinic, patient=patient,
                  appointment=appointment, label=visit_label(appointment.visit), choices=choices,
                  doctor={d.id: d for d in doctors}, doctors=doctors, physician=physician, start=first,
                  prev=first - timedelta(days=PICK_DAYS), next=first + timedelta(days=PICK_DAYS), history=history,
                  problem=problem, due=appointment.starts_at <= utcnow(), slot_value=_slot_value,
                  modes=MODE_LABELS)


def _back(appointment_id: int) -> Response:
    return RedirectResponse(f"/visits/{appointment_id}", status_code=303)


@router.post("/visits/{appointment_id}/move", dependencies=[Depends(check_csrf)])
def move_visit(request: Request, appointment_id: IdPath, session: SessionDep, staff: PageStaff,
               settings: SettingsDep, slot: SlotForm = "") -> Response:
    appointment = service.get(session, staff.clinic_id, appointment_id)
    try:
        starts_at, physician_id = _parse_slot(slot)
        moved = service.move(session, settings, appointment=appointment, starts_at=starts_at,
                             physician_id=physician_id, actor=actor(staff))
    except service.SlotTaken:
        session.rollback()
        flash(request, "Not moved: that time was just booked by someone else. Choose another.", "error")
        return _back(appointment_id)
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not moved: {exc}", "error")
        return _back(appointment_id)
    session.commit()
    flash(request, "Visit moved; the patient is told and the reminders follow the new time.")
    return _back(moved.id or 0)


@router.post("/visits/{appointment_id}/cancel", dependencies=[Depends(check_csrf)])
def cancel_visit(request: Request, appointment_id: IdPath, session: SessionDep, staff: PageStaff,
                 settings: SettingsDep, reason: Annotated[str, Form(max_length=250)] = "") -> Response:
    appointment = service.get(session, staff.clinic_id, appointment_id)
    try:
        service.cancel(session, settings, appointment=appointment, actor=actor(staff), reason=reason)
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not cancelled: {exc}", "error")
        return _back(appointment_id)
    session.commit()
    flash(request, "Visit cancelled; its time is free again and the patient is told.")
    return _back(appointment_id)


@router.post("/visits/{appointment_id}/mark", dependencies=[Depends(check_csrf)])
def mark_visit(request: Request, appointment_id: IdPath, session: SessionDep, staff: PageStaff,
               status: Annotated[str, Form(max_length=20)] = "") -> Response:
    appointment = service.get(session, staff.clinic_id, appointment_id)
    try:
        service.mark(session, appointment=appointment, status=AppointmentStatus(status), actor=actor(staff))
    except ValueError as exc:  # InputError, ConflictError and an unknown status word
        session.rollback()
        flash(request, f"Not marked: {exc if isinstance(exc, InputError | ConflictError) else 'unknown status'}",
              "error")
        return _back(appointment_id)
    session.commit()
    flash(request, f"Marked {status.replace('_', '-')}.")
    return _back(appointment_id)


# -- a patient's visits, and booking one ------------------------------------------------------------


def _visit_choices(session: Session, patient: Patient) -> list[tuple[str, str, int | None, str]]:
    """(value, label, procedure id, protocol mode) for each protocol visit of the patient's active plans."""
    out = []
    plans = session.exec(select(Procedure).where(Procedure.patient_id == patient.id,
                                                 Procedure.status == ProcedureStatus.active))
    for procedure in plans:
        for visit in offers.protocol_visits(session, procedure):
            out.append((f"{procedure.id}:{visit.id}", f"{visit_label(visit.id)} — procedure {procedure.external_id}",
                        procedure.id, offers.visit_mode(visit.mode).value))
    out.append(("0:other", "Other visit", None, VisitMode.in_person.value))
    out.append(("0:urgent", "Urgent visit", None, VisitMode.in_person.value))
    return out


@router.get("/visits/patient/{patient_id}")
def patient_visits(
    request: Request, patient_id: IdPath, session: SessionDep, staff: PageStaff, settings: SettingsDep,
    visit: Annotated[str, Query(max_length=80)] = "", mode: Annotated[str, Query(max_length=20)] = "",
    physician: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None, start: DayQuery = "",
) -> Response:
    clinic = clinic_of(session, staff)
    patient = session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != clinic.id:
        raise NotFoundError(f"no patient {patient_id}")
    scope = _scope(session, settings, patient)
    rows = agenda.of_patient(session, clinic, patient_id)
    visits = _visit_choices(session, patient)
    chosen = next((v for v in visits if v[0] == visit), visits[0])
    try:
        kind = VisitMode(mode or chosen[3])
    except ValueError:
        raise InputError("mode", f"{mode!r} is not one of: in_person, video, phone") from None
    first = _day(start, utcnow().astimezone(scope.zone).date())
    slots: list[tuple[date, list[Slot]]] = []
    doctors, problem = _calendar_physicians(session, settings, staff)
    if scope.calendar is not None:
        begin = datetime.combine(first, datetime.min.time(), scope.zone).astimezone(UTC)
        slots = _grouped(service.free_slots(session, scope, mode=kind, start=begin,
                                            end=begin + timedelta(days=PICK_DAYS), physician_id=physician or None),
                         scope.zone)
    return render(request, "visits_patient.html", staff=staff, clinic=clinic, patient=patient, rows=rows,
                  visits=visits, chosen=chosen, mode=kind, modes=MODE_LABELS, slots=slots, doctors=doctors,
                  doctor={d.id: d for d in doctors}, physician=physician, start=first, problem=problem,
                  prev=first - timedelta(days=PICK_DAYS), next=first + timedelta(days=PICK_DAYS),
                  slot_value=_slot_value, now=utcnow())


@router.post("/visits/patient/{patient_id}/book", dependencies=[Depends(check_csrf)])
def book_visit(
    request: Request, patient_id: IdPath, session: SessionDep, staff: PageStaff, settings: SettingsDep,
    slot: SlotForm = "", visit: Annotated[str, Form(max_length=80)] = "",
    mode: Annotated[str, Form(max_length=20)] = "", reason: Annotated[str, Form(max_length=250)] = "",
) -> Response:
    back = RedirectResponse(f"/visits/patient/{patient_id}", status_code=303)
    try:
        procedure_part, _, visit_id = visit.partition(":")
        if not visit_id:
            raise InputError("visit", "choose which visit to book")
        starts_at, physician_id = _parse_slot(slot)
        appointment = service.book(
            session, settings, patient_id=patient_id, physician_id=physician_id, starts_at=starts_at,
            mode=VisitMode(mode) if mode in VisitMode.__members__ else VisitMode.in_person, visit=visit_id,
            procedure_id=int(procedure_part) or None if procedure_part.isdigit() else None, actor=actor(staff),
            reason=reason.strip() or None, clinic_id=staff.clinic_id,
        )
    except service.SlotTaken:
        session.rollback()
        flash(request, "Not booked: that time was just booked by someone else. Choose another.", "error")
        return back
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not booked: {exc}", "error")
        return back
    session.commit()
    flash(request, "Visit booked; the patient gets a confirmation and reminders.")
    return RedirectResponse(f"/visits/{appointment.id}", status_code=303)
