"""REST API: search patients, read one, and read their timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aftercare.patients import consent_state
from aftercare.web import patient_list, timeline
from aftercare.web.deps import CurrentStaff, IdPath, SessionDep, clinic_of
from aftercare.web.schemas import PatientDetailOut, PatientOut, PatientSummaryOut, ProcedureOut, TimelineEntryOut

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])


@router.get("")
def search_patients(
    session: SessionDep,
    staff: CurrentStaff,
    q: Annotated[str | None, Query(max_length=200, description="words of the name, phone, email or MRN")] = None,
) -> list[PatientSummaryOut]:
    """Patients of your clinic (first 100 by last name), each with their next touchpoint."""
    rows = patient_list.search(session, staff.clinic_id, q)
    return [
        PatientSummaryOut(
            **PatientOut.model_validate(row.patient).model_dump(),
            procedure_count=row.procedure_count,
            next_touchpoint_key=row.next_touchpoint.key if row.next_touchpoint else None,
            next_touchpoint_due_at=row.next_touchpoint.due_at if row.next_touchpoint else None,
        )
        for row in rows
    ]


@router.get("/{patient_id}")
def read_patient(patient_id: IdPath, session: SessionDep, staff: CurrentStaff) -> PatientDetailOut:
    patient = timeline.get_patient(session, clinic_of(session, staff), patient_id)
    assert patient.id is not None
    return PatientDetailOut(
        **PatientOut.model_validate(patient).model_dump(),
        consent=consent_state(session, patient.id),
        procedures=[ProcedureOut.model_validate(p) for p in timeline.patient_procedures(session, patient)],
    )


@router.get("/{patient_id}/timeline")
def patient_timeline(patient_id: IdPath, session: SessionDep, staff: CurrentStaff) -> list[TimelineEntryOut]:
    """Every touchpoint of every plan of the patient, in due order, with local times and status in words."""
    clinic = clinic_of(session, staff)
    patient = timeline.get_patient(session, clinic, patient_id)
    return [TimelineEntryOut.model_validate(e) for e in timeline.entries(session, patient, clinic)]
