"""The clinic calendar (config/clinic.yaml): physicians, working hours, slot lengths, holidays, horizon.

The file maps clinic slugs to calendars. Hours are wall-clock times in the clinic's own time zone (the
clinic record's `timezone`). Physicians are named by their staff email. Loading validates everything and
fails with the file, the field path and the problem; the loaded file is cached until it changes on disk.
"""

from __future__ import annotations

import re
import threading
from datetime import date, time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aftercare.configfile import problems, read_yaml
from aftercare.models import VisitMode
from aftercare.settings import Settings

GRID_MINUTES = 5  # every slot length and working-hour boundary is a multiple of this (appointment cells)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_PERIOD = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


class CalendarError(ValueError):
    """A calendar file that cannot be used: the file, the field and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Strict):
    """One stretch of working time on a day, e.g. 09:00-13:00."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text)
        if not match:
            raise ValueError(f"working hours must look like 09:00-13:00, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if m1 % GRID_MINUTES or m2 % GRID_MINUTES:
            raise ValueError(f"{text!r}: minutes must be a multiple of {GRID_MINUTES}")
        if (h2, m2) <= (h1, m1):
            raise ValueError(f"{text!r}: the end must be after the start (same day, 23:55 at the latest)")
        return cls(start=time(h1, m1), end=time(h2, m2))


WeekHours = dict[Weekday, list[Period]]


def _week(value: object) -> object:
    """`{mon: ["09:00-13:00", ...]}` -> periods; a weekday left out (or []) is closed."""
    if not isinstance(value, dict):
        return value
    out: dict[object, object] = {}
    for day, periods in value.items():
        if periods is None:
            periods = []
        if isinstance(periods, str):
            periods = [periods]
        if not isinstance(periods, list):
            raise ValueError(f"{day}: a list of periods like ['09:00-13:00'], got {periods!r}")
        parsed = [Period.parse(p) if isinstance(p, str) else p for p in periods]
        ordered = sorted(parsed, key=lambda p: p.start)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"{day}: periods overlap")
        out[day] = ordered
    return out


class PhysicianCalendar(_Strict):
    email: str = Field(min_length=3, max_length=254)
    modes: list[VisitMode] = Field(default_factory=lambda: list(VisitMode), min_length=1)
    hours: WeekHours | None = None  # replaces the clinic's hours for this physician
    days_off: list[date] = Field(default_factory=list)

    @field_validator("hours", mode="before")
    @classmethod
    def _periods(cls, value: object) -> object:
        return _week(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"not an email address: {value!r}")
        return value.strip().lower()


class Offers(_Strict):
    slots: int = Field(3, ge=1, le=3, description="times per offer (the SMS says: reply 1, 2 or 3)")
    expires_after_hours: int = Field(48, ge=1, le=24 * 14)
    min_notice_hours: int = Field(12, ge=0, le=24 * 14, description="nothing sooner than this is offered")
    reoffer: bool = True  # an unanswered offer is offered once more, then goes to the coordinator


class Reminders(_Strict):
    day_before_hours: int = Field(24, ge=1, le=24 * 7)
    same_day_hours: int = Field(2, ge=1, le=12)
    min_lead_minutes: int = Field(
        30, ge=0, le=240, description="a reminder that quiet hours push closer than this to the visit is not sent"
    )


class Urgent(_Strict):
    mode: VisitMode = VisitMode.in_person
    min_notice_minutes: int = Field(60, ge=0, le=24 * 60)
    within_days: int = Field(14, ge=1, le=90)


