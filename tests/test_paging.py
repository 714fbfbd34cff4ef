"""Paging and escalation with a controlled clock (time-machine): primary, then backup, then admin; acknowledging
stops it. Pages are read back from the fake Twilio and SendGrid. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlmodel import Session, col, select

from aftercare.flags import escalation, handling, paging
from aftercare.flags.ticker import flags_tick
from aftercare.models import AuditEvent, Flag, FlagStatus, StaffUser, TouchpointStatus
from aftercare.settings import Settings, get_settings
from tests.fakes import FakeProviders, replies
from tests.flag_helpers import (
    ADMIN,
    BACKUP,
    NIGHT,
    PRIMARY,
    SLUG,
    Team,
    flags_of,
    make_team,
    pages_of,
    patient_with_procedure,
    rota,
    triage_text,
    use_oncall,
)

MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the day shift (clinic zone: UTC)


@pytest.fixture
def app_settings(
    database_url: str, fake_provider_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    yield use_oncall(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture
def team(session: Session, app_settings: Settings) -> Team:
    return make_team(session)


def paged(fake: FakeProviders) -> list[tuple[str, str]]:
    """(channel, address) of every page the fake providers took, in order."""
    out = []
    for r in fake.requests:
        if r.is_create and r.path.endswith("/Messages.json"):
            out.append(("sms", r.form.get("To", "")))
        elif r.is_create and r.path == "/v3/mail/send":
            out.append(("email", r.json["personalizations"][0]["to"][0]["email"]))
    return out


def to_staff(fake: FakeProviders, team: Team) -> list[tuple[str, str]]:
    staff = {s.phone for s in (team.primary, team.backup, team.night, team.admin)} | {PRIMARY, BACKUP, NIGHT, ADMIN}
    return [p for p in paged(fake) if p[1] in staff]


def urgent_flag(session: Session, settings: Settings, team: Team) -> Flag:
    patient, _ = patient_with_procedure(session, team.clinic)
    triage_text(session, settings, patient, "fever of 39 since this morning")
    [flag] = flags_of(session, patient)
    return flag


def test_unacknowledged_pages_escalate_to_the_backup_then_the_admin(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    with time_machine.travel(MORNING, tick=False) as clock:
        flag = urgent_flag(session, app_settings, team)
        assert to_staff(fake_providers, team) == [("sms", team.primary.phone), ("email", PRIMARY)]
        assert flag.next_escalation_at == MORNING + timedelta(minutes=15)

        clock.shift(timedelta(minutes=14, seconds=59))
        assert escalation.escalate_due(app_settings)["escalated"] == 0
        assert len(to_staff(fake_providers, team)) == 2

        clock.shift(timedelta(seconds=1))  # 15 min: the backup
        assert flags_tick(app_settings)["escalation"]["escalated"] == 1
        assert to_staff(fake_providers, team)[2:] == [("sms", team.backup.phone), ("email", BACKUP)]
        backup_sms = [s for s in fake_providers.sent_sms if s.to == team.backup.phone][0]
        assert backup_sms.body == (f"Urgent flag #{flag.id} at Northside Clinic (not acknowledged: you are the "
                                   f"backup): https://aftercare.example/flags/{flag.id}")

        clock.shift(timedelta(minutes=9))
        flags_tick(app_settings)
        assert len(to_staff(fake_providers, team)) == 4
        clock.shift(timedelta(minutes=1))  # 10 more minutes (admin_after_minutes): the admin
        flags_tick(app_settings)
        assert to_staff(fake_providers, team)[4:] == [("sms", team.admin.phone), ("email", ADMIN)]

        clock.shift(timedelta(hours=3))  # after the admin nobody else is paged
        flags_tick(app_settings)
    assert len(to_staff(fake_providers, team)) == 6
    [flag] = flags_of(session)
    assert (flag.status, flag.escalation_level, flag.next_escalation_at) == (FlagStatus.open, 2, None)
    assert [(p.level, p.role, p.channel.value, p.status) for p in pages_of(session, flag)] == [
        (0, "primary", "sms", TouchpointStatus.sent), (0, "primary", "email", TouchpointStatus.sent),
        (1, "backup", "sms", TouchpointStatus.sent), (1, "backup", "email", TouchpointStatus.sent),
        (2, "admin", "sms", TouchpointStatus.sent), (2, "admin", "email", TouchpointStatus.sent)]
    escalated = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.escalated")).all()
    assert [e.detail["level"] for e in escalated] == [1, 2]


def test_acknowledging_stops_the_escalation(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    with time_machine.travel(MORNING, tick=False) as clock:
        flag = urgent_flag(session, app_settings, team)
        clock.shift(timedelta(minutes=16))
        flags_tick(app_settings)  # the backup is paged
        clock.shift(timedelta(minutes=1))
        assert handling.acknowledge(session, team.backup, flag, via="test") is True
        session.commit()
        clock.shift(timedelta(hours=1))
        flags_tick(app_settings)
    assert to_staff(fake_providers, team) == [("sms", team.primary.phone), ("email", PRIMARY),
                                              ("sms", team.backup.phone), ("email", BACKUP)]
    [flag] = flags_of(session)
    assert (flag.status, flag.acknowledged_by, flag.next_escalation_at) == (FlagStatus.acknowledged, team.backup.id,
                                                                            None)
    assert flag.acknowledged_at == MORNING + timedelta(minutes=17)


def test_acknowledged_before_the_timer_nobody_else_is_paged(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    with time_machine.travel(MORNING, tick=False) as clock:
        flag = urgent_flag(session, app_settings, team)
        clock.shift(timedelta(minutes=3))
        handling.acknowledge(session, team.primary, flag, via="test")
        session.commit()
        clock.shift(timedelta(minutes=30))
        assert escalation.escalate_due(app_settings)["escalated"] == 0
    assert len(to_staff(fake_providers, team)) == 2


def test_the_rota_decides_who_is_paged_at_night(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    with time_machine.travel(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), tick=False) as clock:
        urgent_flag(session, app_settings, team)
        clock.shift(timedelta(minutes=15))
        flags_tick(app_settings)
    assert to_staff(fake_providers, team) == [("sms", team.night.phone), ("email", NIGHT),
                                              ("sms", team.primary.phone), ("email", PRIMARY)]  # night's backup


def test_an_unreachable_primary_is_skipped_at_once(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    team.primary.active = False
    session.add(team.primary)
    session.commit()
    with time_machine.travel(MORNING, tick=False):
        flag = urgent_flag(session, app_settings, team)
    assert to_staff(fake_providers, team) == [("sms", team.backup.phone), ("email", BACKUP)]
    assert (flag.escalation_level, flag.next_escalation_at) == (1, MORNING + timedelta(minutes=10))
    skipped = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.page_unreachable")).one()
    assert skipped.detail == {"level": 0, "role": "primary"}
    assert paging.rota_problems(session, app_settings) == [f"{SLUG}: {PRIMARY} is not an active staff member"]


def test_a_doctor_without_a_phone_gets_email_pages_only(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    team.primary.phone = None
    session.add(team.primary)
    session.commit()
    with time_machine.travel(MORNING, tick=False):
        urgent_flag(session, app_settings, team)
    assert to_staff(fake_providers, team) == [("email", PRIMARY)]


def test_a_clinic_without_a_rota_pages_every_physician_then_its_admins(
    session: Session, team: Team, fake_providers: FakeProviders, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = use_oncall(monkeypatch, tmp_path, clinics={"elsewhere": rota()})
    with time_machine.travel(MORNING, tick=False) as clock:
        urgent_flag(session, settings, team)
        physicians = {("sms", s.phone) for s in (team.primary, team.backup, team.night)}
        assert {p for p in to_staff(fake_providers, team) if p[0] == "sms"} == physicians
        clock.shift(timedelta(minutes=15))  # level 1 (backup) has nobody: straight on to the admins
        flags_tick(app_settings := settings)
        assert escalation.escalate_due(app_settings)["escalated"] == 0
    assert to_staff(fake_providers, team)[-2:] == [("sms", team.admin.phone), ("email", ADMIN)]


def test_a_page_the_provider_may_not_have_taken_is_sent_again(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    fake_providers.script(replies.server_error(503), channel="sms", to=team.primary.phone)
    fake_providers.script(replies.rate_limited(retry_after=None), channel="sms", to=team.primary.phone)
    with time_machine.travel(MORNING, tick=False) as clock:
        flag = urgent_flag(session, app_settings, team)
        first = [p for p in pages_of(session, flag) if p.channel.value == "sms"][0]
        assert (first.status, first.attempts, first.error_code) == (TouchpointStatus.scheduled, 1, "503")
        clock.shift(timedelta(seconds=30))
        flags_tick(app_settings)  # 429: still queued
        clock.shift(timedelta(seconds=30))
        flags_tick(app_settings)
    sms = [p for p in pages_of(session, flag) if p.channel.value == "sms"][0]
    assert (sms.status, sms.attempts) == (TouchpointStatus.sent, 3)
    assert len([s for s in fake_providers.sent_sms if s.to == team.primary.phone]) == 1  # the fake took one


def test_a_page_that_keeps_failing_is_marked_failed_and_escalation_goes_on(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    fake_providers.rule(replies.twilio_error(21211), channel="sms", to=team.primary.phone)
    with time_machine.travel(MORNING, tick=False) as clock:
        flag = urgent_flag(session, app_settings, team)
        sms = [p for p in pages_of(session, flag) if p.channel.value == "sms"][0]
        assert (sms.status, sms.error_code) == (TouchpointStatus.failed, "21211")
        clock.shift(timedelta(minutes=15))
        flags_tick(app_settings)
    assert ("sms", team.backup.phone) in to_staff(fake_providers, team)
    failed = session.exec(select(AuditEvent).where(AuditEvent.action == "flag.page_failed")).one()
    assert failed.entity_id == flag.id


def test_pages_of_two_tickers_at_once_are_sent_once(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with time_machine.travel(MORNING, tick=False) as clock:
        urgent_flag(session, app_settings, team)
        clock.shift(timedelta(minutes=15))
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda _: escalation.escalate_due(app_settings)["escalated"], range(3)))
    assert sum(results) == 1
    assert to_staff(fake_providers, team).count(("sms", team.backup.phone)) == 1
    staff = session.exec(select(StaffUser).where(col(StaffUser.email) == BACKUP)).one()
    assert staff.id == team.backup.id


def test_a_broken_oncall_file_never_stops_a_page(
    session: Session, app_settings: Settings, team: Team, fake_providers: FakeProviders,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import os

    from aftercare.flags.oncall import oncall_path

    path = oncall_path(app_settings)
    with time_machine.travel(MORNING, tick=False):
        urgent_flag(session, app_settings, team)  # the good file is read (and remembered)
    path.write_text(path.read_text() + "\n  pager: yes\n", encoding="utf-8")  # an admin's typo
    os.utime(path, (MORNING.timestamp() + 5, MORNING.timestamp() + 5))
    with time_machine.travel(MORNING + timedelta(minutes=1), tick=False):
        flag = urgent_flag(session, app_settings, team)
    assert len(pages_of(session, flag)) == 2  # the last good rota: the primary
    assert "paging with the last good version until it is fixed" in caplog.text
    assert to_staff(fake_providers, team).count(("sms", team.primary.phone)) == 2
