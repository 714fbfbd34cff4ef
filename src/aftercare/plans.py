"""Care plans in the database: materialise, reschedule and cancel a procedure's touchpoints."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from aftercare import audit, bulk
from aftercare.errors import ConflictError, NotFoundError
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
from aftercare.planning import PAST_AT_PLANNING, PlanContext, PlannedTouchpoint, build_plan
from aftercare.protocols import Protocol
from aftercare.protocols.loader import checksum
from aftercare.timeutil import utcnow


def ensure_snapshot(session: Session, protocol: Protocol) -> ProtocolSnapshot:
    """Keep the protocol as it is now; refuse a file changed without a new version number."""
    body = protocol.model_dump(mode="json")
    digest = checksum(body)
    snapshot = session.exec(
        select(ProtocolSnapshot).where(
            ProtocolSnapshot.protocol_id == protocol.id, ProtocolSnapshot.version == protocol.version
        )
    ).first()
    if snapshot is None:
        snapshot = ProtocolSnapshot(protocol_id=protocol.id, version=protocol.version, checksum=digest, body=body)
        session.add(snapshot)
        session.flush()
    elif snapshot.checksum != digest:
        raise ConflictError(
            f"protocol {protocol.id} version {protocol.version} was edited without a new version number; "
            "bump `version` in the file so existing plans keep the version they were built from"
        )
    return snapshot


def protocol_of(session: Session, procedure: Procedure) -> Protocol:
    """The protocol exactly as the procedure's plan was built from."""
    snapshot = session.exec(
        select(ProtocolSnapshot).where(
            ProtocolSnapshot.protocol_id == procedure.protocol_id,
            ProtocolSnapshot.version == procedure.protocol_version,
        )
    ).first()
    if snapshot is None:
        raise NotFoundError(f"protocol {procedure.protocol_id} {procedure.protocol_version} is not stored")
    return Protocol.model_validate(snapshot.body)


def plan_context(clinic: Clinic, patient: Patient, performed_at: datetime) -> PlanContext:
    return PlanContext(
        performed_at=performed_at,
        zone=ZoneInfo(patient.timezone),
        preferred_channel=patient.preferred_channel,
        has_phone=bool(patient.phone_e164),
        has_email=bool(patient.email),
        window_start=clinic.send_window_start,
        window_end=clinic.send_window_end,
    )


