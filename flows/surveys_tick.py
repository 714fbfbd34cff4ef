"""`surveys-tick`: survey housekeeping in production (embedded mode runs the same job in its ticker).

Opens responses whose invitation went out, texts the first question of SMS surveys, creates due reminders,
closes windows (missed surveys, coordinator tasks for repeated misses). Thin over
`aftercare.surveys.service.tick`; overlapping runs are safe (every change re-checks its row).
"""

from __future__ import annotations

from prefect import flow

from aftercare.settings import get_settings
from aftercare.surveys.service import tick


@flow(name="surveys-tick", log_prints=True)
def surveys_tick() -> dict[str, int]:
    """One housekeeping run; returns its counts."""
    report = tick(get_settings())
    print(f"surveys-tick: {report.as_dict()}")
    return report.as_dict()
