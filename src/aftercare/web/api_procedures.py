"""REST API: record, read, cancel and move procedures."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from aftercare import procedures
from aftercare.procedures import ProcedureIn
from aftercare.web.deps import (
    CurrentStaff,
    CurrentWriter,
    IdPath,
    RegistryDep,
    SessionDep,
    SettingsDep,
    actor,
    clinic_of,
)
from aftercare.web.recording import record_and_plan
from aftercare.web.schemas import CancelIn, CancelledOut, MovedOut, MoveIn, ProcedureOut, RecordedOut

router = APIRouter(prefix="/api/v1/procedures", tags=["procedures"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": RecordedOut, "description": "recorded before with this external_id"}},
)
def record_procedure(
    data: ProcedureIn,
    response: Response,
    session: SessionDep,
    staff: CurrentWriter,
    settings: SettingsDep,
    registry: RegistryDep,
) -> RecordedOut:
    """Record a procedure and start building its care plan. Idempotent on `external_id`."""
    result = record_and_plan(
        session,
        clinic=clinic_of(session, staff),
        data=data,
        registry=registry,
        settings=settings,
        actor=actor(staff),
        source="api",
    )
    procedure = result.procedure
    assert procedure.id is not None
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return RecordedOut(
        procedure_id=procedure.id,
        patient_id=procedure.patient_id,
        status=procedure.status,
        created=result.created,
        rescheduled=result.rescheduled,
    )


@router.get("/{procedure_id}")
def read_procedure(procedure_id: IdPath, session: SessionDep, staff: CurrentStaff) -> ProcedureOut:
    return ProcedureOut.model_validate(procedures.get(session, staff.clinic_id, procedure_id))


@router.post("/{procedure_id}/cancel")
def cancel_procedure(procedure_id: IdPath, body: CancelIn, session: SessionDep, staff: CurrentWriter) -> CancelledOut:
    """Stop everything not yet sent; the reason is kept on the procedure and each touchpoint."""
    procedure = procedures.get(session, staff.clinic_id, procedure_id)
    count = procedures.cancel(session, procedure, body.reason, actor=actor(staff))
    session.commit()
    return CancelledOut(procedure=ProcedureOut.model_validate(procedure), touchpoints_cancelled=count)


@router.post("/{procedure_id}/move")
def move_procedure(
    procedure_id: IdPath, body: MoveIn, session: SessionDep, staff: CurrentWriter, settings: SettingsDep
) -> MovedOut:
    """Change the procedure's date; every touchpoint not yet sent moves with it."""
    procedure = procedures.get(session, staff.clinic_id, procedure_id)
    moved = procedures.move(session, procedure, body.performed_at, settings, actor=actor(staff))
    session.commit()
    return MovedOut(procedure=ProcedureOut.model_validate(procedure), touchpoints_moved=moved)