def _row(procedure: Procedure, tp: PlannedTouchpoint, now: datetime) -> dict[str, Any]:
    return {
        "procedure_id": procedure.id,
        "patient_id": procedure.patient_id,
        "key": tp.key,
        "kind": tp.kind,
        "template": tp.template,
        "channel": tp.channel,
        "clinical": tp.clinical,
        "planned_at": tp.planned_at,
        "due_at": tp.due_at,
        "window_end": tp.window_end,
        "status": tp.status,
        "cancel_reason": tp.cancel_reason,
        "payload": tp.payload,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _merge_key(template: str, channel: str, due_at: datetime, zone: ZoneInfo) -> tuple[str, str, date]:
    return (template, channel, _local_day(due_at, zone))


@lru_cache(maxsize=1 << 16)  # bulk planning: the same due times recur across plans
def _local_day(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def _open_by_patient(session: Session, patient_ids: Sequence[int]) -> dict[int, dict[tuple[str, str, date], int]]:
    """Open touchpoints of these patients, keyed for same-day merging."""
    found: dict[int, dict[tuple[str, str, date], int]] = defaultdict(dict)
    if not patient_ids:
        return found
    # Status is filtered here, not in SQL: with a long IN list SQLite would otherwise walk ix_touchpoint_due
    # (every open touchpoint of every patient) instead of ix_touchpoint_patient_due.
    query = (
        sa_select(
            col(Touchpoint.id), col(Touchpoint.patient_id), col(Touchpoint.template), col(Touchpoint.channel),
            col(Touchpoint.due_at), col(Touchpoint.status), col(Patient.timezone),
        )
        .join(Patient, col(Patient.id) == col(Touchpoint.patient_id))
        .where(col(Touchpoint.patient_id).in_(patient_ids))
    )
    for tp_id, patient_id, template, channel, due_at, status, zone in session.execute(query):
        if status in OPEN_TOUCHPOINT_STATUSES:
            found[patient_id].setdefault(_merge_key(template, channel, due_at, ZoneInfo(zone)), tp_id)
    return found


def materialise(session: Session, procedures: Sequence[Procedure], now: datetime | None = None) -> int:
    """Write the plans of procedures still in `planning`, in the caller's transaction. Idempotent.

    A message that another open plan of the same patient already sends that day (same template and
    channel) is stored as `merged` into that one rather than sent twice. Returns touchpoints written.
    """
    now = now or utcnow()
    todo = [p for p in procedures if p.status == ProcedureStatus.planning and p.plan_built_at is None]
    if not todo:
        return 0
    clinics = {c.id: c for c in session.exec(select(Clinic).where(col(Clinic.id).in_({p.clinic_id for p in todo})))}
    patients: dict[int, Patient] = {
        p.id or 0: p for p in session.exec(select(Patient).where(col(Patient.id).in_({p.patient_id for p in todo})))
    }
    existing = _open_by_patient(session, list(patients))
    protocols: dict[tuple[str, str], Protocol] = {}
    for procedure in todo:  # every query before the rows stream out (a COPY holds the connection)
        ident = (procedure.protocol_id, procedure.protocol_version)
        if ident not in protocols:
            protocols[ident] = protocol_of(session, procedure)
    rows: list[dict[str, Any]] = []
    merges: list[tuple[int, tuple[str, str, date]]] = []

    def plan_rows() -> Iterator[dict[str, Any]]:
        for procedure in todo:
            patient = patients[procedure.patient_id]
            ctx = plan_context(clinics[procedure.clinic_id], patient, procedure.performed_at)
            seen = existing[patient.id or 0]
            mine: dict[tuple[str, str, date], bool] = {}
            for tp in build_plan(protocols[(procedure.protocol_id, procedure.protocol_version)], ctx, now):
                row = _row(procedure, tp, now)
                if tp.status in OPEN_TOUCHPOINT_STATUSES:
                    key = _merge_key(tp.template, tp.channel, tp.due_at, ctx.zone)
                    if key in seen and key not in mine:
                        row["status"] = TouchpointStatus.merged
                        row["cancel_reason"] = "same message the same day in another plan of this patient"
                        merges.append((len(rows), key))
                    else:
                        mine[key] = True
                rows.append(row)
                yield row
            for key in mine:
                seen.setdefault(key, -1)  # placeholder until ids exist; resolved below

    # Streamed: on PostgreSQL the server stores one slice of rows while the next plans are built.
    bulk.insert_rows(session, Touchpoint, plan_rows())
    _link_merges(session, [rows[i] for i, _ in merges], [k for _, k in merges])
    for procedure in todo:
        procedure.status = ProcedureStatus.active
        procedure.plan_built_at = now
        procedure.updated_at = now
        session.add(procedure)
    session.flush()
    return len(rows)


def _link_merges(
    session: Session,
    rows: list[dict[str, Any]],
    keys: list[tuple[str, str, date]],
) -> None:
    """Point each merged touchpoint at the open one it was merged into."""
    if not rows:
        return
    open_now = _open_by_patient(session, list({r["patient_id"] for r in rows}))
    table = bulk.table_of(Touchpoint)
    statement = (  # one executemany, not one UPDATE per merged row
        update(table)
        .where(table.c.procedure_id == bindparam("m_procedure"), table.c.key == bindparam("m_key"))
        .where(table.c.channel == bindparam("m_channel"))
        .values(merged_into_id=bindparam("m_target"))
    )
    session.connection().execute(statement, [
        {"m_procedure": row["procedure_id"], "m_key": row["key"], "m_channel": row["channel"],
         "m_target": open_now[row["patient_id"]].get(key)}
        for row, key in zip(rows, keys, strict=True)
    ])


def _release_merged(session: Session, into_ids: Sequence[int], now: datetime) -> None:
    """Rows of other plans that were merged into these (now moved or cancelled) rows go out on their own again."""
    if not into_ids:
        return
    session.execute(
        update(Touchpoint)
        .where(col(Touchpoint.merged_into_id).in_(into_ids), col(Touchpoint.status) == TouchpointStatus.merged)
        .values(status=TouchpointStatus.scheduled, merged_into_id=None, cancel_reason=None, updated_at=now)
    )


def reschedule(session: Session, procedure: Procedure, performed_at: datetime, *, actor: str) -> int:
    """Move the procedure's date; every touchpoint not yet sent moves with it. Returns rows moved."""
    now = utcnow()
    old = procedure.performed_at
    procedure.performed_at, procedure.updated_at = performed_at, now
    session.add(procedure)
    moved = 0
    moved_ids: list[int] = []
    if procedure.plan_built_at is not None:
        clinic = session.get(Clinic, procedure.clinic_id)
        patient = session.get(Patient, procedure.patient_id)
        assert clinic and patient
        new_plan = {
            (tp.key, tp.channel): tp
            for tp in build_plan(protocol_of(session, procedure), plan_context(clinic, patient, performed_at), now)
        }
        pending = session.exec(
            select(Touchpoint).where(
                Touchpoint.procedure_id == procedure.id,
                col(Touchpoint.status).in_([*OPEN_TOUCHPOINT_STATUSES, TouchpointStatus.skipped]),
            )
        )
        for row in pending:
            planned = new_plan.get((row.key, row.channel))
            if planned is None:
                continue
            if row.status == TouchpointStatus.skipped and row.cancel_reason != PAST_AT_PLANNING:
                continue  # skipped for a reason a new date does not change (e.g. no phone number)
            row.planned_at, row.due_at, row.window_end = planned.planned_at, planned.due_at, planned.window_end
            row.status, row.cancel_reason, row.updated_at = planned.status, planned.cancel_reason, now
            session.add(row)
            moved_ids.append(row.id or 0)
            moved += 1
        _release_merged(session, moved_ids, now)
    audit.record(
        session,
        actor=actor,
        action="procedure.rescheduled",
        entity_type="procedure",
        entity_id=procedure.id,
        old=old.isoformat(),
        new=performed_at.isoformat(),
        touchpoints_moved=moved,
    )
    return moved


def cancel(session: Session, procedure: Procedure, reason: str, *, actor: str) -> int:
    """Stop everything not yet sent, keeping the reason. Returns rows cancelled."""
    now = utcnow()
    open_ids = list(
        session.exec(
            select(Touchpoint.id).where(
                Touchpoint.procedure_id == procedure.id, col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES)
            )
        )
    )
    _release_merged(session, [i for i in open_ids if i is not None], now)
    result = session.execute(
        update(Touchpoint)
        .where(col(Touchpoint.procedure_id) == procedure.id, col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES))
        .values(status=TouchpointStatus.cancelled, cancel_reason=f"procedure cancelled: {reason}", updated_at=now)
    )
    procedure.status, procedure.cancel_reason, procedure.updated_at = ProcedureStatus.cancelled, reason, now
    session.add(procedure)
    count = int(getattr(result, "rowcount", 0) or 0)
    audit.record(
        session,
        actor=actor,
        action="procedure.cancelled",
        entity_type="procedure",
        entity_id=procedure.id,
        reason=reason,
        touchpoints_cancelled=count,
    )
    return count


def build_for(session: Session, procedure_ids: Sequence[int], flow_run_id: str | None = None) -> int:
    """Materialise the plans of these procedures (the body of the `procedure-aftercare` flow)."""
    procedures = list(session.exec(select(Procedure).where(col(Procedure.id).in_(procedure_ids))))
    if flow_run_id:
        for procedure in procedures:
            if procedure.plan_built_at is None:
                procedure.flow_run_id = flow_run_id
    return materialise(session, procedures)


def stragglers(session: Session, older_than: datetime, limit: int = 500) -> list[int]:
    """Procedures recorded before `older_than` whose plan is still not built."""
    rows = session.exec(
        select(Procedure.id)
        .where(Procedure.status == ProcedureStatus.planning, col(Procedure.created_at) < older_than)
        .order_by(col(Procedure.id))
        .limit(limit)
    )
    return [r for r in rows if r is not None]
