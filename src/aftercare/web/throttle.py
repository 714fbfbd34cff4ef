"""Sign-in throttling: too many failed sign-ins for one email, or from one address, and sign-in is refused for a
while, even with the right password. Kept in the audit log (`staff.login_failed` rows, one per email and one per
address), so it holds across web processes and restarts and a security review sees every attempt."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.models import AuditEvent
from aftercare.settings import Settings

ACTION = "staff.login_failed"
PER_ADDRESS = 4  # an address gets this many times the per-email allowance (a shared clinic network)


def _keys(email: str, address: str | None) -> list[tuple[str, int]]:
    """(actor key, allowance factor) for this attempt."""
    keys = [(f"login:{email.strip().lower()}"[:100], 1)]
    if address:
        keys.append((f"login-ip:{address}"[:100], PER_ADDRESS))
    return keys


def refused_for(session: Session, settings: Settings, *, email: str, address: str | None, now: datetime) -> int:
    """Minutes until sign-in is allowed again for this email and address (0: allowed now)."""
    since = now - timedelta(minutes=settings.login_lockout_minutes)
    wait = 0
    for key, factor in _keys(email, address):
        count, last = session.exec(
            select(func.count(), func.max(AuditEvent.at))
            .where(col(AuditEvent.action) == ACTION, col(AuditEvent.actor) == key, col(AuditEvent.at) > since)
        ).one()
        if count >= settings.login_max_failures * factor and last is not None:
            last_at = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
            left = last_at + timedelta(minutes=settings.login_lockout_minutes) - now
            wait = max(wait, int(left.total_seconds() // 60) + 1)
    return wait


def failed(session: Session, *, email: str, address: str | None) -> None:
    """Record one failed sign-in (the caller commits)."""
    for key, _ in _keys(email, address):
        audit.record(session, actor=key, action=ACTION, entity_type="staff_user", entity_id=None)
