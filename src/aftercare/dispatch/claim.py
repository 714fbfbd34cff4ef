"""Claiming due touchpoints with a lease, and re-checking each one before it may be sent.

One short transaction per batch:
1. `UPDATE touchpoint SET status='sending', lease_owner, lease_expires_at, attempts+1 WHERE id IN
   (SELECT id ... due ... LIMIT n [FOR UPDATE SKIP LOCKED]) AND status IN ('scheduled','held') RETURNING id`.
   On PostgreSQL the subquery skips rows another dispatcher holds; on SQLite the statement runs under
   the single writer lock and the outer status check keeps it a compare-and-set. Either way a row is
   returned to exactly one dispatcher.
2. The facts of those rows are loaded (procedure, patient, clinic, consent, suppressions, today's
   messages) and `policy.decide` says send, hold, defer, skip or cancel. On PostgreSQL the patients
   with non-clinical messages are locked (`FOR NO KEY UPDATE`, in id order) first, so two dispatchers
   cannot both spend one patient's daily message.
3. Rows not sent get their new status and lose the lease (their attempt is given back).
Sending happens after the commit, outside any transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.consent import active_suppressions, address_of, blocking
from aftercare.dispatch.policy import Action, Facts, Verdict, channel_problem, decide
from aftercare.messaging.context import touchpoint_context
from aftercare.models import (
    OPEN_TOUCHPOINT_STATUSES,
    Channel,
    Clinic,
    ConsentEvent,
    Language,
    Patient,
    Procedure,
    ProtocolSnapshot,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.protocols.schema import Protocol

COUNTED_STATUSES = (
    TouchpointStatus.sending,
    TouchpointStatus.sent,
    TouchpointStatus.delivered,
    TouchpointStatus.answered,
)
NOT_SENDABLE = (TouchpointKind.visit,)  # the visit itself is a date, not a message


@dataclass(frozen=True)
class Job:
    """One message to send, with everything a worker thread needs (no database access to render)."""

    touchpoint_id: int
    patient_id: int
    clinic_id: int
    procedure_id: int
    channel: Channel
    to: str
    key: str
    kind: TouchpointKind
    template: str
    clinical: bool
    language: Language
    attempts: int
    attempted_at: datetime
    window_end: datetime
    context: dict[str, Any] = field(default_factory=dict)  # template variables (messaging.context)

    @property
    def message_id(self) -> str:
        """Opaque and stable across attempts: reconciliation looks the earlier attempt up by it."""
        return f"tp-{self.touchpoint_id}"


@dataclass
class ClaimResult:
    jobs: list[Job] = field(default_factory=list)
    verdicts: dict[Action, int] = field(default_factory=lambda: defaultdict(int))
    switched: int = 0


def claim_ids(session: Session, *, owner: str, now: datetime, limit: int, lease_seconds: float) -> list[int]:
    """Step 1: take up to `limit` due rows for `owner` (see the module docstring)."""
    due = (
        sa_select(col(Touchpoint.id))
        .where(
            col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES),
            col(Touchpoint.due_at) <= now,
            col(Touchpoint.kind).not_in(NOT_SENDABLE),
        )
        .order_by(col(Touchpoint.due_at), col(Touchpoint.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(Touchpoint)
        .where(col(Touchpoint.id).in_(due.scalar_subquery()), col(Touchpoint.status).in_(OPEN_TOUCHPOINT_STATUSES))
        .values(
            status=TouchpointStatus.sending,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=col(Touchpoint.attempts) + 1,
            updated_at=now,
        )
        .returning(col(Touchpoint.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(row[0]) for row in session.execute(statement))


def _consent(session: Session, patient_ids: list[int]) -> dict[int, dict[Channel, bool]]:
    state: dict[int, dict[Channel, bool]] = {pid: {Channel.sms: False, Channel.email: False} for pid in patient_ids}
    rows = session.exec(
        select(ConsentEvent)
        .where(col(ConsentEvent.patient_id).in_(patient_ids))
        .order_by(col(ConsentEvent.recorded_at), col(ConsentEvent.id))
    )
    for event in rows:
        state[event.patient_id][event.channel] = event.granted
    return state


def _planned_channels(session: Session, procedure_ids: list[int]) -> dict[tuple[int, str], set[Channel]]:
    found: dict[tuple[int, str], set[Channel]] = defaultdict(set)
    rows = session.execute(
        sa_select(col(Touchpoint.procedure_id), col(Touchpoint.key), col(Touchpoint.channel)).where(
            col(Touchpoint.procedure_id).in_(procedure_ids)
        )
    )
    for procedure_id, key, channel in rows:
        found[(procedure_id, key)].add(Channel(channel))
    return found


def _lock_patients(session: Session, patient_ids: list[int]) -> None:
    if patient_ids and session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_select(col(Patient.id))
            .where(col(Patient.id).in_(sorted(patient_ids)))
            .order_by(col(Patient.id))
            .with_for_update(key_share=True)
        ).all()


def _sent_today(
    session: Session, patients: dict[int, Patient], now: datetime, exclude: set[int]
) -> dict[int, set[tuple[int, str]]]:
    """Per patient: the non-clinical messages (procedure, key) attempted on the patient's local day."""
    found: dict[int, set[tuple[int, str]]] = defaultdict(set)
    if not patients:
        return found
    rows = session.execute(
        sa_select(
            col(Touchpoint.id), col(Touchpoint.patient_id), col(Touchpoint.procedure_id), col(Touchpoint.key),
            col(Touchpoint.attempted_at),
        ).where(
            col(Touchpoint.patient_id).in_(list(patients)),
            col(Touchpoint.clinical).is_(False),
            col(Touchpoint.status).in_(COUNTED_STATUSES),
            col(Touchpoint.attempted_at) >= now - timedelta(hours=30),
        )
    )
    for tp_id, patient_id, procedure_id, key, attempted_at in rows:
        if tp_id in exclude or attempted_at is None:
            continue
        zone = ZoneInfo(patients[patient_id].timezone)
        if attempted_at.astimezone(zone).date() == now.astimezone(zone).date():
            found[patient_id].add((procedure_id, key))
    return found


