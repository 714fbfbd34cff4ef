"""The demo clinic: real staff, patients and care plans; idempotent; never in production."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select
from typer.testing import CliRunner

from aftercare import demo
from aftercare.cli import app
from aftercare.db import get_engine
from aftercare.models import (
    ApiToken,
    Channel,
    Clinic,
    ConsentEvent,
    Patient,
    Procedure,
    ProcedureStatus,
    Role,
    StaffUser,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.planning import PAST_AT_PLANNING
from aftercare.protocols import ProtocolRegistry
from aftercare.security import hash_token, verify_password
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic

FICTIONAL_NANP = re.compile(r"^\+1\d{3}55501\d\d$")


def _counts(session: Session) -> dict[str, int]:
    return {
        table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
        for table in SQLModel.metadata.sorted_tables
    }


def test_seed_builds_a_realistic_clinic(session: Session, settings: Settings, registry: ProtocolRegistry) -> None:
    now = utcnow()
    result = demo.seed(session, settings=settings, registry=registry, now=now)

    clinic = session.exec(select(Clinic)).one()
    assert (clinic.name, clinic.timezone) == ("Clínica Demo Los Cabos", "America/Mazatlan")
    assert clinic.phone.startswith("+52624")
    staff = list(session.exec(select(StaffUser)))
    assert Counter(s.role for s in staff) == {Role.admin: 1, Role.coordinator: 2, Role.physician: 3}
    assert all(verify_password(s.password_hash, demo.DEMO_PASSWORD) for s in staff)
    assert all(s.email.endswith("@example.org") for s in staff)

    patients = list(session.exec(select(Patient)))
    assert len(patients) == result.patients_created == 13
    assert {p.language for p in patients} == {"en", "es"}
    assert len({p.timezone for p in patients}) >= 9
    assert all(FICTIONAL_NANP.match(p.phone_e164) for p in patients if p.phone_e164)
    assert all(re.search(r"@example\.(org|com)$", p.email) for p in patients if p.email)
    assert any(p.phone_e164 is None for p in patients) and any(p.email is None for p in patients)
    consented = set(session.exec(select(ConsentEvent.patient_id).where(ConsentEvent.channel == Channel.sms)))
    assert consented == {p.id for p in patients if p.phone_e164}

    procs = list(session.exec(select(Procedure)))
    assert len(procs) == result.procedures_created == 14
    assert Counter(p.status for p in procs) == {ProcedureStatus.active: 13, ProcedureStatus.cancelled: 1}
    assert all(p.plan_built_at is not None for p in procs)
    zone = ZoneInfo(clinic.timezone)
    days = sorted((now.astimezone(zone).date() - p.performed_at.astimezone(zone).date()).days for p in procs)
    assert days[0] == -14 and days[-1] == 400 and {0, 1, 2, 3, 5, 10, 20, 45, 100, 200}.issubset(days)

    touchpoints = list(session.exec(select(Touchpoint)))
    assert len(touchpoints) == result.touchpoints_written
    assert {tp.procedure_id for tp in touchpoints} == {p.id for p in procs}
    # Recorded before the injection, so what is past today is overdue, not skipped as "past at planning".
    assert not [tp for tp in touchpoints if tp.cancel_reason == PAST_AT_PLANNING]
    overdue = [tp for tp in touchpoints if tp.status == TouchpointStatus.scheduled and tp.due_at < now]
    assert len(overdue) > 50
    upcoming = [tp for tp in touchpoints if tp.status == TouchpointStatus.scheduled and tp.due_at > now]
    assert upcoming

    cancelled = next(p for p in procs if p.status == ProcedureStatus.cancelled)
    assert cancelled.cancel_reason
    mine = [tp for tp in touchpoints if tp.procedure_id == cancelled.id]
    assert mine and all(tp.status == TouchpointStatus.cancelled and tp.cancel_reason for tp in mine)

    both_knees = [p for p in procs if p.external_id.startswith("DEMO-006")]
    assert {p.knee_side for p in both_knees} == {"left", "right"}
    assert len({p.patient_id for p in both_knees}) == 1 and len({p.performed_at for p in both_knees}) == 1
    merged = [tp for tp in touchpoints if tp.status == TouchpointStatus.merged]
    assert merged and {tp.procedure_id for tp in merged} <= {p.id for p in both_knees}
    assert all(tp.merged_into_id is not None for tp in merged)

    token = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(demo.demo_token(settings)))).one()
    owner = session.get(StaffUser, token.staff_id)
    assert owner is not None and owner.role == Role.coordinator

    creds = demo.credentials(session, settings)
    assert creds is not None and creds.api_token == demo.demo_token(settings)
    assert len(creds.logins) == 6 and sum(login.on_call for login in creds.logins) == 1


def test_seeding_twice_adds_nothing(session: Session, settings: Settings, registry: ProtocolRegistry) -> None:
    demo.seed(session, settings=settings, registry=registry)
    before = _counts(session)
    again = demo.seed(session, settings=settings, registry=registry, now=utcnow() + timedelta(days=3))
    assert (again.staff_created, again.patients_created, again.procedures_created) == (0, 0, 0)
    assert _counts(session) == before


def test_refused_in_production(session: Session, settings: Settings, registry: ProtocolRegistry) -> None:
    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(demo.DemoRefused, match="development only"):
        demo.seed(session, settings=production, registry=registry)
    with pytest.raises(demo.DemoRefused):
        demo.reset(session, settings=production)
    session.rollback()
    assert session.exec(select(Clinic)).first() is None
    assert demo.credentials(session, production) is None


def test_reset_wipes_the_demo_but_never_a_real_clinic(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    demo.seed(session, settings=settings, registry=registry)
    demo.reset(session, settings=settings)
    assert all(n == 0 for n in _counts(session).values())

    make_clinic(session)  # a real clinic
    with pytest.raises(demo.DemoRefused, match="other clinics"):
        demo.reset(session, settings=settings)
    assert session.exec(select(func.count()).select_from(Clinic)).one() == 1


def test_cli_seed_prints_logins_and_token(database_url: str, settings: Settings) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "seed"])
    assert first.exit_code == 0, first.output
    assert "14 procedures" in first.output
    assert "coordinator.demo@example.org" in first.output and demo.DEMO_PASSWORD in first.output
    assert demo.demo_token(settings) in first.output

    second = runner.invoke(app, ["demo", "seed"])
    assert second.exit_code == 0 and "all there already" in second.output

    reset = runner.invoke(app, ["demo", "seed", "--reset"])
    assert reset.exit_code == 0 and "14 procedures" in reset.output


def test_cli_seed_refused_in_production(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from aftercare.settings import get_settings

    monkeypatch.setenv("AFTERCARE_ENVIRONMENT", "production")
    monkeypatch.setenv("AFTERCARE_SECRET_KEY", "x" * 40)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["demo", "seed"])
    assert result.exit_code == 2
    assert "development only" in result.output
    with Session(get_engine()) as session:
        assert session.exec(select(col(Clinic.id))).first() is None
