"""The flags job of the ticker (embedded APScheduler) and of the `flags-tick` deployment (production).

Each run: triage what no flow triaged in time (AFTERCARE_TRIAGE_GRACE_SECONDS), page the next level of every
unacknowledged urgent or emergency flag whose timer has passed, and send pages still queued (retries).
"""

from __future__ import annotations

import logging
from typing import Any

from aftercare.flags import escalation, paging, service
from aftercare.settings import Settings

log = logging.getLogger(__name__)


def flags_tick(settings: Settings) -> dict[str, Any]:
    """One run; returns the counts (triaged, escalated, pages resent)."""
    triaged = service.triage_stragglers(settings)
    if triaged.claimed:
        log.error("triaged %d request(s) no triage-response flow had handled: check Prefect", triaged.claimed)
    escalated = escalation.escalate_due(settings)
    resent = paging.send_pages(settings)
    return {"triaged": triaged.as_dict(), "escalation": dict(escalated), "pages_resent": dict(resent)}
