"""The audit trail: one function to write an event in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from aftercare.models import AuditEvent


def record(
    session: Session, *, actor: str, action: str, entity_type: str, entity_id: int | None, **detail: Any
) -> None:
    session.add(
        AuditEvent(actor=actor, action=action, entity_type=entity_type, entity_id=entity_id, detail=detail)
    )
