"""Coordinator pages: the patient list, a patient's timeline, and moving or cancelling a procedure."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from aftercare import procedures
from aftercare.errors import ConflictError, InputError
from aftercare.timeutil import utcnow
from aftercare.web import patient_list, timeline
from aftercare.web.csrf import check_csrf
from aftercare.web.deps import IdPath, PageStaff, PageWriter, SessionDep, SettingsDep, actor, clinic_of
from aftercare.web.templating import flash, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def patients_page(
    request: Request,
    session: SessionDep,
    staff: PageStaff,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    clinic = clinic_of(session, staff)
    rows = patient_list.search(session, clinic.id or 0, q)
    return render(
        request, "patients.html", staff=staff, clinic=clinic, q=q, rows=rows, max_rows=patient_list.MAX_ROWS
    )


@router.get("/patients/{patient_id}")
def patient_page(request: Request, patient_id: IdPath, session: SessionDep, staff: PageStaff) -> Response:
    view = timeline.patient_view(session, clinic_of(session, staff), patient_id)
    return render(request, "patient.html", staff=staff, view=view, now=utcnow())


def _back_to_patient(patient_id: int) -> Response:
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/procedures/{procedure_id}/move", dependencies=[Depends(check_csrf)])
def move_procedure(
    request: Request,
    procedure_id: IdPath,
    session: SessionDep,
    staff: PageWriter,
    settings: SettingsDep,
    performed_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    procedure = procedures.get(session, staff.clinic_id, procedure_id)
    try:
        when = datetime.fromisoformat(performed_at.strip())
    except ValueError:
        flash(request, "New date: enter a date and time, e.g. 2026-12-01 09:30.", "error")
        return _back_to_patient(procedure.patient_id)
    try:
        moved = procedures.move(session, procedure, when, settings, actor=actor(staff))
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not moved: {exc}", "error")
        return _back_to_patient(procedure.patient_id)
    session.commit()
    flash(request, f"Procedure {procedure.external_id} moved; {moved} upcoming message(s) rescheduled.")
    return _back_to_patient(procedure.patient_id)


@router.post("/procedures/{procedure_id}/cancel", dependencies=[Depends(check_csrf)])
def cancel_procedure(
    request: Request,
    procedure_id: IdPath,
    session: SessionDep,
    staff: PageWriter,
    reason: Annotated[str, Form(max_length=250)] = "",
) -> Response:
    procedure = procedures.get(session, staff.clinic_id, procedure_id)
    try:
        count = procedures.cancel(session, procedure, reason, actor=actor(staff))
    except InputError as exc:
        flash(request, f"Not cancelled: {exc.message}.", "error")
        return _back_to_patient(procedure.patient_id)
    session.commit()
    flash(request, f"Procedure {procedure.external_id} cancelled; {count} message(s) will not be sent.")
    return _back_to_patient(procedure.patient_id)
