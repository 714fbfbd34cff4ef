"""The record-procedure form: every ProcedureIn field; errors are shown next to their field, input kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from aftercare.errors import ConflictError, InputError
from aftercare.models import Channel, Clinic, KneeSide, Language, Role, StaffUser
from aftercare.procedures import ProcedureIn, Recorded
from aftercare.protocols import ProtocolRegistry
from aftercare.web.csrf import check_csrf
from aftercare.web.deps import FormDep, PageWriter, RegistryDep, SessionDep, SettingsDep, actor, clinic_of
from aftercare.web.recording import record_and_plan
from aftercare.web.templating import flash, render

router = APIRouter(include_in_schema=False)

# Form field names are ProcedureIn paths, so a validation error's location names its input.
TEXT_FIELDS = (
    "external_id", "patient.mrn", "patient.first_name", "patient.last_name", "patient.phone", "patient.email",
    "patient.language", "patient.timezone", "patient.preferred_channel", "protocol_id", "knee_side",
    "performed_at", "physician_email", "baseline_nrs", "baseline_koos_jr",
)
CHECKBOXES = ("patient.consent_sms", "patient.consent_email")
LABELS = {
    "external_id": "Procedure id", "patient.mrn": "MRN", "patient.first_name": "First name",
    "patient.last_name": "Last name", "patient.phone": "Mobile phone", "patient.email": "Email",
    "patient.language": "Language", "patient.timezone": "Time zone", "patient.preferred_channel": "Preferred channel",
    "patient.consent_sms": "SMS consent", "patient.consent_email": "Email consent", "protocol_id": "Protocol",
    "knee_side": "Knee", "performed_at": "Date and time of the procedure", "physician_email": "Treating physician",
    "baseline_nrs": "Baseline pain (NRS 0–10)", "baseline_koos_jr": "Baseline KOOS JR (0–100)",
}


@lru_cache
def zone_names() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


@dataclass
class FormState:
    values: dict[str, Any]
    errors: dict[str, str]


def _model_input(values: Mapping[str, Any]) -> dict[str, Any]:
    """Form values as ProcedureIn input: empty boxes are left out, so defaults and `required` apply."""
    data: dict[str, Any] = {}
    for name in (*TEXT_FIELDS, *CHECKBOXES):
        value = values.get(name)
        if value in ("", None):
            continue
        head, _, tail = name.partition(".")
        if tail:
            data.setdefault(head, {})[tail] = value
        else:
            data[name] = value
    data.setdefault("patient", {})
    return data


def _read(form: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in TEXT_FIELDS}
    values.update({name: bool(form.get(name)) for name in CHECKBOXES})
    return values


def _pydantic_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        message = "required" if error["type"] == "missing" else error["msg"]
        errors.setdefault(path, message)
    return errors


def _physicians(session: Session, clinic: Clinic) -> list[StaffUser]:
    return list(
        session.exec(
            select(StaffUser)
            .where(StaffUser.clinic_id == clinic.id, StaffUser.role == Role.physician, col(StaffUser.active))
            .order_by(col(StaffUser.name))
        )
    )


def _page(
    request: Request,
    session: Session,
    staff: StaffUser,
    registry: ProtocolRegistry,
    state: FormState,
    status_code: int = 200,
) -> Response:
    clinic = clinic_of(session, staff)
    return render(
        request,
        "procedure_form.html",
        status_code=status_code,
        staff=staff,
        clinic=clinic,
        values=state.values,
        errors=state.errors,
        labels=LABELS,
        protocols=registry.all(),
        physicians=_physicians(session, clinic),
        languages=list(Language),
        channels=list(Channel),
        knee_sides=list(KneeSide),
        zones=zone_names(),
    )


@router.get("/procedures/new")
def new_procedure(request: Request, session: SessionDep, staff: PageWriter, registry: RegistryDep,
                  settings: SettingsDep) -> Response:
    clinic = clinic_of(session, staff)
    values: dict[str, Any] = dict.fromkeys(TEXT_FIELDS, "")
    values.update({"patient.language": settings.default_language, "patient.timezone": clinic.timezone,
                   "protocol_id": "msc-knee-injection" if "msc-knee-injection" in registry.ids() else ""})
    values.update(dict.fromkeys(CHECKBOXES, False))
    return _page(request, session, staff, registry, FormState(values, {}))


@router.post("/procedures/new", dependencies=[Depends(check_csrf)])
def record_procedure(request: Request, session: SessionDep, staff: PageWriter, registry: RegistryDep,
                     settings: SettingsDep, form: FormDep) -> Response:
    values = _read(form)
    errors: dict[str, str] = {}
    result: Recorded | None = None
    try:
        data = ProcedureIn.model_validate(_model_input(values))
        result = record_and_plan(
            session, clinic=clinic_of(session, staff), data=data, registry=registry, settings=settings,
            actor=actor(staff), source="form",
        )
    except ValidationError as exc:
        errors = _pydantic_errors(exc)
    except InputError as exc:
        errors = {exc.field: exc.message}
    except ConflictError as exc:
        errors = {"": str(exc)}
    if result is None:
        session.rollback()
        return _page(request, session, staff, registry, FormState(values, errors), status_code=422)
    flash(request, _outcome(result))
    return RedirectResponse(f"/patients/{result.procedure.patient_id}", status_code=303)


def _outcome(result: Recorded) -> str:
    external_id = result.procedure.external_id
    if result.created:
        return f"Procedure {external_id} recorded."
    if result.rescheduled:
        return f"Procedure {external_id} was already recorded; its date changed, so its plan was rescheduled."
    return f"Procedure {external_id} was already recorded with these details; nothing was changed."
