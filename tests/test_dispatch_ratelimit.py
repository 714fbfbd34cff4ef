"""The per-sender send rate, held in the database across dispatchers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlmodel import Session, col, select

from aftercare.db import get_engine
from aftercare.dispatch.ratelimit import reserve
from aftercare.dispatch.service import batch_limit, dispatch_due
from aftercare.messaging.registry import providers
from aftercare.models import Touchpoint, TouchpointStatus
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import bulk_due
from tests.factories import make_clinic
from tests.fakes import FakeProviders


def test_reservations_from_many_dispatchers_are_disjoint_and_paced(database_url: str) -> None:
    engine = get_engine()
    now = 1_000_000.0
    taken: list[float] = []
    lock = threading.Lock()

    def dispatcher() -> None:
        for _ in range(5):
            slots = reserve(engine, sender="twilio:sms:MG1", rate=10.0, count=4, now=now)
            with lock:
                taken.extend(slots)

    threads = [threading.Thread(target=dispatcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    taken.sort()
    assert len(taken) == 60
    assert taken[0] == pytest.approx(now)
    gaps = [b - a for a, b in zip(taken, taken[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.1) and max(gaps) == pytest.approx(0.1)  # never two in one slot
    assert reserve(engine, sender="sendgrid:email:x", rate=10.0, count=1, now=now) == [now]  # per sender


def test_an_idle_sender_starts_now_without_a_burst(database_url: str) -> None:
    engine = get_engine()
    reserve(engine, sender="s", rate=2.0, count=2, now=100.0)
    assert reserve(engine, sender="s", rate=2.0, count=2, now=500.0) == [500.0, 500.5]


def test_no_limit_means_no_waiting(database_url: str) -> None:
    assert reserve(get_engine(), sender="s", rate=0.0, count=3, now=7.0) == [7.0, 7.0, 7.0]


@pytest.fixture
def limited(database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("AFTERCARE_SMS_RATE_PER_SECOND", "20")
    get_settings.cache_clear()
    yield get_settings()


def test_a_dispatch_run_keeps_to_the_configured_rate(
    limited: Settings, session: Session, fake_providers: FakeProviders
) -> None:
    clinic = make_clinic(session)
    engine = get_engine()
    bulk_due(engine, clinic.id or 0, 30)
    own = providers(limited, engine=engine)
    started = utcnow()
    report = dispatch_due(limited, engine=engine, providers=own)
    assert report.outcomes == {"sent": 30}
    last = max(s.created_at for s in fake_providers.sent_sms)
    elapsed = (last - started).total_seconds()
    assert elapsed >= 29 / 20, elapsed  # a send never goes before its slot: 30 at 20/s need 1.45 s
    assert elapsed <= 29 / 20 + 1.5, elapsed
    sent = session.exec(select(Touchpoint).where(col(Touchpoint.status) == TouchpointStatus.sent)).all()
    assert len(sent) == 30


def test_batches_fit_in_a_lease_at_a_slow_rate() -> None:
    settings = Settings(sms_rate_per_second=1.0, dispatch_lease_seconds=300, dispatch_batch_size=200)
    assert batch_limit(settings) == 75  # 300 s lease / 2 batches in flight / 2 margin at 1/s
    assert batch_limit(Settings(dispatch_batch_size=200)) == 200
