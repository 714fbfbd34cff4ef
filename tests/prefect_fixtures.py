"""A session-scoped Prefect test harness. Import `prefect_harness` into test modules that run flows.

One temporary Prefect API server (SQLite) per test session/xdist worker: it costs ~10 s to start, so it is
started once. Heartbeats are off (each sync flow call would otherwise wait ~1 s for the heartbeat thread).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), prefect_test_harness(
        server_startup_timeout=120
    ):
        yield
