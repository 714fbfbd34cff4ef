"""Open slots: a physician's working hours on working days, minus holidays, days off and booked time.

Candidate slots are laid end to end from the start of each working period, one visit length at a time,
as wall-clock times in the clinic's zone (DST-correct). Booked time is held as five-minute cells
(`appointment_cell`), so visits of different lengths never overlap and the unique key on the cells
is what makes double booking impossible, whoever books and however many at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare.bookings.calendar import GRID_MINUTES, WEEKDAYS, ClinicCalendar, PhysicianCalendar
from aftercare.models import AppointmentCell, StaffUser, VisitMode
from aftercare.timing import local_wall_time

GRID = timedelta(minutes=GRID_MINUTES)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Slot:
    """One bookable time with one physician."""

    starts_at: datetime
    physician_id: int
    minutes: int

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)

    def as_json(self) -> dict[str, Any]:
        return {"starts_at": self.starts_at.astimezone(UTC).isoformat(), "physician_id": self.physician_id,
                "minutes": self.minutes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Slot:
        return cls(datetime.fromisoformat(str(data["starts_at"])).astimezone(UTC), int(data["physician_id"]),
                   int(data["minutes"]))


def cell_starts(starts_at: datetime, ends_at: datetime) -> list[datetime]:
    """The five-minute cells [starts_at, ends_at) touches, on a fixed UTC grid (overlapping visits share one)."""
    offset = (starts_at - _EPOCH) % GRID
    cell, cells = starts_at - offset, []
    while cell < ends_at:
        cells.append(cell.astimezone(UTC))
        cell += GRID
    return cells


def on_grid(instant: datetime) -> bool:
    return (instant - _EPOCH) % GRID == timedelta(0)


def resolve_physicians(session: Session, clinic_id: int, calendar: ClinicCalendar) -> dict[int, PhysicianCalendar]:
    """Staff id -> calendar entry, for the active staff of the clinic the calendar names by email."""
    wanted = {doc.email: doc for doc in calendar.physicians}
    rows = session.exec(
        select(StaffUser).where(
            StaffUser.clinic_id == clinic_id, col(StaffUser.active).is_(True), col(StaffUser.email).in_(list(wanted))
        )
    )
    return {staff.id: wanted[staff.email] for staff in rows if staff.id is not None}


def unknown_physicians(session: Session, clinic_id: int, calendar: ClinicCalendar) -> list[str]:
    """Emails in the calendar with no active staff account in the clinic (shown on the staff page)."""
    known = {doc.email for doc in resolve_physicians(session, clinic_id, calendar).values()}
    return [doc.email for doc in calendar.physicians if doc.email not in known]


def _days(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[date]:
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def candidates(
    calendar: ClinicCalendar,
    zone: ZoneInfo,
    physician_id: int,
    physician: PhysicianCalendar,
    mode: VisitMode,
    start: datetime,
    end: datetime,
) -> Iterator[Slot]:
    """Every slot of this length in the physician's hours that starts in [start, end], booked or not."""
    if mode not in physician.modes:
        return
    minutes = calendar.minutes(mode)
    length = timedelta(minutes=minutes)
    week = calendar.week_of(physician)
    closed = set(calendar.holidays) | set(physician.days_off)
    for day in _days(start, end, zone):
        if day in closed:
            continue
        for period in week.get(WEEKDAYS[day.weekday()], []):  # type: ignore[call-overload]
            at, period_end = local_wall_time(day, period.start, zone), local_wall_time(day, period.end, zone)
            while at + length <= period_end:
                if start <= at <= end:
                    yield Slot(at, physician_id, minutes)
                at += length


def busy_cells(
    session: Session, physician_ids: Iterable[int], start: datetime, end: datetime
) -> set[tuple[int, datetime]]:
    """(physician, cell start) held by active appointments between start and end."""
    ids = list(physician_ids)
    if not ids:
        return set()
    rows = session.exec(
        select(AppointmentCell.physician_id, AppointmentCell.starts_at).where(
            col(AppointmentCell.physician_id).in_(ids),
            col(AppointmentCell.starts_at) >= start - timedelta(hours=4),
            col(AppointmentCell.starts_at) < end + timedelta(hours=4),
        )
    )
    return {(pid, at.astimezone(UTC)) for pid, at in rows}


def is_free(slot: Slot, busy: set[tuple[int, datetime]]) -> bool:
    return not any((slot.physician_id, cell) in busy for cell in cell_starts(slot.starts_at, slot.ends_at))


def open_slots(
    session: Session,
    *,
    calendar: ClinicCalendar,
    zone: ZoneInfo,
    physicians: Mapping[int, PhysicianCalendar],
    mode: VisitMode,
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> list[Slot]:
    """Free slots of `mode` starting in [start, end] with any of `physicians`, earliest first."""
    if end < start or not physicians:
        return []
    busy = busy_cells(session, physicians, start, end)
    found = sorted(
        slot
        for pid, doc in physicians.items()
        for slot in candidates(calendar, zone, pid, doc, mode, start, end)
        if is_free(slot, busy)
    )
    return found[:limit] if limit is not None else found


def pick_near(slots: list[Slot], target: datetime, count: int, zone: ZoneInfo) -> list[Slot]:
    """`count` slots close to `target`, on different (clinic) days where possible, in time order."""
    by_distance = sorted(slots, key=lambda s: (abs((s.starts_at - target).total_seconds()), s.starts_at))
    chosen: list[Slot] = []
    days: set[date] = set()
    for slot in by_distance:
        if len(chosen) == count:
            break
        day = slot.starts_at.astimezone(zone).date()
        if day not in days:
            chosen.append(slot)
            days.add(day)
    for slot in by_distance:
        if len(chosen) == count:
            break
        if slot not in chosen:
            chosen.append(slot)
    return sorted(chosen)
