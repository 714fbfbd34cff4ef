"""`triage-response`: triage stored survey answers and free-text messages into flags, pages and patient texts.

Started for every stored answer or free-text message (aftercare.orchestration.start_triage_flow). Thin over
`aftercare.flags.service.triage_requests`; the ticker's `flags-tick` job triages whatever a run missed.

An async flow: Prefect joins a sync flow's heartbeat thread when it returns (up to ~1 s, shared/prefect.md §3),
which would hold up the next run, and with it the next page. The triage itself runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow

from aftercare.flags.service import triage_requests
from aftercare.settings import get_settings


@flow(name="triage-response", log_prints=True)
async def triage_response(request_ids: list[int] | None = None, linger_seconds: float = 0.0) -> dict[str, Any]:
    """Triage these requests (None: every pending one; the app's own runs linger for more); hand their pages to
    the providers; return the counts."""
    report = await asyncio.to_thread(triage_requests, get_settings(), request_ids, linger_seconds=linger_seconds)
    print(f"triage-response: {report.summary()}")
    return report.as_dict()
