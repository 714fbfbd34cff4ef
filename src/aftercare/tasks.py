"""Coordinator tasks: the work list a person must look at (failed deliveries, opt-outs, unread replies)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.errors import NotFoundError
from aftercare.models import CoordinatorTask, TaskStatus
from aftercare.timeutil import utcnow


def open_task(
    session: Session,
    *,
    kind: str,
    title: str,
    clinic_id: int | None = None,
    patient_id: int | None = None,
    touchpoint_id: int | None = None,
    inbound_id: int | None = None,
    detail: str | None = None,
    dedupe_key: str | None = None,
) -> CoordinatorTask:
    """Open a task in the caller's transaction. With a `dedupe_key`, the same event opens one task only.

    Two transactions racing on one key: the unique index fails the later commit (a webhook is retried).
    """
    if dedupe_key is not None:
        existing = session.exec(select(CoordinatorTask).where(CoordinatorTask.dedupe_key == dedupe_key)).first()
        if existing is not None:
            return existing
    task = CoordinatorTask(
        kind=kind,
        title=title[:200],
        clinic_id=clinic_id,
        patient_id=patient_id,
        touchpoint_id=touchpoint_id,
        inbound_id=inbound_id,
        detail=detail[:1000] if detail else None,
        dedupe_key=dedupe_key,
    )
    session.add(task)
    session.flush()
    return task


def list_open(session: Session, *, clinic_id: int | None = None, limit: int = 200) -> list[CoordinatorTask]:
    """Open tasks, oldest first (of one clinic, or all)."""
    query = select(CoordinatorTask).where(CoordinatorTask.status == TaskStatus.open)
    if clinic_id is not None:
        query = query.where(CoordinatorTask.clinic_id == clinic_id)
    return list(session.exec(query.order_by(col(CoordinatorTask.created_at), col(CoordinatorTask.id)).limit(limit)))


def close_task(session: Session, *, task_id: int, actor: str) -> CoordinatorTask:
    """Mark a task done (idempotent)."""
    task = session.get(CoordinatorTask, task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id}")
    if task.status == TaskStatus.open:
        task.status, task.closed_at, task.closed_by = TaskStatus.done, utcnow(), actor
        session.add(task)
        audit.record(session, actor=actor, action="task.closed", entity_type="coordinator_task", entity_id=task.id)
    return task
