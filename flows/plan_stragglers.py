"""`plan-stragglers`: the production safety net for care plans (embedded mode runs the same job in its ticker).

A procedure whose `procedure-aftercare` run never happened (Prefect briefly down when it was recorded, a run
crashed) is started again, and built right here after a longer wait: no patient is left without a plan.
"""

from __future__ import annotations

from prefect import flow

from aftercare.orchestration import plan_stragglers as plan_late_procedures
from aftercare.settings import get_settings


@flow(name="plan-stragglers", log_prints=True)
def plan_stragglers() -> int:
    """Re-start or build the plans still missing after AFTERCARE_PLAN_GRACE_SECONDS; returns touchpoints written."""
    written = plan_late_procedures(get_settings())
    if written:
        print(f"built {written} touchpoint(s) for procedures Prefect had not planned in time")
    return written
