"""Exactly once under concurrency and crashes: three dispatchers at once; a dispatcher killed with SIGKILL.

Counted at the fake Twilio: every touchpoint must have exactly one accepted message, none lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from aftercare.db import get_engine
from aftercare.dispatch.service import DispatchReport, dispatch_due
from aftercare.messaging.registry import providers
from aftercare.models import Touchpoint
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import bulk_due
from tests.factories import make_clinic
from tests.fakes import FakeProviders

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dispatch_settings(database_url: str, fake_provider_settings: Settings,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("AFTERCARE_DISPATCH_BATCH_SIZE", "50")
    monkeypatch.setenv("AFTERCARE_DISPATCH_WORKERS", "8")
    # A loaded CI box must not turn slow answers into timeouts (ambiguous sends wait for reconciliation)
    # or end a run before every row is claimed: this test is about exactly-once, not about speed.
    monkeypatch.setenv("AFTERCARE_PROVIDER_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("AFTERCARE_DISPATCH_MAX_SECONDS", "600")
    get_settings.cache_clear()
    yield get_settings()


def statuses(session: Session) -> Counter[str]:
    rows = session.exec(select(Touchpoint.status, func.count()).group_by(col(Touchpoint.status))).all()
    return Counter({str(status.value if hasattr(status, "value") else status): n for status, n in rows})


def once_each(fake: FakeProviders, ids: list[int]) -> None:
    accepted = Counter(sms.message_id for sms in fake.sent_sms)
    assert set(accepted) == {f"tp-{i}" for i in ids}, "a touchpoint was lost"
    assert max(accepted.values()) == 1, f"sent twice: {[m for m, n in accepted.items() if n > 1][:5]}"


def test_three_dispatchers_at_once_send_each_touchpoint_exactly_once(
    dispatch_settings: Settings, session: Session, fake_providers: FakeProviders, database_url: str
) -> None:
    count = 2000 if database_url.startswith("postgresql") else 600
    clinic = make_clinic(session)
    engine = get_engine()
    ids = bulk_due(engine, clinic.id or 0, count)
    start = threading.Barrier(3)
    reports: list[DispatchReport] = []

    def dispatcher(n: int) -> None:
        own = providers(dispatch_settings, engine=engine)  # each with its own SDK clients, like a process
        start.wait()
        reports.append(dispatch_due(dispatch_settings, engine=engine, providers=own, owner=f"dispatcher-{n}"))

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert len(reports) == 3
    assert sum(r.claimed for r in reports) == count
    assert sum(r.outcomes["sent"] for r in reports) == count
    assert sum(1 for r in reports if r.claimed) >= 2, [r.claimed for r in reports]
    assert fake_providers.creates("sms") == count
    once_each(fake_providers, ids)
    assert statuses(session) == {"sent": count}
    provider_ids = session.exec(select(Touchpoint.provider_id)).all()
    assert len(set(provider_ids)) == count


@pytest.mark.slow
def test_a_dispatcher_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    session: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 300
    with FakeProviders(latency=0.05) as fake:
        env = {**os.environ, **fake.settings_env(), "AFTERCARE_DATABASE_URL": database_url,
               "AFTERCARE_DISPATCH_WORKERS": "4", "AFTERCARE_DISPATCH_BATCH_SIZE": "20",
               "AFTERCARE_PUBLIC_BASE_URL": "https://aftercare.example", "AFTERCARE_PROVIDER_TIMEOUT_SECONDS": "5"}
        for name, value in env.items():
            if name.startswith("AFTERCARE_"):
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        clinic = make_clinic(session)
        ids = bulk_due(get_engine(), clinic.id or 0, count)

        child = subprocess.Popen(
            [sys.executable, "-c", "from aftercare.dispatch.service import dispatch_due\n"
                                   "from aftercare.settings import get_settings\n"
                                   "dispatch_due(get_settings())"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while fake.creates("sms") < 80 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode() if child.stderr else ""
        killed_at = fake.creates("sms")
        assert 80 <= killed_at < count, killed_at

        session.expire_all()
        in_flight = statuses(session)["sending"]
        assert in_flight > 0, statuses(session)  # the dead dispatcher held claims

        after_grace = settings.dispatch_lease_seconds + settings.dispatch_reconcile_grace_seconds + 1
        engine = get_engine()
        report = dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine),
                              clock=lambda: utcnow() + timedelta(seconds=after_grace))

        # claims the provider had are found; the others are resent (and then claimed in the same run)
        assert report.reconcile.checked == in_flight
        assert report.reconcile.found + report.reconcile.resent == in_flight, report.reconcile
        once_each(fake, ids)
        session.expire_all()
        assert statuses(session) == {"sent": count}
