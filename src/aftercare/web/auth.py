"""Who is calling: staff passwords (argon2) for the web app, hashed bearer tokens for the API."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from sqlmodel import Session, select

from aftercare.models import ApiToken, StaffUser
from aftercare.security import TOKEN_PREFIX, hash_password, hash_token, verify_password
from aftercare.timeutil import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute per token


class AuthFailed(Exception):
    """Credentials that do not identify an active staff user; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@lru_cache
def _dummy_hash() -> str:
    return hash_password("not a real password")


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active staff user with this email and password, else None (same cost either way)."""
    staff = session.exec(select(StaffUser).where(StaffUser.email == email.strip().lower())).first()
    if staff is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(staff.password_hash, password) or not staff.active:
        return None
    return staff


def staff_for_token(session: Session, token: str) -> StaffUser:
    """The staff user owning this API token; records when it was last used. Raises AuthFailed."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthFailed(f"not an aftercare API token (they start with {TOKEN_PREFIX})")
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        raise AuthFailed("unknown API token")
    if row.revoked_at is not None:
        raise AuthFailed(f"API token {row.name!r} was revoked on {row.revoked_at:%Y-%m-%d}")
    staff = session.get(StaffUser, row.staff_id)
    if staff is None or not staff.active:
        raise AuthFailed("the staff account of this API token is disabled")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.add(row)
        session.commit()
    return staff


def staff_for_session(session: Session, staff_id: object) -> StaffUser | None:
    if not isinstance(staff_id, int):
        return None
    staff = session.get(StaffUser, staff_id)
    return staff if staff is not None and staff.active else None
