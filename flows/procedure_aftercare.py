"""`procedure-aftercare`: build the care plan of newly recorded procedures."""

from __future__ import annotations

from prefect import flow, task
from prefect.runtime import flow_run

from aftercare import plans
from aftercare.db import session_scope


@task(name="materialise-plans", retries=3, retry_delay_seconds=[2, 5, 15])
def materialise_plans(procedure_ids: list[int]) -> int:
    with session_scope() as session:
        return plans.build_for(session, procedure_ids, flow_run_id=str(flow_run.id or "") or None)


@flow(name="procedure-aftercare", flow_run_name="plan-{procedure_ids[0]}", log_prints=True)
def procedure_aftercare(procedure_ids: list[int]) -> int:
    """Write every touchpoint of each procedure's plan in one transaction; idempotent."""
    written = materialise_plans(procedure_ids)
    print(f"planned {len(procedure_ids)} procedure(s), {written} touchpoint(s) written")
    return written
