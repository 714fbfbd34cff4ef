"""The three ways `dispatch_due` runs: the `dispatch-due` flow (and its deployment), the ticker, the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aftercare_flows.dispatch_due import dispatch_due as dispatch_due_flow
from prefect.client.orchestration import get_client
from sqlmodel import Session, select
from typer.testing import CliRunner

from aftercare import scheduler
from aftercare.cli import app
from aftercare.models import Channel, Clinic, OutboxMessage, Touchpoint, TouchpointStatus
from aftercare.settings import Settings, get_settings
from tests.dispatch_helpers import make_patient, make_procedure, make_touchpoint
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.prefect_fixtures import prefect_harness  # noqa: F401  (session fixture)


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


@pytest.fixture
def fake_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


def due(session: Session, clinic: Clinic) -> Touchpoint:
    patient = make_patient(session, clinic)
    return make_touchpoint(session, make_procedure(session, clinic, patient), channel=Channel.sms)


def status(session: Session, tp: Touchpoint) -> TouchpointStatus:
    session.expire_all()
    fresh = session.get(Touchpoint, tp.id)
    assert fresh is not None
    return fresh.status


def test_cli_dispatch_once_sends_and_prints_the_counts(
    settings: Settings, session: Session, clinic: Clinic
) -> None:
    tp = due(session, clinic)
    result = CliRunner().invoke(app, ["dispatch", "--once"])
    assert result.exit_code == 0, result.output
    assert "sms via console" in result.output
    assert "sent: 1" in result.output.replace("  ", "")
    assert status(session, tp) == TouchpointStatus.sent
    stored = session.exec(select(OutboxMessage)).one()  # no credentials: the console outbox has it
    assert stored.message_id == f"tp-{tp.id}" and "STOP" in stored.body and "Ana" in stored.body


def test_cli_dispatch_explains_an_unmigrated_database(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["dispatch", "--once"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "aftercare db upgrade" in result.output and "Traceback" not in result.output


def test_the_ticker_runs_dispatch_due(fake_settings: Settings, session: Session, clinic: Clinic,
                                      fake_providers: FakeProviders) -> None:
    tp = due(session, clinic)
    [job] = [job for job in scheduler.JOBS if job.name == "dispatch-due"]
    assert scheduler.run_job(job, fake_settings)
    assert status(session, tp) == TouchpointStatus.sent and fake_providers.creates("sms") == 1


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_the_dispatch_due_flow_sends_through_the_providers(
    fake_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    tp = due(session, clinic)
    counts = dispatch_due_flow()
    assert counts["sent"] == 1 and counts["claimed"] == 1
    assert status(session, tp) == TouchpointStatus.sent
    assert [sms.message_id for sms in fake_providers.sent_sms] == [f"tp-{tp.id}"]


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_deploy_flows_registers_dispatch_due_every_60_seconds_one_at_a_time() -> None:
    result = CliRunner().invoke(app, ["deploy-flows"])
    assert result.exit_code == 0, result.output
    assert "deployed dispatch-due/dispatch-due" in result.output
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("dispatch-due/dispatch-due")
    assert deployment.entrypoint == "aftercare_flows.dispatch_due.dispatch_due"
    [schedule] = deployment.schedules
    assert schedule.schedule.interval.total_seconds() == 60  # type: ignore[union-attr]
    assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options is not None
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
