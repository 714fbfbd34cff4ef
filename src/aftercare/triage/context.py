"""What triage looks at: the message, the day since T0, the answers, the baseline and the previous answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aftercare.triage.fields import ANSWER_FIELDS, FIELDS, check_value, more_concerning
from aftercare.triage.freetext import TextReading

Value = bool | int | float | str | None


class TriageInput(BaseModel):
    """One thing to triage: a message and/or parsed answers, with the context the rules need.

    `day` is required: without it no time-bound rule (fever in the first 3 weeks) could decide.
    `text_kind` says what the text is when the caller knows (the reply parser parsed it as an answer, or it is a
    carrier keyword); left out, the engine decides (`freetext.classify`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: float = Field(description="days since T0 (the procedure), negative before it")
    text: str | None = Field(None, max_length=5000, description="the patient's message, as received")
    text_kind: Literal["free_text", "keyword", "answer"] | None = Field(
        None, description="free_text / keyword / answer; None = decide from the text"
    )
    answers: dict[str, Any] = Field(default_factory=dict, description="parsed answers (check-in field vocabulary)")
    baseline: dict[str, Any] = Field(default_factory=dict, description="baseline survey answers (nrs_pain, koos_jr)")
    previous: dict[str, Any] = Field(default_factory=dict, description="the previous check-in's answers")
    survey: str | None = Field(None, max_length=64, description="id of the survey answered (checkin, mo3 ...)")
    missed_checkins: int | None = Field(None, ge=0, description="early check-ins missed so far")

    @field_validator("day", mode="before")
    @classmethod
    def _day_is_a_number(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number of days since the procedure, got {value!r}")
        return value

    @field_validator("answers", "baseline", "previous")
    @classmethod
    def _known_answers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            spec = ANSWER_FIELDS.get(key)
            if spec is None:
                import difflib

                close = difflib.get_close_matches(key, list(ANSWER_FIELDS), n=1, cutoff=0.7)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{key}: unknown answer field{hint}")
            if item is None:
                continue
            try:
                check_value(spec, item)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return {k: v for k, v in value.items() if v is not None}


def known_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Only the answers triage understands (drop KOOS item codes and the like before building a TriageInput)."""
    return {k: v for k, v in answers.items() if k in ANSWER_FIELDS}


_NESTED = re.compile(r"^Value error, (\w+): (.*)$", re.DOTALL)


def describe_errors(exc: ValidationError) -> list[str]:
    """Each problem of a TriageInput as `field: problem`, nested answers as `answers.temp_c: problem`."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(input)"
        message = error["msg"]
        nested = _NESTED.match(message)
        if nested and where in ("answers", "baseline", "previous"):
            where, message = f"{where}.{nested.group(1)}", nested.group(2)
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{where}: {message}")
    return problems


@dataclass(frozen=True)
class Facts:
    """Every field value the rules can see, and where each came from (answer, text, answer+text, context, derived)."""

    values: Mapping[str, Value]
    sources: Mapping[str, str]


DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "pain_now": ("nrs_now", "nrs_pain"),
    "nrs_drop": ("nrs_now", "nrs_pain"),
    "nrs_drop_pct": ("nrs_now", "nrs_pain"),
    "pain_rise": ("nrs_now", "nrs_pain"),
}


def build_facts(inp: TriageInput, reading: TextReading | None, extra_answers: Mapping[str, Any]) -> Facts:
    """Answers merged with what the text says (the more concerning value wins), plus context and derived values."""
    values: dict[str, Value] = {}
    sources: dict[str, str] = {}
    for key, value in {**inp.answers, **extra_answers}.items():
        values[key] = value
        sources[key] = "answer"
    if reading is not None:
        for key, value in reading.fields.items():
            if key in values:
                values[key] = more_concerning(FIELDS[key], values[key], value)  # type: ignore[assignment]
                sources[key] = "answer+text"
            else:
                values[key] = value  # type: ignore[assignment]
                sources[key] = "text"
    for namespace, answers in (("baseline", inp.baseline), ("previous", inp.previous)):
        for key, value in answers.items():
            values[f"{namespace}.{key}"] = value
            sources[f"{namespace}.{key}"] = "context"
    values["day"] = inp.day
    values["survey"] = inp.survey
    values["missed_checkins"] = inp.missed_checkins
    for key in ("day", "survey", "missed_checkins"):
        sources[key] = "context"
    for key, value in _derived(values).items():
        values[key] = value
        sources[key] = "derived"
    return Facts(values, sources)


def _first(values: Mapping[str, Value], *names: str) -> float | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _derived(values: Mapping[str, Value]) -> dict[str, Value]:
    pain = _first(values, "nrs_now", "nrs_pain")
    baseline_pain = _first(values, "baseline.nrs_pain", "baseline.nrs_now")
    previous_pain = _first(values, "previous.nrs_now", "previous.nrs_pain")
    koos, baseline_koos = _first(values, "koos_jr"), _first(values, "baseline.koos_jr")
    derived: dict[str, Value] = {"pain_now": pain, "baseline_pain": baseline_pain}
    if pain is not None and baseline_pain is not None:
        derived["nrs_drop"] = baseline_pain - pain
        derived["nrs_drop_pct"] = 100 * (baseline_pain - pain) / baseline_pain if baseline_pain > 0 else None
    if koos is not None and baseline_koos is not None:
        derived["koos_jr_gain"] = koos - baseline_koos
    if pain is not None and previous_pain is not None:
        derived["pain_rise"] = pain - previous_pain
    return derived
