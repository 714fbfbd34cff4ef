"""Scores from parsed answers. Pure functions; every score carries the instrument id and version.

`answers` maps item id -> parsed value (ParseResult.value); a missing key or None means not answered.
Rules (clinical.md §3):
- NRS: the 0-10 value; change against baseline is meaningful at >= mcid_abs points OR >= mcid_pct % of
  baseline (Farrar 2001: 2 points / 30 %), in either direction; percent is undefined for a baseline of 0.
- KOOS JR: raw = sum of the 7 items (0-4) -> interval 0-100 via the HSS table in the instrument file. Only
  complete responses are scored (require_all_items; the HSS missing-item rule is unconfirmed, clinical.md
  §8.2): with any item missing the score has value None, complete False and the missing items listed.
- PGIC: the category 1-7 and its group (improved 1-2, worse 6-7 by default, else minimal/no change).
- PASS: yes = acceptable.
- fields (check-in, quick status, swelling trend, NSAID): the answers as named fields, plus which answers
  are red flags per the instrument file; triage rules decide severity. Optional and conditional items
  (ask_if, only_if_setting) are not required for `complete`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aftercare.instruments.schema import (
    AnswerValue,
    ChoiceItem,
    FieldsScoring,
    Instrument,
    IntegerItem,
    ItemType,
    KoosJrScoring,
    NrsScoring,
    PassScoring,
    PgicScoring,
    TemperatureItem,
    ValueScoring,
    YesNoItem,
)

PGIC_CATEGORIES = {
    1: "very_much_improved",
    2: "much_improved",
    3: "minimally_improved",
    4: "no_change",
    5: "minimally_worse",
    6: "much_worse",
    7: "very_much_worse",
}
PARAPHRASE_CAVEAT = "administered with paraphrased items; the licensed item text was not used"


@dataclass(frozen=True)
class Score:
    """One computed score. `value` is None when the answers do not allow one (see `missing`)."""

    instrument_id: str
    instrument_version: str
    name: str
    value: float | int | bool | None
    complete: bool
    raw: int | None = None
    category: str | None = None
    missing: tuple[str, ...] = ()
    fields: Mapping[str, AnswerValue] = field(default_factory=lambda: MappingProxyType({}))
    red_flags: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class NrsChange:
    """Change of an NRS score against baseline; negative delta = less pain."""

    baseline: int
    current: int
    delta: int
    percent: float | None
    improved: bool
    worsened: bool


def koos_jr_interval(raw: int, table: list[float]) -> float:
    """The interval score (0-100) for a KOOS JR raw score 0-28, from the HSS table."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < len(table):
        raise ValueError(f"KOOS JR raw score must be a whole number 0-{len(table) - 1}, got {raw!r}")
    return table[raw]


def nrs_change(baseline: int, current: int, *, mcid_abs: float = 2, mcid_pct: float = 30) -> NrsChange:
    for name, value in (("baseline", baseline), ("current", current)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise ValueError(f"{name} must be a whole number 0-10, got {value!r}")
    delta = current - baseline
    percent = None if baseline == 0 else round(100.0 * delta / baseline, 1)
    improved = -delta >= mcid_abs or (percent is not None and -percent >= mcid_pct)
    worsened = delta >= mcid_abs or (percent is not None and percent >= mcid_pct)
    return NrsChange(baseline, current, delta, percent, improved, worsened)


def nrs_change_for(instrument: Instrument, baseline: int, current: int) -> NrsChange:
    """nrs_change with the MCID thresholds of the instrument file."""
    scoring = instrument.scoring
    if not isinstance(scoring, NrsScoring):
        raise ValueError(f"instrument {instrument.id!r} is not scored as an NRS")
    return nrs_change(baseline, current, mcid_abs=scoring.mcid_abs, mcid_pct=scoring.mcid_pct)


def score(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> Score:
    """Score one instrument's answers. Raises ValueError when an answer is not a valid value of its item
    (answers from parse_answer always are)."""
    for item in instrument.items:
        _check(item, answers.get(item.id))
    scoring = instrument.scoring
    if isinstance(scoring, KoosJrScoring):
        return _koos_jr(instrument, scoring, answers)
    if isinstance(scoring, FieldsScoring):
        return _fields(instrument, answers)
    value = answers.get(scoring.item)
    missing = () if value is not None else (scoring.item,)
    if isinstance(scoring, NrsScoring | ValueScoring):
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))
        flags = (scoring.item,) if _is_red_flag(instrument.item(scoring.item), value) else ()
        return _score(instrument, scoring.method, value, missing=missing, red_flags=flags)
    if isinstance(scoring, PgicScoring):
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))
        category = PGIC_CATEGORIES.get(value) if value is not None else None
        flags = (scoring.item,) if value in scoring.worse else ()
        return _score(instrument, "pgic", value, missing=missing, category=category, red_flags=flags)
    assert isinstance(scoring, PassScoring) and (value is None or isinstance(value, bool))
    category = None if value is None else ("acceptable" if value else "not_acceptable")
    return _score(instrument, "pass", value, missing=missing, category=category)


