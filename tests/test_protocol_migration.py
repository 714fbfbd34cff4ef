"""Moving enrolled procedures to a new protocol version: preview, apply, sent history untouched."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlmodel import Session, col, select

from aftercare import plans, procedures
from aftercare import protocol_migration as migration
from aftercare.errors import InputError
from aftercare.models import AuditEvent, Clinic, Procedure, ProtocolSnapshot, Touchpoint, TouchpointStatus
from aftercare.protocols import Protocol, ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic, procedure_in

PROTOCOL = "msc-knee-injection"
TORONTO = ZoneInfo("America/Toronto")


def _write_v2(settings: Settings, folder: Path) -> Protocol:
    """1.1.0: check-in day 5 moves to day 6, day 1 to 11:00, a day-10 check-in, no rehab P4, a longer rest_d2 window."""
    body: dict[str, Any] = yaml.safe_load((settings.config_dir / "protocols" / f"{PROTOCOL}.yaml").read_text())
    body["version"] = "1.1.0"
    items = []
    for item in body["touchpoints"]:
        if item["id"] == "checkin_d5":
            item["at"] = {"days": 6, "time": "10:00"}
        if item["id"] == "checkin_d1":
            item["at"] = {"days": 1, "time": "11:00"}
        if item["id"] == "rest_d2":
            item["window"] = {"hours": 6}
        if item["id"] != "rehab_p4":
            items.append(item)
    items.append(
        {"id": "checkin_d10", "kind": "checkin", "survey": "checkin", "template": "checkin_invite",
         "at": {"days": 10, "time": "10:00"}, "window": {"hours": 8}, "clinical": True}
    )
    body["touchpoints"] = items
    (folder / "protocols").mkdir(parents=True, exist_ok=True)
    (folder / "protocols" / f"{PROTOCOL}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return ProtocolRegistry.from_dir(folder / "protocols").get(PROTOCOL)


def _record(session: Session, settings: Settings, registry: ProtocolRegistry, external_id: str, **kw: Any) -> int:
    clinic = session.exec(select(Clinic)).first() or make_clinic(session)
    recorded = procedures.record(
        session, clinic=clinic, data=procedure_in(external_id=external_id, **kw), registry=registry,
        settings=settings, actor="test", source="test",
    )
    session.commit()
    assert recorded.procedure.id is not None
    plans.build_for(session, [recorded.procedure.id])
    session.commit()
    return recorded.procedure.id


def _rows(session: Session, procedure_id: int) -> dict[str, Touchpoint]:
    session.expire_all()
    found = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure_id, Touchpoint.channel == "sms"))
    return {t.key: t for t in found}


def _snapshot(session: Session, procedure_id: int) -> list[tuple[Any, ...]]:
    session.expire_all()
    rows = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure_id).order_by(col(Touchpoint.id)))
    return [(t.id, t.key, t.channel, t.status, t.due_at, t.cancel_reason) for t in rows]


def _mark_sent(session: Session, procedure_id: int, *keys: str) -> None:
    for key, row in _rows(session, procedure_id).items():
        if key in keys:
            row.status, row.sent_at = TouchpointStatus.sent, utcnow()
            session.add(row)
    session.commit()


def _local(day: datetime, days: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day.astimezone(TORONTO).date() + timedelta(days=days), time(hh, mm), TORONTO)


@pytest.fixture
def v2(settings: Settings, tmp_path: Path) -> Protocol:
    return _write_v2(settings, tmp_path / "config")


def test_dry_run_previews_the_unsent_changes_and_writes_nothing(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol
) -> None:
    procedure_id = _record(session, settings, registry, "PROC-1")
    _mark_sent(session, procedure_id, "discharge", "checkin_d1")
    before = _snapshot(session, procedure_id)

    report = migration.migrate(protocol=v2, dry_run=True, actor="test")

    assert report.to_version == "1.1.0" and report.dry_run
    [preview] = report.procedures
    assert (preview.procedure_id, preview.from_version, preview.to_version) == (procedure_id, "1.0.0", "1.1.0")
    performed = session.get(Procedure, procedure_id).performed_at  # type: ignore[union-attr]
    got = {(c.change, c.key, c.channel): (c.old_due, c.new_due) for c in preview.changes}
    assert got == {
        ("moved", "checkin_d5", "sms"): (_local(performed, 5, 10), _local(performed, 6, 10)),
        ("added", "checkin_d10", "sms"): (None, _local(performed, 10, 10)),
        ("removed", "rehab_p4", "sms"): (_local(performed, 85, 9), None),
        ("changed", "rest_d2", "sms"): (_local(performed, 2, 17), _local(performed, 2, 17)),
    }
    notes = {c.key: c.note for c in preview.changes}
    assert notes["rest_d2"] == "window changed" and notes["checkin_d5"] == ""
    assert got[("moved", "checkin_d5", "sms")][1].tzinfo is not None  # local times in the patient's zone
    assert preview.kept_history >= 2  # discharge (sms + email) and checkin_d1 were sent: not in the diff
    assert _snapshot(session, procedure_id) == before
    session.expire_all()
    assert session.get(Procedure, procedure_id).protocol_version == "1.0.0"  # type: ignore[union-attr]


def test_apply_moves_adds_and_cancels_unsent_touchpoints_and_keeps_sent_ones(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol
) -> None:
    procedure_id = _record(session, settings, registry, "PROC-1")
    _mark_sent(session, procedure_id, "discharge", "checkin_d1")
    sent_before = {k: (r.status, r.due_at) for k, r in _rows(session, procedure_id).items() if k == "checkin_d1"}
    performed = session.get(Procedure, procedure_id).performed_at  # type: ignore[union-attr]

    report = migration.migrate(protocol=v2, dry_run=False, actor="cli")

    [applied] = report.procedures
    assert applied.applied and [applied.count(k) for k in ("moved", "added", "removed", "changed")] == [1, 1, 1, 1]
    rows = _rows(session, procedure_id)
    assert rows["checkin_d5"].status == TouchpointStatus.scheduled
    assert rows["checkin_d5"].due_at == _local(performed, 6, 10)
    assert rows["checkin_d10"].status == TouchpointStatus.scheduled
    assert rows["checkin_d10"].due_at == _local(performed, 10, 10)
    assert rows["rehab_p4"].status == TouchpointStatus.cancelled
    assert rows["rehab_p4"].cancel_reason == "protocol migrated to 1.1.0"
    assert rows["rest_d2"].window_end - rows["rest_d2"].planned_at == timedelta(hours=6)
    assert {k: (r.status, r.due_at) for k, r in rows.items() if k == "checkin_d1"} == sent_before  # 10:00, sent
    session.expire_all()
    procedure = session.get(Procedure, procedure_id)
    assert procedure is not None and procedure.protocol_version == "1.1.0"
    stored = session.exec(select(ProtocolSnapshot).where(ProtocolSnapshot.version == "1.1.0")).one()
    assert stored.protocol_id == PROTOCOL
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.protocol_migrated")).all()
    assert (event.actor, event.entity_id) == ("cli", procedure_id)
    assert (event.detail["old"], event.detail["new"]) == ("1.0.0", "1.1.0")
    assert (event.detail["moved"], event.detail["added"], event.detail["removed"]) == (1, 1, 1)

    # a second run finds nothing to do; a plan rebuilt later (reschedule) uses the new version
    before = _snapshot(session, procedure_id)
    again = migration.migrate(protocol=v2, dry_run=False, actor="cli")
    assert again.procedures == [] and _snapshot(session, procedure_id) == before
    moved = procedures.move(session, procedure, performed + timedelta(days=1), settings, actor="test")
    session.commit()
    assert moved > 0 and _rows(session, procedure_id)["checkin_d5"].due_at == _local(performed, 7, 10)


def test_only_active_procedures_on_older_versions_move(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol, tmp_path: Path
) -> None:
    old = _record(session, settings, registry, "PROC-OLD")
    cancelled = _record(session, settings, registry, "PROC-CANCELLED", patient={"last_name": "Ortiz"})
    cancelled_row = session.get(Procedure, cancelled)
    assert cancelled_row is not None
    procedures.cancel(session, cancelled_row, "patient declined", actor="test")
    session.commit()
    new = _record(session, settings, ProtocolRegistry({PROTOCOL: v2}), "PROC-NEW", patient={"last_name": "Ruiz"})
    untouched = {pid: _snapshot(session, pid) for pid in (cancelled, new)}

    report = migration.migrate(protocol=v2, dry_run=False, actor="cli")

    assert [p.procedure_id for p in report.procedures] == [old]
    assert {pid: _snapshot(session, pid) for pid in (cancelled, new)} == untouched
    # back to 1.0.0 is an explicit --to-version: the stored snapshot is used, only older versions move
    assert migration.migrate(protocol=v2, to_version="1.0.0", dry_run=True, actor="cli").procedures == []
    with pytest.raises(InputError) as problem:
        migration.migrate(protocol=v2, to_version="9.9.9", dry_run=True, actor="cli")
    assert problem.value.field == "to_version" and "9.9.9" in problem.value.message


def test_same_day_merges_between_two_plans_follow_the_move(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol
) -> None:
    """Both knees the same day: one check-in a day, before and after both plans move to 1.1.0."""
    when = utcnow() + timedelta(days=10)
    left = _record(session, settings, registry, "PROC-L", performed_at=when)
    right = _record(session, settings, registry, "PROC-R", performed_at=when, knee_side="right")
    assert _rows(session, right)["checkin_d5"].merged_into_id == _rows(session, left)["checkin_d5"].id

    migration.migrate(protocol=v2, dry_run=False, actor="cli")

    l_rows, r_rows = _rows(session, left), _rows(session, right)
    for key in ("checkin_d5", "checkin_d10"):
        assert l_rows[key].status == TouchpointStatus.scheduled
        assert r_rows[key].status == TouchpointStatus.merged
        assert r_rows[key].merged_into_id == l_rows[key].id
        assert r_rows[key].due_at == l_rows[key].due_at
    assert r_rows["rehab_p4"].status == l_rows["rehab_p4"].status == TouchpointStatus.cancelled


def test_a_move_to_another_day_releases_rows_merged_into_it(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol
) -> None:
    """The second plan is on a version the migration does not touch: its merged check-in must go out itself."""
    when = utcnow() + timedelta(days=10)
    left = _record(session, settings, registry, "PROC-L", performed_at=when)
    right = _record(session, settings, registry, "PROC-R", performed_at=when, knee_side="right")
    session.exec(select(Procedure).where(Procedure.id == right)).one().protocol_version = "1.1.0"  # pretend
    session.commit()

    migration.migrate(protocol=v2, dry_run=False, actor="cli")

    released = _rows(session, right)["checkin_d5"]
    assert _rows(session, left)["checkin_d5"].due_at != released.due_at
    assert (released.status, released.merged_into_id, released.cancel_reason) == (
        TouchpointStatus.scheduled, None, None
    )


def _cli(monkeypatch: pytest.MonkeyPatch, config_dir: Path, *args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from aftercare.cli import app
    from aftercare.settings import get_settings

    monkeypatch.setenv("AFTERCARE_CONFIG_DIR", str(config_dir))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["protocol", "migrate", *args])
    get_settings.cache_clear()
    return result.exit_code, result.stdout, result.stderr


def test_cli_previews_then_applies(
    session: Session, settings: Settings, registry: ProtocolRegistry, v2: Protocol, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    procedure_id = _record(session, settings, registry, "PROC-1")
    before = _snapshot(session, procedure_id)

    code, out, err = _cli(monkeypatch, tmp_path / "config", "--protocol", PROTOCOL, "--dry-run")

    assert code == 0, err
    assert f"procedure {procedure_id} (PROC-1)" in out and "1.0.0 -> 1.1.0" in out and "dry run" in out
    moved = next(line for line in out.splitlines() if "checkin_d5" in line)
    assert moved.split()[:3] == ["moved", "checkin_d5", "sms"] and moved.count("10:00") == 2 and "->" in moved
    assert "(cancelled)" in next(line for line in out.splitlines() if "rehab_p4" in line)
    assert "total: 2 moved, 1 added, 1 removed, 1 changed" in out  # check-in day 1 is not sent here
    assert "run again without --dry-run to apply" in out
    assert _snapshot(session, procedure_id) == before

    code, out, err = _cli(monkeypatch, tmp_path / "config", "--protocol", PROTOCOL)
    assert code == 0, err
    assert "(applied, one transaction per procedure)" in out
    assert _rows(session, procedure_id)["rehab_p4"].status == TouchpointStatus.cancelled

    code, out, err = _cli(monkeypatch, tmp_path / "config", "--protocol", PROTOCOL, "--dry-run")
    assert code == 0 and "0 active procedure(s)" in out


def test_cli_names_the_bad_option(
    session: Session, settings: Settings, v2: Protocol, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _cli(monkeypatch, tmp_path / "config", "--protocol", "no-such-protocol", "--dry-run")
    assert code == 2 and err.startswith("error: protocol: unknown protocol 'no-such-protocol'")
    code, out, err = _cli(monkeypatch, tmp_path / "config", "--protocol", PROTOCOL, "--to-version", "7.0")
    assert code == 2 and err.startswith("error: --to-version: protocol msc-knee-injection has no version '7.0'")
    assert "Traceback" not in out + err
