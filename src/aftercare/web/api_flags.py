"""REST API for flags: the review queue, one flag, and the same actions as the flag page.

    GET  /api/v1/flags                       the queue (status, tier filters), most severe then oldest first
    GET  /api/v1/flags/{id}                  one flag: reasons, sources, pages, notes, SLA timer
    POST /api/v1/flags/{id}/acknowledge      stop the escalation (physician, admin)
    POST /api/v1/flags/{id}/notes            {"text": ...} (everyone)
    POST /api/v1/flags/{id}/messages         {"text": ...} SMS to the patient through the outbox (physician, admin)
    POST /api/v1/flags/{id}/urgent-visit     {"physician_id": ..., "reason": ...} (physician, admin)
    POST /api/v1/flags/{id}/resolve          {"disposition": ..., "note": ...} (physician, admin)

Every call is audited (a refused one too); a flag of another clinic is 404.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from aftercare.flags import handling, queue
from aftercare.flags.permissions import NotAllowed
from aftercare.models import Flag, FlagDisposition, FlagStatus, FlagTier, StaffUser
from aftercare.timeutil import utcnow
from aftercare.web.deps import CurrentStaff, IdPath, SessionDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/flags", tags=["flags"])
VIA = "api"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoteIn(_In):
    text: str = Field(min_length=1, max_length=handling.NOTE_MAX)


class MessageIn(_In):
    text: str = Field(min_length=1, max_length=handling.MESSAGE_MAX, description="SMS to the patient, your words")


class VisitIn(_In):
    physician_id: int | None = Field(None, ge=1, description="default: you (a physician), else the treating one")
    reason: str | None = Field(None, max_length=500)


class ResolveIn(_In):
    disposition: FlagDisposition
    note: str = Field(min_length=1, max_length=handling.NOTE_MAX)


class FlagSummary(BaseModel):
    id: int
    tier: FlagTier
    status: FlagStatus
    patient_id: int
    patient_name: str
    procedure_id: int | None
    day: float | None
    rules: list[str]
    reasons: list[str]
    human_now: bool
    created_at: datetime
    sla_due_at: datetime
    sla: str = Field(description="due in ... / overdue by ... / acknowledged / resolved")
    overdue: bool
    escalation_level: int = Field(description="-1 not paged, 0 primary, 1 backup, 2 admin")
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    resolved_at: datetime | None
    resolved_by: int | None
    disposition: FlagDisposition | None
    resolution_note: str | None
    patient_told: str | None


class FlagList(BaseModel):
    flags: list[FlagSummary]


class SourceOut(BaseModel):
    kind: str
    at: datetime
    text: str
    item: str | None
    severity: str | None
    rules: list[str]


class PageOut(BaseModel):
    staff_id: int | None
    staff_name: str | None
    role: str
    level: int
    tier: FlagTier
    channel: str
    status: str
    sent_at: datetime | None


class NoteOut(BaseModel):
    id: int
    staff_id: int
    kind: str
    body: str
    created_at: datetime


class FlagOut(FlagSummary):
    sources: list[SourceOut]
    pages: list[PageOut]
    notes: list[NoteOut]


class MessageOut(BaseModel):
    reply_id: int
    body: str


class VisitOut(BaseModel):
    appointment_id: int
    physician_id: int
    starts_at: datetime
    ends_at: datetime
    mode: str


def _summary(flag: Flag, patient_name: str, now: datetime) -> FlagSummary:
    assert flag.id is not None
    sla_text, overdue = queue.timer(flag, now)
    return FlagSummary(
        id=flag.id, tier=flag.tier, status=flag.status, patient_id=flag.patient_id, patient_name=patient_name,
        procedure_id=flag.procedure_id, day=flag.day, rules=flag.rules, reasons=flag.reasons,
        human_now=flag.human_now, created_at=flag.created_at, sla_due_at=flag.sla_due_at, sla=sla_text,
        overdue=overdue, escalation_level=flag.escalation_level, acknowledged_at=flag.acknowledged_at,
        acknowledged_by=flag.acknowledged_by, resolved_at=flag.resolved_at, resolved_by=flag.resolved_by,
        disposition=flag.disposition, resolution_note=flag.resolution_note, patient_told=flag.patient_told,
    )


def _refused(session: Session, staff: StaffUser, flag_id: int, exc: NotAllowed) -> HTTPException:
    session.rollback()
    handling.deny(session, staff, flag_id, exc.action, VIA)
    session.commit()
    return HTTPException(403, str(exc))


def _detail(session: Session, flag: Flag) -> FlagOut:
    now = utcnow()
    view = queue.detail(session, flag, now)
    name = f"{view.patient.first_name} {view.patient.last_name}"
    return FlagOut(
        **_summary(flag, name, now).model_dump(),
        sources=[SourceOut(kind=s.kind, at=s.at, text=s.text, item=s.item, severity=s.severity, rules=s.rules)
                 for s in view.sources],
        pages=[PageOut(staff_id=p.staff_id, staff_name=person.name if person else None, role=p.role, level=p.level,
                       tier=p.tier, channel=p.channel.value, status=p.status.value, sent_at=p.sent_at)
               for p, person in view.pages],
        notes=[NoteOut(id=n.id or 0, staff_id=n.staff_id, kind=n.kind, body=n.body, created_at=n.created_at)
               for n, _ in view.notes],
    )


@router.get("")
def list_flags(
    session: SessionDep,
    staff: CurrentStaff,
    status: Annotated[queue.StatusFilter, Query(description="active = open and acknowledged")] = "active",
    tier: Annotated[FlagTier | None, Query(description="only this tier")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> FlagList:
    """The clinic's flags, most severe first, then oldest first, with their SLA timers."""
    pairs = queue.list_flags(session, staff.clinic_id, status=status, tier=tier, limit=limit, offset=offset)
    handling.queue_viewed(session, staff, [f.id for f, _ in pairs if f.id is not None], via=VIA)
    session.commit()
    now = utcnow()
    return FlagList(flags=[_summary(f, f"{p.first_name} {p.last_name}", now) for f, p in pairs])


