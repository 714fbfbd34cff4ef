"""A physician's private calendar feed: /calendar/<token>.ics, token shown once, only its SHA-256 stored."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.bookings import ics, tokens
from aftercare.models import Appointment, AppointmentStatus, CalendarFeed, StaffUser
from aftercare.security import hash_token
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

FEED_PAST = timedelta(days=30)
USE_RESOLUTION = timedelta(minutes=5)


def create(session: Session, *, staff: StaffUser, actor: str) -> str:
    """A new feed token for `staff` (any earlier one stops working). Returns the token: show it once."""
    now = utcnow()
    session.execute(
        update(CalendarFeed).where(col(CalendarFeed.staff_id) == staff.id, col(CalendarFeed.revoked_at).is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False)
    )
    token = tokens.new_feed_token()
    session.add(CalendarFeed(staff_id=staff.id or 0, token_hash=hash_token(token), created_by=actor, created_at=now))
    audit.record(session, actor=actor, action="calendar_feed.created", entity_type="staff_user", entity_id=staff.id)
    return token


def revoke(session: Session, *, staff: StaffUser, actor: str) -> int:
    result = session.execute(
        update(CalendarFeed).where(col(CalendarFeed.staff_id) == staff.id, col(CalendarFeed.revoked_at).is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)
    )
    audit.record(session, actor=actor, action="calendar_feed.revoked", entity_type="staff_user", entity_id=staff.id)
    return int(getattr(result, "rowcount", 0) or 0)


def active(session: Session, staff_id: int) -> CalendarFeed | None:
    return session.exec(select(CalendarFeed).where(CalendarFeed.staff_id == staff_id,
                                                   col(CalendarFeed.revoked_at).is_(None))).first()


def owner(session: Session, token: str) -> StaffUser | None:
    """The active staff user a feed token belongs to (None: unknown, revoked or disabled)."""
    if not token.startswith(tokens.FEED_PREFIX) or len(token) > 80:
        return None
    feed = session.exec(select(CalendarFeed).where(CalendarFeed.token_hash == hash_token(token))).first()
    if feed is None or feed.revoked_at is not None:
        return None
    staff = session.get(StaffUser, feed.staff_id)
    if staff is None or not staff.active:
        return None
    now = utcnow()
    if feed.last_used_at is None or now - feed.last_used_at > USE_RESOLUTION:
        feed.last_used_at = now
        session.add(feed)
        session.commit()
    return staff


def body(session: Session, settings: Settings, staff: StaffUser, now: datetime | None = None) -> str:
    """The physician's visits from a month ago on (booked, attended, no-show) as iCalendar text."""
    since = (now or utcnow()) - FEED_PAST
    appointments = session.exec(
        select(Appointment).where(
            Appointment.physician_id == staff.id, col(Appointment.starts_at) >= since,
            col(Appointment.status).in_((AppointmentStatus.booked, AppointmentStatus.attended,
                                         AppointmentStatus.no_show)),
        ).order_by(col(Appointment.starts_at))
    )
    return ics.physician_feed(appointments, name=f"aftercare: {staff.name}", base_url=settings.public_base_url,
                              now=now)
