"""Moving enrolled procedures to a new protocol version: preview the change to what is not yet sent, then apply.

Only touchpoints still to come change (scheduled or held; merged and "past at planning" rows may come back).
Sent, answered or failed ones are history and stay as they are. Each procedure moves in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare import audit, plans
from aftercare.db import session_scope
from aftercare.errors import InputError, NotFoundError
from aftercare.models import (
    OPEN_TOUCHPOINT_STATUSES,
    Clinic,
    Patient,
    Procedure,
    ProcedureStatus,
    ProtocolSnapshot,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.planning import PAST_AT_PLANNING, PlannedTouchpoint, build_plan
from aftercare.protocols import Protocol
from aftercare.timeutil import utcnow

ChangeKind = Literal["added", "removed", "moved", "changed"]
_NOT_YET_SENT = (*OPEN_TOUCHPOINT_STATUSES, TouchpointStatus.merged)


def version_key(version: str) -> tuple[int, ...]:
    """"1.2" < "1.2.1" < "1.10.0"; "1.2" == "1.2.0"."""
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


@dataclass(frozen=True)
class TouchpointChange:
    """One not-yet-sent touchpoint the new version adds, removes, moves or rewrites."""

    change: ChangeKind
    key: str
    channel: str
    old_due: datetime | None  # local time in the patient's zone
    new_due: datetime | None
    note: str = ""


@dataclass
class ProcedureMigration:
    """What moving one procedure to the new version changes (or changed)."""

    procedure_id: int
    external_id: str
    patient_id: int
    timezone: str
    from_version: str
    to_version: str
    changes: list[TouchpointChange] = field(default_factory=list)
    kept_history: int = 0  # touchpoints already sent/answered/skipped, left untouched
    applied: bool = False

    def count(self, change: ChangeKind) -> int:
        return sum(1 for c in self.changes if c.change == change)


@dataclass
class MigrationReport:
    protocol_id: str
    to_version: str
    dry_run: bool
    procedures: list[ProcedureMigration] = field(default_factory=list)
    not_yet_planned: int = 0  # procedures still waiting for their plan (built on their recorded version)


def target_protocol(session: Session, *, current: Protocol, to_version: str | None) -> Protocol:
    """The protocol to migrate to: the file's version (stored now) or an older stored snapshot."""
    if to_version is None or to_version == current.version:
        plans.ensure_snapshot(session, current)
        return current
    snapshot = session.exec(
        select(ProtocolSnapshot).where(
            ProtocolSnapshot.protocol_id == current.id, ProtocolSnapshot.version == to_version
        )
    ).first()
    if snapshot is None:
        raise InputError(
            "to_version",
            f"protocol {current.id} has no version {to_version!r}: the file is at {current.version} "
            "and no plan was ever built from that version",
        )
    return Protocol.model_validate(snapshot.body)


def candidates(session: Session, *, protocol: Protocol) -> list[int]:
    """Active procedures of this protocol recorded on an older version."""
    rows = session.exec(
        select(Procedure.id, Procedure.protocol_version).where(
            Procedure.protocol_id == protocol.id, Procedure.status == ProcedureStatus.active
        )
    )
    target = version_key(protocol.version)
    return sorted(pid for pid, version in rows if pid is not None and version_key(version) < target)


def _not_yet_planned(session: Session, protocol: Protocol) -> int:
    rows = session.exec(
        select(Procedure.id).where(
            Procedure.protocol_id == protocol.id,
            Procedure.status == ProcedureStatus.planning,
            Procedure.protocol_version != protocol.version,
        )
    )
    return len(list(rows))


def _reopenable(row: Touchpoint) -> bool:
    if row.ambiguous_at is not None:
        return False  # maybe sent already: history until the dispatcher reconciles it
    return row.status in _NOT_YET_SENT or (
        row.status == TouchpointStatus.skipped and row.cancel_reason == PAST_AT_PLANNING
    )


def _content_note(row: Touchpoint, new: PlannedTouchpoint) -> str:
    notes = []
    if row.template != new.template:
        notes.append(f"template {row.template} -> {new.template}")
    if row.kind != new.kind:
        notes.append(f"kind {row.kind} -> {new.kind}")
    if row.window_end - row.planned_at != new.window_end - new.planned_at:
        notes.append("window changed")
    if row.clinical != new.clinical or row.payload != new.payload:
        notes.append("content changed")
    return ", ".join(notes)


