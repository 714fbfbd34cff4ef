"""The `bookings-tick` flow against a Prefect test harness, its deployment, and the ticker job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from aftercare_flows.bookings_tick import bookings_tick as bookings_tick_flow
from prefect.client.orchestration import get_client
from sqlmodel import Session, select
from typer.testing import CliRunner

from aftercare import scheduler
from aftercare.bookings import offers
from aftercare.bookings import scope as scopes
from aftercare.cli import app
from aftercare.models import BookingOffer, Channel, OfferStatus, VisitMode
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.booking_helpers import make_world, use_calendar, write_calendar
from tests.prefect_fixtures import prefect_harness  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_flow_expires_an_offer_and_offers_again(
    settings: Settings, session: Session, registry: ProtocolRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    world = make_world(session, settings, registry)
    scope = scopes.load(session, settings, patient=world.patient, procedure=world.procedure)
    offer = offers.make_offer(session, scope, visit="visit_2w", mode=VisitMode.video,
                              target=utcnow() + timedelta(days=7), channel=Channel.sms,
                              now=utcnow() - timedelta(hours=49))
    session.commit()

    counts = bookings_tick_flow()

    assert counts["expired"] == 1 and counts["reoffered"] == 1
    session.expire_all()
    assert session.exec(select(BookingOffer).where(BookingOffer.id == offer.id)).one().status == OfferStatus.expired
    [job] = [job for job in scheduler.JOBS if job.name == "bookings-tick"]
    assert job.func.__name__ == "bookings_tick" and scheduler.run_job(job, settings)


def test_deploy_flows_registers_bookings_tick_every_five_minutes() -> None:
    result = CliRunner().invoke(app, ["deploy-flows"])
    assert result.exit_code == 0, result.output
    assert "deployed bookings-tick/bookings-tick" in result.output
    with get_client(sync_client=True) as client:
        tick = client.read_deployment_by_name("bookings-tick/bookings-tick")
    assert tick.entrypoint == "aftercare_flows.bookings_tick.bookings_tick"
    [schedule] = tick.schedules
    assert schedule.schedule.interval.total_seconds() == 300  # type: ignore[union-attr]
    assert tick.concurrency_options is not None and tick.concurrency_options.collision_strategy == "CANCEL_NEW"