@router.get("/{flag_id}")
def read_flag(flag_id: IdPath, session: SessionDep, staff: CurrentStaff) -> FlagOut:
    flag = handling.get_flag(session, staff, flag_id)
    handling.viewed(session, staff, flag, via=VIA)
    session.commit()
    return _detail(session, flag)


@router.post("/{flag_id}/acknowledge")
def acknowledge(flag_id: IdPath, session: SessionDep, staff: CurrentStaff) -> FlagOut:
    """Take the flag in hand: the pages to the backup and the admin stop. Idempotent."""
    flag = handling.get_flag(session, staff, flag_id)
    try:
        handling.acknowledge(session, staff, flag, via=VIA)
    except NotAllowed as exc:
        raise _refused(session, staff, flag_id, exc) from None
    session.commit()
    return _detail(session, flag)


@router.post("/{flag_id}/notes", status_code=status.HTTP_201_CREATED)
def add_note(flag_id: IdPath, body: NoteIn, session: SessionDep, staff: CurrentStaff) -> NoteOut:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        note = handling.add_note(session, staff, flag, body.text, via=VIA)
    except NotAllowed as exc:
        raise _refused(session, staff, flag_id, exc) from None
    session.commit()
    return NoteOut(id=note.id or 0, staff_id=note.staff_id, kind=note.kind, body=note.body, created_at=note.created_at)


def _send_replies_now(request: Request) -> None:
    from aftercare.dispatch.replies import send_replies

    try:
        send_replies(request.app.state.settings, engine=request.app.state.engine, owner="flag-api")
    except Exception:  # the dispatcher sends it on its next run
        log.exception("sending a flag message failed; the dispatcher retries")


@router.post("/{flag_id}/messages", status_code=status.HTTP_202_ACCEPTED)
def message_patient(
    flag_id: IdPath, body: MessageIn, request: Request, background: BackgroundTasks, session: SessionDep,
    staff: CurrentStaff,
) -> MessageOut:
    """Queue an SMS to the patient in your words (409 when the patient may not be texted)."""
    flag = handling.get_flag(session, staff, flag_id)
    try:
        reply = handling.message_patient(session, staff, flag, body.text, via=VIA)
    except NotAllowed as exc:
        raise _refused(session, staff, flag_id, exc) from None
    session.commit()
    background.add_task(_send_replies_now, request)
    return MessageOut(reply_id=reply.id or 0, body=reply.body or "")


@router.post("/{flag_id}/urgent-visit", status_code=status.HTTP_201_CREATED)
def book_urgent_visit(flag_id: IdPath, body: VisitIn, session: SessionDep, staff: CurrentStaff) -> VisitOut:
    """The first free urgent time with the physician (the clinic calendar's `urgent:` rules)."""
    flag = handling.get_flag(session, staff, flag_id)
    try:
        appointment = handling.book_visit(session, staff, flag, physician_id=body.physician_id, reason=body.reason,
                                          via=VIA)
    except NotAllowed as exc:
        raise _refused(session, staff, flag_id, exc) from None
    session.commit()
    return VisitOut(appointment_id=appointment.id or 0, physician_id=appointment.physician_id,
                    starts_at=appointment.starts_at, ends_at=appointment.ends_at, mode=appointment.mode.value)


@router.post("/{flag_id}/resolve")
def resolve(flag_id: IdPath, body: ResolveIn, session: SessionDep, staff: CurrentStaff) -> FlagOut:
    """Close the flag with a disposition and a note (409 when it is resolved already)."""
    flag = handling.get_flag(session, staff, flag_id)
    try:
        handling.resolve(session, staff, flag, disposition=body.disposition.value, note=body.note, via=VIA)
    except NotAllowed as exc:
        raise _refused(session, staff, flag_id, exc) from None
    session.commit()
    return _detail(session, flag)
