"""`dispatch-due`: send everything due now (an interval deployment, 60 s, one run at a time).

Thin over `aftercare.dispatch.service.dispatch_due`; the embedded ticker and `aftercare dispatch --once`
call the same function. Overlapping runs (another deployment, a CLI run) are safe: claims are leased.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from aftercare.dispatch.service import dispatch_due as send_due
from aftercare.settings import get_settings


@flow(name="dispatch-due", log_prints=True)
def dispatch_due() -> dict[str, Any]:
    """Reconcile maybe-sent messages, send replies, then claim and send due touchpoints; returns the counts."""
    report = send_due(get_settings())
    print(f"dispatch-due: {report.summary()}")
    return report.as_dict()