def claim_batch(
    session: Session, *, owner: str, now: datetime, limit: int, lease_seconds: float, daily_cap: int
) -> ClaimResult:
    """Claim, re-check and settle one batch in the caller's (short) transaction. Returns what to send."""
    result = ClaimResult()
    ids = claim_ids(session, owner=owner, now=now, limit=limit, lease_seconds=lease_seconds)
    if not ids:
        return result
    loaded = session.exec(
        select(Touchpoint, Procedure, Patient, Clinic)
        .join(Procedure, col(Procedure.id) == col(Touchpoint.procedure_id))
        .join(Patient, col(Patient.id) == col(Touchpoint.patient_id))
        .join(Clinic, col(Clinic.id) == col(Procedure.clinic_id))
        .where(col(Touchpoint.id).in_(ids))
        .order_by(col(Touchpoint.due_at), col(Touchpoint.id))
    ).all()
    patients = {patient.id or 0: patient for _, _, patient, _ in loaded}
    _lock_patients(session, sorted({tp.patient_id for tp, _, _, _ in loaded if not tp.clinical}))
    consent = _consent(session, list(patients))
    suppressions = active_suppressions(session, patients)
    planned = _planned_channels(session, sorted({tp.procedure_id for tp, _, _, _ in loaded}))
    today = _sent_today(session, patients, now, exclude=set(ids))
    sending: list[tuple[Touchpoint, Patient, Clinic]] = []
    for tp, procedure, patient, clinic in loaded:
        assert tp.id is not None and patient.id is not None
        blocked = {
            channel: channel_problem(
                consented=consent[patient.id][channel],
                address=address_of(patient, channel),
                suppressed=(found.reason if (found := blocking(
                    suppressions[patient.id], channel, address_of(patient, channel))) else None),
                channel=channel,
            )
            for channel in Channel
        }
        facts = Facts(
            channel=tp.channel,
            clinical=tp.clinical,
            window_end=tp.window_end,
            procedure_status=procedure.status,
            procedure_cancel_reason=procedure.cancel_reason,
            zone=ZoneInfo(patient.timezone),
            send_window_start=clinic.send_window_start,
            send_window_end=clinic.send_window_end,
            blocked=blocked,
            planned_channels=frozenset(planned[(tp.procedure_id, tp.key)]),
            sent_today=len(today[patient.id]),
        )
        verdict = decide(facts, now, daily_cap=daily_cap)
        result.verdicts[verdict.action] += 1
        if verdict.channel is not None and verdict.channel != tp.channel:
            _switch(session, tp, verdict, owner=owner)
            planned[(tp.procedure_id, tp.key)].add(verdict.channel)
            result.switched += 1
        if verdict.action != Action.send:
            _settle(session, tp, verdict, now)
            continue
        if not tp.clinical:
            today[patient.id].add((tp.procedure_id, tp.key))
        tp.attempted_at, tp.ambiguous_at = now, None
        session.add(tp)
        sending.append((tp, patient, clinic))
    session.flush()
    procedures = {tp.procedure_id: procedure for tp, procedure, _, _ in loaded}
    missing: set[tuple[str, str]] = set()
    result.jobs = [
        _job(tp, patient, clinic, _context(session, tp, procedures[tp.procedure_id], patient, clinic, missing), now)
        for tp, patient, clinic in sending
    ]
    return result


