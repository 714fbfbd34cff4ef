"""`bookings-tick`: booking housekeeping in production (embedded mode runs the same job in its ticker).

Expires unanswered offers (re-offers once, then a coordinator task), frees the visits of cancelled
procedures, and ends booking conversations nothing waits on. Thin over `aftercare.bookings.tick`;
overlapping runs are safe (each offer is expired by one compare-and-set).
"""

from __future__ import annotations

from prefect import flow

from aftercare.bookings.tick import bookings_tick as run
from aftercare.settings import get_settings


@flow(name="bookings-tick", log_prints=True)
def bookings_tick() -> dict[str, int]:
    """One housekeeping run; returns its counts."""
    report = run(get_settings())
    print(f"bookings-tick: {report.as_dict()}")
    return report.as_dict()
