"""Recording procedures: validate, store the patient and procedure, and hand the plan to the flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from aftercare import audit, plans
from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.models import Clinic, KneeSide, Language, Procedure, ProcedureStatus, Role, StaffUser
from aftercare.patients import PatientIn, upsert_patient
from aftercare.protocols import ProtocolError, ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow


class ProcedureIn(BaseModel):
    """A procedure as recorded by a coordinator."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str = Field(min_length=1, max_length=64, description="the clinic's id for this procedure")
    patient: PatientIn
    protocol_id: str = Field("msc-knee-injection", max_length=100)
    knee_side: KneeSide
    performed_at: datetime = Field(description="ISO 8601; without an offset it is read in the clinic's zone")
    physician_email: str | None = Field(None, max_length=254)
    baseline_nrs: int = Field(ge=0, le=10, description="NRS pain 0-10 before the procedure")
    baseline_koos_jr: float | None = Field(None, ge=0, le=100, description="KOOS JR interval score 0-100")


@dataclass
class Recorded:
    procedure: Procedure
    created: bool  # False: the same procedure was recorded before (idempotent)
    rescheduled: bool = False
    needs_plan: bool = False


def check_performed_at(value: datetime, clinic: Clinic, settings: Settings, now: datetime) -> datetime:
    """performed_at as an aware datetime (naive = the clinic's zone), within the allowed range."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(clinic.timezone))
    if value > now + timedelta(days=settings.max_future_days):
        raise InputError("performed_at", f"more than {settings.max_future_days} days in the future")
    if value < now - timedelta(days=settings.max_past_days):
        raise InputError("performed_at", f"more than {settings.max_past_days} days in the past")
    return value


def _physician(session: Session, clinic: Clinic, email: str | None) -> int | None:
    if not email:
        return None
    staff = session.exec(
        select(StaffUser).where(StaffUser.email == email.lower(), StaffUser.clinic_id == clinic.id)
    ).first()
    if staff is None or staff.role != Role.physician:
        raise InputError("physician_email", f"no physician {email!r} at this clinic")
    return staff.id


def record(
    session: Session,
    *,
    clinic: Clinic,
    data: ProcedureIn,
    registry: ProtocolRegistry,
    settings: Settings,
    actor: str,
    source: str,
) -> Recorded:
    """Store a procedure (idempotent on its external id). The caller commits, then starts the flow.

    A known external id with a new date reschedules the plan; anything else identical is a no-op.
    Raises InputError (bad field) or ConflictError (contradicts what is stored).
    """
    assert clinic.id is not None
    now = utcnow()
    try:
        protocol = registry.get(data.protocol_id)
    except ProtocolError as exc:
        raise InputError("protocol_id", str(exc)) from None
    performed_at = check_performed_at(data.performed_at, clinic, settings, now)
    physician_id = _physician(session, clinic, data.physician_email)
    existing = session.exec(
        select(Procedure).where(Procedure.clinic_id == clinic.id, Procedure.external_id == data.external_id)
    ).first()
    if existing is not None:
        return _again(session, existing, data, performed_at, actor)
    patient = upsert_patient(
        session,
        clinic_id=clinic.id,
        data=data.patient,
        default_region=settings.default_phone_region,
        default_timezone=settings.default_timezone,
        default_language=Language(settings.default_language),
        actor=actor,
        source=source,
    )
    snapshot = plans.ensure_snapshot(session, protocol)
    assert patient.id is not None
    procedure = Procedure(
        clinic_id=clinic.id,
        patient_id=patient.id,
        external_id=data.external_id,
        protocol_id=snapshot.protocol_id,
        protocol_version=snapshot.version,
        knee_side=data.knee_side,
        performed_at=performed_at,
        physician_id=physician_id,
        baseline_nrs=data.baseline_nrs,
        baseline_koos_jr=data.baseline_koos_jr,
    )
    session.add(procedure)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="procedure.recorded",
        entity_type="procedure",
        entity_id=procedure.id,
        source=source,
        protocol=f"{snapshot.protocol_id}@{snapshot.version}",
    )
    return Recorded(procedure=procedure, created=True, needs_plan=True)


def _again(
    session: Session, existing: Procedure, data: ProcedureIn, performed_at: datetime, actor: str
) -> Recorded:
    if existing.protocol_id != data.protocol_id:
        raise ConflictError(
            f"procedure {data.external_id} was recorded with protocol {existing.protocol_id}; "
            "cancel it and record a new one to change protocol"
        )
    if existing.status == ProcedureStatus.cancelled:
        raise ConflictError(f"procedure {data.external_id} was cancelled ({existing.cancel_reason})")
    if existing.performed_at == performed_at:
        return Recorded(procedure=existing, created=False)
    plans.reschedule(session, existing, performed_at, actor=actor)
    return Recorded(procedure=existing, created=False, rescheduled=True)


def get(session: Session, clinic_id: int, procedure_id: int) -> Procedure:
    procedure = session.get(Procedure, procedure_id)
    if procedure is None or procedure.clinic_id != clinic_id:
        raise NotFoundError(f"no procedure {procedure_id}")
    return procedure


def cancel(session: Session, procedure: Procedure, reason: str, *, actor: str) -> int:
    if not reason.strip():
        raise InputError("reason", "a reason is required to cancel a procedure")
    if procedure.status == ProcedureStatus.cancelled:
        return 0
    return plans.cancel(session, procedure, reason.strip(), actor=actor)


def move(session: Session, procedure: Procedure, performed_at: datetime, settings: Settings, *, actor: str) -> int:
    if procedure.status == ProcedureStatus.cancelled:
        raise ConflictError("a cancelled procedure cannot be moved")
    clinic = session.get(Clinic, procedure.clinic_id)
    assert clinic is not None
    value = check_performed_at(performed_at, clinic, settings, utcnow())
    return plans.reschedule(session, procedure, value, actor=actor)