@dataclass
class _Diff:
    migration: ProcedureMigration
    moves: list[tuple[Touchpoint, PlannedTouchpoint]] = field(default_factory=list)
    removals: list[Touchpoint] = field(default_factory=list)
    additions: list[PlannedTouchpoint] = field(default_factory=list)


def _diff(session: Session, procedure: Procedure, protocol: Protocol, now: datetime, lock: bool) -> _Diff:
    clinic = session.get(Clinic, procedure.clinic_id)
    patient = session.get(Patient, procedure.patient_id)
    assert clinic is not None and patient is not None and procedure.id is not None
    zone = ZoneInfo(patient.timezone)
    new_plan = {
        (tp.key, str(tp.channel)): tp
        for tp in build_plan(protocol, plans.plan_context(clinic, patient, procedure.performed_at), now)
    }
    query = select(Touchpoint).where(Touchpoint.procedure_id == procedure.id).order_by(col(Touchpoint.due_at))
    rows = list(session.exec(query.with_for_update() if lock else query))
    diff = _Diff(
        ProcedureMigration(
            procedure_id=procedure.id,
            external_id=procedure.external_id,
            patient_id=procedure.patient_id,
            timezone=patient.timezone,
            from_version=procedure.protocol_version,
            to_version=protocol.version,
        )
    )
    changes = diff.migration.changes
    for row in rows:
        new = new_plan.pop((row.key, str(row.channel)), None)
        if not _reopenable(row):
            diff.migration.kept_history += 1
            continue
        is_open = row.status in _NOT_YET_SENT
        old_due = row.due_at.astimezone(zone)
        if new is None:
            if is_open:
                diff.removals.append(row)
                changes.append(TouchpointChange("removed", row.key, row.channel, old_due, None))
            continue
        if not is_open and new.status not in OPEN_TOUCHPOINT_STATUSES:
            continue  # was past at planning and still is
        note = _content_note(row, new)
        if new.status not in OPEN_TOUCHPOINT_STATUSES:
            note = ", ".join(filter(None, [note, f"skipped: {new.cancel_reason}"]))
        if row.due_at != new.due_at or not is_open:
            diff.moves.append((row, new))
            changes.append(TouchpointChange("moved", row.key, row.channel, old_due, new.due_at.astimezone(zone), note))
        elif note:
            diff.moves.append((row, new))
            changes.append(TouchpointChange("changed", row.key, row.channel, old_due, old_due, note))
    for new in new_plan.values():
        if new.status in OPEN_TOUCHPOINT_STATUSES:  # new items already in the past are not added
            diff.additions.append(new)
            changes.append(TouchpointChange("added", new.key, new.channel, None, new.due_at.astimezone(zone)))
    changes.sort(key=lambda c: (c.new_due or c.old_due or now, c.key, c.channel))
    return diff


def preview(session: Session, *, procedure: Procedure, protocol: Protocol) -> ProcedureMigration:
    """What moving this procedure to `protocol` would change. Writes nothing."""
    return _diff(session, procedure, protocol, utcnow(), lock=False).migration


def _same_day_open(
    session: Session, procedure: Procedure, template: str, channel: str, day: date, zone: ZoneInfo
) -> int | None:
    """An open touchpoint of another plan of the patient sending the same message that day."""
    others = session.exec(
        select(Touchpoint).where(
            Touchpoint.patient_id == procedure.patient_id,
            Touchpoint.procedure_id != procedure.id,
            Touchpoint.template == template,
            Touchpoint.channel == channel,
            col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES),
        )
    )
    return next((o.id for o in others if o.due_at.astimezone(zone).date() == day), None)


def _place(session: Session, procedure: Procedure, row: Touchpoint, new: PlannedTouchpoint, zone: ZoneInfo) -> None:
    row.kind, row.template, row.clinical, row.payload = new.kind, new.template, new.clinical, dict(new.payload)
    row.planned_at, row.due_at, row.window_end = new.planned_at, new.due_at, new.window_end
    row.status, row.cancel_reason, row.merged_into_id = new.status, new.cancel_reason, None
    if new.status in OPEN_TOUCHPOINT_STATUSES:
        target = _same_day_open(session, procedure, new.template, new.channel, new.due_at.astimezone(zone).date(), zone)
        if target is not None:
            row.status, row.merged_into_id = TouchpointStatus.merged, target
            row.cancel_reason = "same message the same day in another plan of this patient"


