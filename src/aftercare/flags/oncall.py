"""The on-call rota (config/oncall.yaml): who is paged for a flag, when the page escalates, and review SLAs.

Per clinic (by slug): a weekly rota of shifts (days + hours in the clinic's zone, each naming a primary and a
backup by staff email), dated overrides that win over it (holidays, swaps), the admin paged last, how many
minutes an unacknowledged page waits before the next person is paged, the page channels and language, and the
review SLA in business days. Loading validates everything and names the file, the field and the problem; a
weekly rota that leaves any minute of the week uncovered is refused (nobody would be paged).

Also here: the emergency number by country (the patient is told to call it), checked against the message
templates' own table by the tests so both always agree.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aftercare.configfile import problems, read_yaml
from aftercare.messaging.context import emergency_number as template_emergency_number
from aftercare.models import Channel, Language
from aftercare.settings import Settings

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
log = logging.getLogger(__name__)
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_WEEK = 7 * 24 * 60
_HOURS = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-4]):([0-5]\d)\s*$")
_LOCAL = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})\s*$")


class OnCallError(ValueError):
    """An on-call file that cannot be used: the file, the field and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _email(value: object) -> object:
    if isinstance(value, str):
        value = value.strip().lower()
        if "@" not in value or " " in value:
            raise ValueError(f"not a staff email address: {value!r}")
    return value


