"""`flags-tick`: the flags safety net in production (embedded mode runs the same job in its ticker).

Triages answers and messages no `triage-response` run handled in time, pages the next level of unacknowledged
urgent and emergency flags (backup, then admin), and resends queued pages.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from aftercare.flags.ticker import flags_tick as run_flags_tick
from aftercare.settings import get_settings


@flow(name="flags-tick", log_prints=True)
def flags_tick() -> dict[str, Any]:
    """One run of the flags job; returns its counts."""
    counts = run_flags_tick(get_settings())
    print(f"flags-tick: {counts}")
    return counts
