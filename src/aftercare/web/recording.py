"""Record a procedure from the web app or API: store it, commit, then start the plan flow."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from aftercare import orchestration, procedures
from aftercare.models import Clinic
from aftercare.procedures import ProcedureIn, Recorded
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings


def record_and_plan(
    session: Session,
    *,
    clinic: Clinic,
    data: ProcedureIn,
    registry: ProtocolRegistry,
    settings: Settings,
    actor: str,
    source: str,
) -> Recorded:
    """Store the procedure (idempotent on external_id) and, after the commit, start `procedure-aftercare`.

    Raises InputError / ConflictError with nothing stored.
    """

    def attempt() -> Recorded:
        result = procedures.record(
            session, clinic=clinic, data=data, registry=registry, settings=settings, actor=actor, source=source
        )
        session.commit()
        return result

    try:
        result = attempt()
    except IntegrityError:  # the same procedure or patient stored concurrently: now it is a repeat
        session.rollback()
        result = attempt()
    procedure = result.procedure
    if result.needs_plan and procedure.id is not None:
        orchestration.start_plan_flow([procedure.id], settings)  # never raises; the ticker retries
        session.refresh(procedure)
    return result