class ClinicCalendar(_Strict):
    booking_horizon_days: int = Field(120, ge=1, le=730)
    slot_minutes: dict[VisitMode, int]
    hours: WeekHours
    holidays: list[date] = Field(default_factory=list)
    physicians: list[PhysicianCalendar] = Field(min_length=1)
    video_link_template: str = Field(max_length=300)
    location: str | None = Field(None, max_length=300)
    offers: Offers = Offers()
    reminders: Reminders = Reminders()
    urgent: Urgent = Urgent()

    @field_validator("hours", mode="before")
    @classmethod
    def _periods(cls, value: object) -> object:
        return _week(value)

    @field_validator("slot_minutes")
    @classmethod
    def _lengths(cls, value: dict[VisitMode, int]) -> dict[VisitMode, int]:
        missing = [m.value for m in VisitMode if m not in value]
        if missing:
            raise ValueError(f"give a length for every visit type; missing: {', '.join(missing)}")
        for mode, minutes in value.items():
            if not GRID_MINUTES <= minutes <= 240 or minutes % GRID_MINUTES:
                raise ValueError(f"{mode.value}: {minutes} minutes; use {GRID_MINUTES} to 240, "
                                 f"in steps of {GRID_MINUTES}")
        return value

    @field_validator("video_link_template")
    @classmethod
    def _video(cls, value: str) -> str:
        if "{room}" not in value:
            raise ValueError("must contain {room} (an opaque id per visit), e.g. https://meet.example.org/c-{room}")
        if not value.startswith("https://"):
            raise ValueError("must be an https:// address")
        try:
            value.format(room="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{room}} may be filled in ({exc})") from None
        return value

    @model_validator(mode="after")
    def _physicians(self) -> ClinicCalendar:
        seen: set[str] = set()
        for index, doctor in enumerate(self.physicians):
            if doctor.email in seen:
                raise ValueError(f"physicians[{index}]: {doctor.email} is listed twice")
            seen.add(doctor.email)
        if not any(self.week_of(d) for d in self.physicians):
            raise ValueError("no physician has any working hours")
        return self

    def week_of(self, physician: PhysicianCalendar) -> WeekHours:
        return physician.hours if physician.hours is not None else self.hours

    def physician(self, email: str) -> PhysicianCalendar | None:
        email = email.strip().lower()
        return next((d for d in self.physicians if d.email == email), None)

    def minutes(self, mode: VisitMode) -> int:
        return self.slot_minutes[mode]

    def video_link(self, room: str) -> str:
        return self.video_link_template.format(room=room)


class CalendarFile(_Strict):
    clinics: dict[str, ClinicCalendar] = Field(min_length=1)  # by clinic slug




def parse_calendar(raw: object, source: str) -> CalendarFile:
    if not isinstance(raw, dict):
        raise CalendarError(f"{source}: expected a mapping with `clinics:` at the top level")
    try:
        return CalendarFile.model_validate(raw)
    except ValidationError as exc:
        raise CalendarError(f"{source}: {problems(exc)}") from None


def load_calendar(path: Path) -> CalendarFile:
    """Read and validate one calendar file. Raises CalendarError naming the file and field."""
    raw = read_yaml(path, CalendarError)
    return parse_calendar(raw, str(path))


def calendar_path(settings: Settings) -> Path:
    return settings.calendar_file or settings.config_dir / "clinic.yaml"


_cache: dict[Path, tuple[float, CalendarFile]] = {}
_lock = threading.Lock()


def current(settings: Settings) -> CalendarFile | None:
    """The configured calendar file (None when there is none); re-read when the file changes."""
    path = calendar_path(settings)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        if settings.calendar_file is not None:  # asked for by name: a missing file is a mistake
            raise CalendarError(f"{path}: no such file (AFTERCARE_CALENDAR_FILE)") from None
        return None  # no calendar: offers ask patients to call
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    loaded = load_calendar(path)
    with _lock:
        _cache[path] = (mtime, loaded)
    return loaded


def for_clinic(settings: Settings, slug: str) -> ClinicCalendar | None:
    """The calendar of one clinic, or None when the file does not list it (bookings by phone only)."""
    loaded = current(settings)
    return loaded.clinics.get(slug) if loaded is not None else None