class Shift(_Strict):
    """Every listed weekday, from `hours` start to end (an end at or before the start runs into the next day)."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    hours: str = Field(description="HH:MM-HH:MM in the clinic's zone, e.g. 08:00-18:00 or 18:00-08:00 (overnight)")
    primary: str
    backup: str

    _check_primary = field_validator("primary", "backup", mode="before")(_email)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match:
            raise ValueError(f"must look like 08:00-18:00, got {value!r}")
        if match.group(3) == "24" and match.group(4) != "00":
            raise ValueError(f"24:00 is the latest end, got {value!r}")
        if match.group(1, 2) == match.group(3, 4):
            raise ValueError(f"start and end are the same ({value!r}); use 00:00-24:00 for a whole day")
        return value

    @model_validator(mode="after")
    def _two_people(self) -> Shift:
        if self.primary == self.backup:
            raise ValueError(f"primary and backup are both {self.primary}: name two people")
        return self

    def span(self) -> tuple[int, int]:
        """Start and end in minutes after midnight; the end is > start (an overnight end is + 24 h)."""
        match = _HOURS.match(self.hours)
        assert match is not None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        return start, end if end > start else end + 24 * 60

    def covers(self, local: datetime) -> bool:
        start, end = self.span()
        minute = local.hour * 60 + local.minute
        today, yesterday = WEEKDAYS[local.weekday()], WEEKDAYS[(local.weekday() - 1) % 7]
        if today in self.days and start <= minute < min(end, 24 * 60):
            return True
        return end > 24 * 60 and yesterday in self.days and minute < end - 24 * 60


class Override(_Strict):
    """A dated stretch (local times) with other people on call; wins over the weekly rota."""

    start: str = Field(description="YYYY-MM-DD HH:MM in the clinic's zone")
    end: str
    primary: str
    backup: str

    _check_people = field_validator("primary", "backup", mode="before")(_email)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _local(cls, value: object) -> object:
        if not isinstance(value, str) or not _LOCAL.match(value):
            raise ValueError(f"must look like 2026-12-24 18:00, got {value!r}")
        try:
            datetime.fromisoformat(value.strip().replace(" ", "T"))
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value.strip()

    @model_validator(mode="after")
    def _order(self) -> Override:
        if self.starts() >= self.ends():
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if self.primary == self.backup:
            raise ValueError(f"primary and backup are both {self.primary}: name two people")
        return self

    def starts(self) -> datetime:
        return datetime.fromisoformat(self.start.replace(" ", "T"))

    def ends(self) -> datetime:
        return datetime.fromisoformat(self.end.replace(" ", "T"))


class Escalation(_Strict):
    backup_after_minutes: int = Field(15, ge=1, le=24 * 60, description="primary not acknowledged: page the backup")
    admin_after_minutes: int = Field(15, ge=1, le=24 * 60, description="then, still not acknowledged: the admin")


class ClinicOnCall(_Strict):
    admin: str
    rota: list[Shift] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)
    escalation: Escalation = Escalation()
    channels: list[Channel] = Field(default_factory=lambda: [Channel.sms, Channel.email], min_length=1)
    language: Language = Language.en  # of the pages (staff read them)
    review_business_days: int = Field(2, ge=1, le=10, description="a review flag is due this many business days on")
    human_now_minutes: int = Field(
        120, ge=5, le=24 * 60, description="a flag that needs a person now (no page) is due within this"
    )

    _check_admin = field_validator("admin", mode="before")(_email)

    @model_validator(mode="after")
    def _whole_week(self) -> ClinicOnCall:
        gaps = uncovered(self.rota)
        if gaps:
            raise ValueError("rota: nobody on call " + ", ".join(gaps) + " (every minute of the week needs a shift)")
        return self

    def on_call(self, at: datetime, zone: ZoneInfo) -> tuple[str, str]:
        """(primary, backup) emails at instant `at`: a dated override first, else the first shift covering it."""
        local = at.astimezone(zone)
        naive = local.replace(tzinfo=None)
        for override in self.overrides:
            if override.starts() <= naive < override.ends():
                return override.primary, override.backup
        for shift in self.rota:
            if shift.covers(local):
                return shift.primary, shift.backup
        raise AssertionError("the rota covers the whole week (checked on load)")  # pragma: no cover


def uncovered(rota: list[Shift]) -> list[str]:
    """Stretches of the week no shift covers, as `sat 00:00-08:00`."""
    covered = [False] * MINUTES_PER_WEEK
    for shift in rota:
        start, end = shift.span()
        for day in shift.days:
            base = WEEKDAYS.index(day) * 24 * 60
            for minute in range(start, end):
                covered[(base + minute) % MINUTES_PER_WEEK] = True
    gaps: list[str] = []
    minute = 0
    while minute < MINUTES_PER_WEEK:
        if covered[minute]:
            minute += 1
            continue
        first = minute
        while minute < MINUTES_PER_WEEK and not covered[minute] and minute // 1440 == first // 1440:
            minute += 1
        gaps.append(f"{WEEKDAYS[first // 1440]} {_hhmm(first % 1440)}-{_hhmm(minute - first // 1440 * 1440)}")
    return gaps


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class OnCallFile(_Strict):
    version: Literal[1] = 1
    emergency_numbers: dict[str, str] = Field(default_factory=dict)
    clinics: dict[str, ClinicOnCall] = Field(default_factory=dict)  # by clinic slug

    @field_validator("emergency_numbers")
    @classmethod
    def _numbers(cls, value: dict[str, str]) -> dict[str, str]:
        for country, number in value.items():
            if not re.fullmatch(r"[A-Z]{2}", country):
                raise ValueError(f"{country!r}: use a two-letter ISO country code in capitals, e.g. MX")
            if not re.fullmatch(r"\d{2,6}", str(number)):
                raise ValueError(f"{country}: {number!r} is not an emergency number (2 to 6 digits)")
        return {k: str(v) for k, v in value.items()}

    def clinic(self, slug: str) -> ClinicOnCall | None:
        return self.clinics.get(slug)

    def emergency_number(self, country: str | None) -> str:
        """The number a patient in `country` calls in an emergency (this file, else the templates' table)."""
        return self.emergency_numbers.get((country or "").upper()) or template_emergency_number(country)




def parse_oncall(raw: object, source: str) -> OnCallFile:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise OnCallError(f"{source}: expected a mapping with `clinics:` at the top level")
    try:
        return OnCallFile.model_validate(raw)
    except ValidationError as exc:
        raise OnCallError(f"{source}: {problems(exc)}") from None


def load_oncall(path: Path) -> OnCallFile:
    """Read and validate one on-call file. Raises OnCallError naming the file and the field."""
    raw = read_yaml(path, OnCallError)
    return parse_oncall(raw, str(path))


def oncall_path(settings: Settings) -> Path:
    return settings.oncall_file or settings.config_dir / "oncall.yaml"


_cache: dict[Path, tuple[float, OnCallFile]] = {}
_lock = threading.Lock()
EMPTY = OnCallFile()


def current(settings: Settings) -> OnCallFile:
    """The configured on-call file (empty when there is none); re-read when the file changes on disk.

    A file saved with a mistake never stops a page: the error is logged and the last good version is used (or,
    when there was none, no rota at all: every physician is paged). `load_oncall` is the strict check.
    """
    path = oncall_path(settings)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return EMPTY
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        loaded = load_oncall(path)
    except OnCallError as exc:
        fallback = cached[1] if cached is not None else EMPTY
        log.error("%s; paging with %s until it is fixed", exc,
                  "the last good version" if cached is not None else "no rota (every physician, then the admins)")
        loaded = fallback
    with _lock:
        _cache[path] = (mtime, loaded)
    return loaded


@dataclass(frozen=True)
class Policy:
    """What one clinic's flags follow (its on-call entry, or the defaults when it has none)."""

    clinic: ClinicOnCall | None
    escalation: Escalation
    channels: tuple[Channel, ...]
    language: Language
    review_business_days: int
    human_now_minutes: int

    def escalation_minutes(self, level: int) -> int | None:
        """Minutes to wait after paging `level` before the next level (None after the admin)."""
        if level == 0:
            return self.escalation.backup_after_minutes
        if level == 1:
            return self.escalation.admin_after_minutes
        return None

    def escalation_delay(self, level: int) -> timedelta | None:
        minutes = self.escalation_minutes(level)
        return None if minutes is None else timedelta(minutes=minutes)


def policy(settings: Settings, slug: str) -> Policy:
    entry = current(settings).clinic(slug)
    if entry is None:
        return Policy(None, Escalation(), (Channel.sms, Channel.email), Language.en, 2, 120)
    return Policy(entry, entry.escalation, tuple(entry.channels), entry.language, entry.review_business_days,
                  entry.human_now_minutes)
