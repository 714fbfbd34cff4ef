"""When a flag is due: minutes for urgent and emergency (acknowledge), business days for review, in the clinic's zone.

A review flag is due `n` business days after it was raised, at the same local time; weekends and the clinic
calendar's holidays (config/clinic.yaml) do not count. A flag raised on a day off counts from the next business
day's opening (08:00 local), so a Saturday flag with n=2 is due Tuesday 08:00.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aftercare.flags.oncall import Policy
from aftercare.models import Clinic, FlagTier
from aftercare.settings import Settings

log = logging.getLogger(__name__)
DAY_START = time(8, 0)


def holidays(settings: Settings, clinic: Clinic) -> frozenset[date]:
    """The clinic calendar's holidays (none when there is no calendar or it cannot be read)."""
    try:
        from aftercare.bookings.calendar import for_clinic

        calendar = for_clinic(settings, clinic.slug)
    except Exception as exc:  # a broken calendar file must not stop triage
        log.warning("clinic calendar unreadable for SLAs (%s); counting weekends only", exc)
        return frozenset()
    return frozenset(calendar.holidays) if calendar is not None else frozenset()


def is_business_day(day: date, days_off: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in days_off


def add_business_days(start: datetime, days: int, zone: ZoneInfo, days_off: Collection[date] = ()) -> datetime:
    """`days` business days after `start` (aware), at the same local wall time."""
    local = start.astimezone(zone)
    if not is_business_day(local.date(), days_off):
        day = local.date()
        while not is_business_day(day, days_off):
            day += timedelta(days=1)
        local = datetime.combine(day, DAY_START, tzinfo=zone)
    day, left = local.date(), days
    while left > 0:
        day += timedelta(days=1)
        if is_business_day(day, days_off):
            left -= 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=zone).astimezone(start.tzinfo)


def due_at(
    tier: FlagTier, *, raised: datetime, human_now: bool, policy: Policy, zone: ZoneInfo, days_off: Collection[date]
) -> datetime:
    """When the flag must be acknowledged (urgent, emergency) or reviewed (review, routine)."""
    if tier in (FlagTier.emergency, FlagTier.urgent):
        return raised + timedelta(minutes=policy.escalation.backup_after_minutes)
    if human_now:
        return raised + timedelta(minutes=policy.human_now_minutes)
    return add_business_days(raised, policy.review_business_days, zone, days_off)


def describe(due: datetime, now: datetime) -> tuple[str, bool]:
    """("due in 3 h 20 min", False) or ("overdue by 2 days", True)."""
    delta = due - now
    overdue = delta.total_seconds() < 0
    text = _span(abs(delta))
    return (f"overdue by {text}", True) if overdue else (f"due in {text}", False)


def age(since: datetime, now: datetime) -> str:
    """How long ago: "25 min", "3 h 5 min", "4 days"."""
    return _span(max(now - since, timedelta(0)))


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"