_protocols: dict[tuple[str, str], Protocol] = {}


def _protocol(session: Session, procedure: Procedure, missing: set[tuple[str, str]]) -> Protocol | None:
    """The protocol a plan was built from; a stored version never changes (plans.ensure_snapshot), so it is cached."""
    ident = (procedure.protocol_id, procedure.protocol_version)
    if ident in _protocols:
        return _protocols[ident]
    if ident in missing:
        return None
    snapshot = session.exec(
        select(ProtocolSnapshot).where(ProtocolSnapshot.protocol_id == ident[0], ProtocolSnapshot.version == ident[1])
    ).first()
    if snapshot is None:
        missing.add(ident)  # for this batch only: it may be stored later
        return None
    _protocols[ident] = Protocol.model_validate(snapshot.body)
    return _protocols[ident]


def _context(
    session: Session,
    tp: Touchpoint,
    procedure: Procedure,
    patient: Patient,
    clinic: Clinic,
    missing: set[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The template variables, built while the rows are at hand (messaging.context)."""
    protocol = _protocol(session, procedure, set() if missing is None else missing)
    context = touchpoint_context(tp, patient=patient, clinic=clinic, protocol=protocol)
    if tp.kind == TouchpointKind.visit_offer or (tp.payload or {}).get("appointment_id"):
        from aftercare.bookings.offers import booking_context  # offers: the times and link; visits: time, .ics

        context.update(booking_context(session, tp))
    return context


def _switch(session: Session, tp: Touchpoint, verdict: Verdict, *, owner: str) -> None:
    """Move the row to the other channel (the plan has no row there for this key). Kept in its payload."""
    assert verdict.channel is not None
    history = list(tp.payload.get("channel_history", []))
    history.append({"from": tp.channel.value, "to": verdict.channel.value, "because": verdict.switched_because})
    tp.payload = {**tp.payload, "channel_history": history}
    audit.record(
        session, actor="dispatcher", action="touchpoint.channel_switched", entity_type="touchpoint",
        entity_id=tp.id, old=tp.channel.value, new=verdict.channel.value, because=verdict.switched_because,
    )
    tp.channel = verdict.channel


def _settle(session: Session, tp: Touchpoint, verdict: Verdict, now: datetime) -> None:
    """A row that is not sent now: its new status, due time or reason; the lease and attempt given back."""
    tp.status = verdict.status
    if verdict.due_at is not None:
        tp.due_at = verdict.due_at
    if verdict.action in (Action.skip, Action.cancel):
        tp.cancel_reason = verdict.reason
    tp.lease_owner, tp.lease_expires_at = None, None
    tp.attempts = max(0, tp.attempts - 1)
    tp.updated_at = now
    session.add(tp)


def _job(tp: Touchpoint, patient: Patient, clinic: Clinic, context: dict[str, Any], now: datetime) -> Job:
    assert tp.id is not None and patient.id is not None and clinic.id is not None
    channel = tp.channel
    to = address_of(patient, channel)
    assert to is not None  # policy refuses a channel without an address
    return Job(
        touchpoint_id=tp.id,
        patient_id=patient.id,
        clinic_id=clinic.id,
        procedure_id=tp.procedure_id,
        channel=channel,
        to=to,
        key=tp.key,
        kind=tp.kind,
        template=tp.template,
        clinical=tp.clinical,
        language=patient.language,
        attempts=tp.attempts,
        attempted_at=now,
        window_end=tp.window_end,
        context=context,
    )


def release_unsent(session: Session, jobs: list[Job], *, owner: str, now: datetime) -> int:
    """Give back claimed rows that were never handed to a provider (a run stopping early)."""
    if not jobs:
        return 0
    result = session.execute(
        update(Touchpoint)
        .where(
            col(Touchpoint.id).in_([job.touchpoint_id for job in jobs]),
            col(Touchpoint.lease_owner) == owner,
            col(Touchpoint.status) == TouchpointStatus.sending,
            col(Touchpoint.provider_id).is_(None),
        )
        .values(
            status=TouchpointStatus.scheduled, lease_owner=None, lease_expires_at=None, attempted_at=None,
            attempts=col(Touchpoint.attempts) - 1, updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def job_for(session: Session, tp: Touchpoint) -> Job | None:
    """The job of an already claimed row, rebuilt (to look a maybe-sent message up); None if impossible."""
    procedure = session.get(Procedure, tp.procedure_id)
    patient = session.get(Patient, tp.patient_id)
    clinic = session.get(Clinic, procedure.clinic_id) if procedure else None
    if procedure is None or patient is None or clinic is None or not address_of(patient, tp.channel):
        return None
    context = _context(session, tp, procedure, patient, clinic)
    return _job(tp, patient, clinic, context, tp.attempted_at or tp.updated_at)
