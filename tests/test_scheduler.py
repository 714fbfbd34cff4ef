"""The embedded ticker: jobs run every tick, a failing job never stops the others, ticks never overlap."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from aftercare import procedures, scheduler
from aftercare.models import Procedure, ProcedureStatus, Touchpoint
from aftercare.protocols import ProtocolRegistry
from aftercare.scheduler import Job
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic, procedure_in


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def plain_settings() -> Settings:
    return Settings(tick_seconds=1)


@pytest.fixture
def restore_jobs() -> Iterator[None]:
    saved = list(scheduler.JOBS)
    yield
    scheduler.JOBS[:] = saved


def test_plan_stragglers_is_registered() -> None:
    assert "plan-stragglers" in [job.name for job in scheduler.JOBS]


def test_register_job_adds_or_replaces_by_name(restore_jobs: None) -> None:
    def first(settings: Settings) -> None: ...
    def second(settings: Settings) -> None: ...

    scheduler.register_job("dispatch-due", first)
    scheduler.register_job("dispatch-due", second, every_seconds=5)
    named = [job for job in scheduler.JOBS if job.name == "dispatch-due"]
    assert named == [Job("dispatch-due", second, 5)]


def test_run_job_logs_a_failure_and_the_duration(plain_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    def broken(settings: Settings) -> None:
        raise RuntimeError("database unreachable")

    caplog.set_level(logging.DEBUG, logger="aftercare.scheduler")
    assert scheduler.run_job(Job("broken", broken), plain_settings) is False
    assert scheduler.run_job(Job("fine", lambda settings: 3), plain_settings) is True
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "broken" in failure.getMessage() and failure.exc_info is not None
    assert "database unreachable" in caplog.text
    assert any(r.levelno == logging.DEBUG and "fine finished in" in r.getMessage() for r in caplog.records)


def test_a_failing_job_does_not_stop_the_others(plain_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    runs = {"boom": 0, "count": 0}

    def boom(settings: Settings) -> None:
        runs["boom"] += 1
        raise ValueError("bad row")

    def count(settings: Settings) -> None:
        runs["count"] += 1

    ticker = scheduler.start(plain_settings, [Job("boom", boom, 0.05), Job("count", count, 0.05)])
    try:
        assert _wait_for(lambda: runs["boom"] >= 4 and runs["count"] >= 4)
        assert ticker.running and {j.id for j in ticker.get_jobs()} == {"boom", "count"}
    finally:
        ticker.shutdown()
    assert caplog.text.count("job boom failed") >= 4


def test_a_slow_tick_is_never_overlapped(plain_settings: Settings) -> None:
    active, peak, done = [0], [0], threading.Event()
    lock = threading.Lock()

    def slow(settings: Settings) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        done.set()

    ticker = scheduler.start(plain_settings, [Job("slow", slow, 0.05)])
    try:
        time.sleep(1.0)
    finally:
        ticker.shutdown()
    assert done.is_set() and peak[0] == 1


def test_plan_stragglers_builds_a_plan_the_flow_never_built(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    """The real registry: a procedure left in `planning` (orchestrator down) gets its plan on the first tick."""
    clinic = make_clinic(session)
    recorded = procedures.record(
        session, clinic=clinic, data=procedure_in(), registry=registry, settings=settings, actor="test", source="test"
    )
    procedure = recorded.procedure
    procedure.created_at = utcnow() - timedelta(seconds=settings.plan_grace_seconds + 60)
    session.add(procedure)
    session.commit()

    ticker = scheduler.start(settings)  # first tick is due at once
    try:
        def planned() -> bool:
            session.expire_all()
            stored = session.get(Procedure, procedure.id)
            return stored is not None and stored.status == ProcedureStatus.active

        assert _wait_for(planned)
    finally:
        ticker.shutdown()
    touchpoints = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure.id)).all()
    assert len(touchpoints) > 20
