"""The shape of a protocol file. Errors carry the field path so the loader can name it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_SETTING_REF = re.compile(r"^(-?)([a-z_][a-z0-9_]*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offset(_Strict):
    """A time relative to T0. With `time`, the calendar offset lands at that local time of day."""

    days: int | str = 0
    weeks: int = 0
    months: int = 0
    hours: int = 0
    time: str | None = None

    @field_validator("time")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError(f"time must be HH:MM (24 h), got {value!r}")
        return value

    @field_validator("days")
    @classmethod
    def _days_ref(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not _SETTING_REF.match(value):
            raise ValueError(f"days must be a whole number or the name of a setting (e.g. -nsaid_days), got {value!r}")
        return value

    @model_validator(mode="after")
    def _hours_xor_time(self) -> Offset:
        if self.hours and self.time:
            raise ValueError("give either hours (exact offset) or time (local time of day), not both")
        return self


class Window(_Strict):
    """How long after its due time a touchpoint may still go out (and a survey be answered)."""

    hours: int = 0
    days: int = 0

    @property
    def total_hours(self) -> int:
        return self.hours + 24 * self.days


class Exercise(_Strict):
    id: str
    dose: str | None = None


class RehabPhase(_Strict):
    id: str
    start: Offset
    end: Offset | None = None
    goals: list[str] = Field(default_factory=list)
    exercises: list[Exercise] = Field(default_factory=list)
    avoid: list[str] = Field(default_factory=list)
    progress_if: str | None = None


class Survey(_Strict):
    instruments: list[str] = Field(min_length=1)


TouchpointKindName = Literal["message", "checkin", "survey", "visit_offer"]
ChannelChoice = Literal["preferred", "sms", "email"]


class ProtocolTouchpoint(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    kind: TouchpointKindName
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    at: Offset
    window: Window = Window(hours=12)
    channels: list[ChannelChoice] = Field(default_factory=lambda: ["preferred"], min_length=1)  # type: ignore[arg-type]
    clinical: bool = False
    survey: str | None = None
    phase: str | None = None
    purpose: str | None = None


class FollowupVisit(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=48)
    at: Offset
    mode: Literal["in_person", "video", "phone", "video_or_phone"] = "in_person"
    offer_days_before: int = Field(7, ge=1, le=60)
    window: Window = Window(days=7)


class Protocol(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=100)
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$", max_length=40)
    title: str
    procedure: str
    description: str | None = None
    sources: list[str] = Field(default_factory=list)
    settings: dict[str, int | float | str | bool] = Field(default_factory=dict)
    rehab_phases: list[RehabPhase] = Field(default_factory=list)
    surveys: dict[str, Survey] = Field(default_factory=dict)
    touchpoints: list[ProtocolTouchpoint] = Field(min_length=1)
    followup_visits: list[FollowupVisit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Protocol:
        seen: set[str] = set()
        phases = {p.id for p in self.rehab_phases}
        for index, tp in enumerate(self.touchpoints):
            where = f"touchpoints[{index}] ({tp.id})"
            if tp.id in seen:
                raise ValueError(f"{where}: id {tp.id!r} is used twice")
            seen.add(tp.id)
            if tp.kind in ("checkin", "survey") and not tp.survey:
                raise ValueError(f"{where}.survey: a {tp.kind} must name a survey")
            if tp.survey and tp.survey not in self.surveys:
                raise ValueError(f"{where}.survey: unknown survey {tp.survey!r}")
            if tp.phase and tp.phase not in phases:
                raise ValueError(f"{where}.phase: unknown rehab phase {tp.phase!r}")
            self._check_setting(f"{where}.at.days", tp.at.days)
        for index, visit in enumerate(self.followup_visits):
            if f"{visit.id}_offer" in seen:
                raise ValueError(f"followup_visits[{index}].id: {visit.id!r} clashes with a touchpoint id")
            seen.add(f"{visit.id}_offer")
        return self

    def _check_setting(self, where: str, days: int | str) -> None:
        if isinstance(days, str):
            name = days.lstrip("-")
            value = self.settings.get(name)
            if value is None:
                raise ValueError(f"{where}: unknown setting {name!r}")
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{where}: setting {name!r} must be a whole number of days")

    def resolve_days(self, days: int | str) -> int:
        if isinstance(days, int):
            return days
        sign = -1 if days.startswith("-") else 1
        value = self.settings[days.lstrip("-")]
        assert isinstance(value, int)
        return sign * value
