"""The `triage-response` and `flags-tick` flows against a Prefect test harness, and starting triage inline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aftercare_flows.flags_tick import flags_tick as flags_tick_flow
from aftercare_flows.triage_response import triage_response
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from sqlmodel import Session
from typer.testing import CliRunner

from aftercare import orchestration, scheduler
from aftercare.cli import app
from aftercare.flags import intake
from aftercare.models import FlagTier, TriageStatus
from aftercare.settings import Settings, get_settings
from tests.fakes import FakeProviders
from tests.flag_helpers import (
    Team,
    flags_of,
    make_team,
    patient_with_procedure,
    requests,
    stored_text,
    use_oncall,
)
from tests.prefect_fixtures import prefect_harness  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def app_settings(
    database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def team(session: Session, app_settings: Settings) -> Team:
    return make_team(session)


@pytest.fixture
def inline(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for inline flow runs that linger briefly; the test ends only when the run has ended."""
    monkeypatch.setenv("AFTERCARE_FLOW_MODE", "inline")
    monkeypatch.setenv("AFTERCARE_TRIAGE_LINGER_SECONDS", "0.5")
    get_settings.cache_clear()
    yield get_settings()
    deadline = time.monotonic() + 30
    while orchestration._triage_active and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not orchestration._triage_active


def pending(session: Session, team: Team, body: str) -> int:
    """A stored message and its triage request, with no flow started (as if Prefect had been down)."""
    from aftercare.models import TriageRequest

    patient, _ = patient_with_procedure(session, team.clinic)
    inbound = stored_text(session, patient, body)
    request = TriageRequest(source_kind="message", source_id=inbound.id or 0, patient_id=patient.id,
                            text_kind="free_text")
    session.add(request)
    session.commit()
    return request.id or 0


def _runs() -> int:
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["triage-response"]))))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_triage_response_flow_flags_and_pages(
    app_settings: Settings, session: Session, team: Team, fake_providers: FakeProviders
) -> None:
    request_id = pending(session, team, "there is pus coming from the wound")

    counts = asyncio.run(triage_response([request_id]))  # an async flow

    assert counts["claimed"] == 1 and counts["severities"] == {"urgent": 1} and counts["pages"] == {"sent": 2}
    [flag] = flags_of(session)
    assert flag.tier == FlagTier.urgent and counts["flags"] == [flag.id]
    assert team.primary.phone in [s.to for s in fake_providers.sent_sms]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["triage-response"])))
    assert runs and runs[0].state is not None and runs[0].state.is_completed()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_inline_mode_starts_one_flow_run_for_a_burst_of_requests(
    inline: Settings, session: Session, team: Team
) -> None:
    ids = [pending(session, team, f"fever of 39.{n}") for n in range(3)]
    before = _runs()
    for request_id in ids:  # what the after-commit hook does for each stored message
        orchestration.start_triage_flow([request_id], inline)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(r.status != TriageStatus.done for r in requests(session)):
        time.sleep(0.2)
    assert [r.status for r in requests(session)] == [TriageStatus.done] * 3
    assert len(flags_of(session)) == 3
    assert _runs() - before == 1  # the run lingers: the later requests join it


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_hook_starts_the_flow_inline_after_commit(inline: Settings, session: Session, team: Team) -> None:
    patient, _ = patient_with_procedure(session, team.clinic)
    inbound = stored_text(session, patient, "my calf is swollen")
    intake.request_triage(session, source_kind="message", source_id=inbound.id or 0, patient_id=patient.id,
                          text_kind="free_text")
    assert requests(session) == [] or requests(session)[0].status == TriageStatus.pending  # not before commit
    session.commit()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not flags_of(session):
        time.sleep(0.2)
    [flag] = flags_of(session)
    assert flag.rules[0] == "U6-calf"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_flags_tick_flow_and_the_ticker_job(app_settings: Settings, session: Session, team: Team) -> None:
    pending(session, team, "I fainted this morning")
    counts = flags_tick_flow()
    assert counts["triaged"]["claimed"] == 0  # within the grace period a triage-response run may still come
    [job] = [job for job in scheduler.JOBS if job.name == "flags-tick"]
    assert job.func.__name__ == "flags_tick" and scheduler.run_job(job, app_settings)


def test_deploy_flows_registers_triage_response_and_flags_tick() -> None:
    result = CliRunner().invoke(app, ["deploy-flows"])
    assert result.exit_code == 0, result.output
    assert "deployed triage-response/triage-response" in result.output
    assert "deployed flags-tick/flags-tick" in result.output
    with get_client(sync_client=True) as client:
        triage = client.read_deployment_by_name(orchestration.TRIAGE_DEPLOYMENT)
        tick = client.read_deployment_by_name("flags-tick/flags-tick")
    assert triage.entrypoint == "aftercare_flows.triage_response.triage_response" and not triage.schedules
    [schedule] = tick.schedules
    assert schedule.schedule.interval.total_seconds() == 60  # type: ignore[union-attr]
    assert tick.concurrency_options is not None and tick.concurrency_options.collision_strategy == "CANCEL_NEW"