def _release_merged_into(session: Session, touchpoint_ids: list[int], zone: ZoneInfo, now: datetime) -> None:
    """Rows of other plans merged into a touchpoint that moved day or was cancelled go out on their own."""
    if not touchpoint_ids:
        return
    anchors = {t.id: t for t in session.exec(select(Touchpoint).where(col(Touchpoint.id).in_(touchpoint_ids)))}
    dependents = session.exec(
        select(Touchpoint).where(
            col(Touchpoint.merged_into_id).in_(touchpoint_ids), Touchpoint.status == TouchpointStatus.merged
        )
    )
    for row in dependents:
        anchor = anchors[row.merged_into_id]
        same_day = anchor.status in OPEN_TOUCHPOINT_STATUSES and (
            anchor.due_at.astimezone(zone).date() == row.due_at.astimezone(zone).date()
        )
        if not same_day:
            row.status, row.merged_into_id, row.cancel_reason, row.updated_at = (
                TouchpointStatus.scheduled if row.window_end >= now else TouchpointStatus.skipped,
                None,
                None if row.window_end >= now else PAST_AT_PLANNING,
                now,
            )
            session.add(row)


def apply(session: Session, *, procedure_id: int, protocol: Protocol, actor: str) -> ProcedureMigration:
    """Move one procedure to `protocol`, in the caller's transaction. Re-reads and locks its touchpoints."""
    now = utcnow()
    procedure = session.exec(select(Procedure).where(Procedure.id == procedure_id).with_for_update()).first()
    if procedure is None:
        raise NotFoundError(f"no procedure {procedure_id}")
    diff = _diff(session, procedure, protocol, now, lock=True)
    zone = ZoneInfo(diff.migration.timezone)
    reason = f"protocol migrated to {protocol.version}"
    touched: list[int] = []
    for row in diff.removals:
        row.status, row.cancel_reason, row.updated_at = TouchpointStatus.cancelled, reason, now
        session.add(row)
        touched.append(row.id or 0)
    for row, new in diff.moves:
        _place(session, procedure, row, new, zone)
        row.updated_at = now
        session.add(row)
        touched.append(row.id or 0)
    for new in diff.additions:
        row = Touchpoint(
            procedure_id=procedure_id, patient_id=procedure.patient_id, key=new.key, kind=new.kind,
            template=new.template, channel=new.channel, clinical=new.clinical, planned_at=new.planned_at,
            due_at=new.due_at, window_end=new.window_end, payload=dict(new.payload), created_at=now, updated_at=now,
        )
        _place(session, procedure, row, new, zone)
        session.add(row)
    session.flush()
    _release_merged_into(session, touched, zone, now)
    migration = diff.migration
    procedure.protocol_version, procedure.updated_at = protocol.version, now
    session.add(procedure)
    audit.record(
        session,
        actor=actor,
        action="procedure.protocol_migrated",
        entity_type="procedure",
        entity_id=procedure_id,
        protocol=protocol.id,
        old=migration.from_version,
        new=protocol.version,
        added=migration.count("added"),
        removed=migration.count("removed"),
        moved=migration.count("moved"),
        changed=migration.count("changed"),
    )
    migration.applied = True
    return migration


def migrate(
    *,
    protocol: Protocol,
    to_version: str | None = None,
    dry_run: bool = True,
    actor: str,
    scope: Callable[[], AbstractContextManager[Session]] = session_scope,
) -> MigrationReport:
    """Preview (dry run) or apply the move of every active procedure on an older version of `protocol`.

    `protocol` is the protocol as its file says now; `to_version` defaults to the file's version.
    Applying commits one procedure at a time, so a failure leaves the others consistent.
    """
    with scope() as session:
        target = target_protocol(session, current=protocol, to_version=to_version)
        ids = candidates(session, protocol=target)
        waiting = _not_yet_planned(session, target)
        report = MigrationReport(protocol.id, target.version, dry_run, not_yet_planned=waiting)
        if dry_run:
            for procedure_id in ids:
                procedure = session.get(Procedure, procedure_id)
                assert procedure is not None
                report.procedures.append(preview(session, procedure=procedure, protocol=target))
            return report
    for procedure_id in ids:
        with scope() as session:
            report.procedures.append(apply(session, procedure_id=procedure_id, protocol=target, actor=actor))
    return report