def _score(
    instrument: Instrument,
    name: str,
    value: float | int | bool | None,
    *,
    missing: tuple[str, ...] = (),
    category: str | None = None,
    red_flags: tuple[str, ...] = (),
) -> Score:
    return Score(
        instrument_id=instrument.id,
        instrument_version=instrument.version,
        name=name,
        value=value,
        complete=not missing,
        category=category,
        missing=missing,
        red_flags=red_flags,
    )


def pgic_group(value: int, scoring: PgicScoring) -> str:
    """improved (1-2), worse (6-7) or unchanged (3-5: minimal change either way or none)."""
    if value in scoring.improved:
        return "improved"
    if value in scoring.worse:
        return "worse"
    return "unchanged"


def _koos_jr(instrument: Instrument, scoring: KoosJrScoring, answers: Mapping[str, AnswerValue]) -> Score:
    missing = tuple(i for i in scoring.items if answers.get(i) is None)
    caveats = (PARAPHRASE_CAVEAT,) if instrument.licence == "paraphrase_of_third_party" else ()
    raw: int | None = None
    value: float | None = None
    if not (missing and scoring.require_all_items):
        raw = sum(int(answers[i] or 0) for i in scoring.items if answers.get(i) is not None)
        value = koos_jr_interval(raw, scoring.raw_to_interval)
    return Score(
        instrument_id=instrument.id,
        instrument_version=instrument.version,
        name="koos_jr_interval",
        value=value,
        complete=not missing,
        raw=raw,
        missing=missing,
        caveats=caveats,
    )


def _fields(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> Score:
    recorded = {i.id: answers[i.id] for i in instrument.items if answers.get(i.id) is not None}
    flags = tuple(i.id for i in instrument.items if i.id in recorded and _is_red_flag(i, recorded[i.id]))
    required = [i for i in instrument.items if not (i.optional or i.ask_if or i.only_if_setting)]
    missing = tuple(i.id for i in required if i.id not in recorded)
    return Score(
        instrument_id=instrument.id,
        instrument_version=instrument.version,
        name="fields",
        value=None,
        complete=not missing,
        missing=missing,
        fields=MappingProxyType(recorded),
        red_flags=flags,
    )


def _is_red_flag(item: ItemType, value: AnswerValue) -> bool:
    if isinstance(item, YesNoItem):
        return item.red_flag_if is not None and value is item.red_flag_if
    if isinstance(item, ChoiceItem):
        choice = item.choice_for(value)
        return bool(choice and choice.red_flag)
    if isinstance(item, IntegerItem):
        return item.red_flag_at_or_above is not None and isinstance(value, int) and value >= item.red_flag_at_or_above
    if isinstance(item, TemperatureItem):
        limit = item.red_flag_at_or_above_c
        return limit is not None and isinstance(value, int | float) and value >= limit
    return False


def _check(item: ItemType, value: AnswerValue) -> None:
    if value is None:
        return
    ok = True
    if isinstance(item, IntegerItem):
        ok = isinstance(value, int) and not isinstance(value, bool) and item.min <= value <= item.max
    elif isinstance(item, YesNoItem):
        ok = isinstance(value, bool)
    elif isinstance(item, ChoiceItem):
        ok = not isinstance(value, bool) and item.choice_for(value) is not None
    elif isinstance(item, TemperatureItem):
        low, high = item.plausible_c
        ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{item.id}: {value!r} is not a valid answer")
