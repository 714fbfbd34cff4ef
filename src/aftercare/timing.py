"""Local-time arithmetic for plans: offsets from T0 in the patient's zone, and the send window."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=256)
def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def local_wall_time(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant a wall clock in `zone` shows `at` on `day`, DST-correct.

    A time that does not exist (the spring-forward gap) moves forward by the gap, so 02:30 on that
    day becomes 03:30; an ambiguous time (fall back) takes the first occurrence.
    """
    # PEP 495: fold=0 reads a gap time with the offset before the change (so it lands later) and
    # picks the first of two ambiguous times.
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def offset_instant(
    t0: datetime, zone: ZoneInfo, *, days: int, weeks: int, months: int, hours: int, at: str | None
) -> datetime:
    """T0 plus a calendar offset, at a local time of day (`at`) or an exact number of hours."""
    local_t0 = t0.astimezone(zone)
    if at is not None:
        return _day_at(local_t0.date(), zone, days, weeks, months, at)
    day = add_months(local_t0.date(), months) + timedelta(days=days, weeks=weeks)
    shifted = local_wall_time(day, local_t0.time().replace(tzinfo=None), zone)
    return shifted + timedelta(hours=hours)


@lru_cache(maxsize=1 << 16)  # bulk planning: many plans share a zone and a start date
def _day_at(local_t0: date, zone: ZoneInfo, days: int, weeks: int, months: int, at: str) -> datetime:
    day = add_months(local_t0, months) + timedelta(days=days, weeks=weeks)
    return local_wall_time(day, parse_hhmm(at), zone)


def next_send_time(instant: datetime, zone: ZoneInfo, window_start: str, window_end: str) -> datetime:
    """`instant` if it falls inside the daily send window in `zone`, else the window's next opening."""
    due = _next_send_time(instant, zone, window_start, window_end)
    return instant if due == instant else due  # the caller's own object (and tzinfo) when it is in the window


@lru_cache(maxsize=1 << 16)  # equal instants in other zones share an entry: hence the wrapper above
def _next_send_time(instant: datetime, zone: ZoneInfo, window_start: str, window_end: str) -> datetime:
    start, end = parse_hhmm(window_start), parse_hhmm(window_end)
    local = instant.astimezone(zone)
    if start <= local.time() < end:
        return instant
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return local_wall_time(day, start, zone)


def in_send_window(instant: datetime, zone: ZoneInfo, window_start: str, window_end: str) -> bool:
    return next_send_time(instant, zone, window_start, window_end) == instant
