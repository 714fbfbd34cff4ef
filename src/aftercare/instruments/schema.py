"""The shape of an instrument file. Errors carry the field path so the loader can name it.

An instrument is a list of items (one question each) plus how its answers are scored. Every item has an
SMS prompt per language (one SMS segment, with the answer format) and a web label (+ help) per language.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LANGUAGES: tuple[str, ...] = ("en", "es")
Language = Literal["en", "es"]
Scalar = str | int | bool
AnswerValue = int | float | bool | str | None
"""A parsed answer: int (integer items, integer-valued choices), str (word-valued choices, free text),
bool (yes/no), float (temperature in °C) or None (an optional item skipped)."""

_ID = r"^[a-z][a-z0-9_]*$"

# GSM 03.38: the basic set costs one unit, the extension set two; anything else forces UCS-2.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
SMS_SEGMENT_GSM7 = 160
SMS_SEGMENT_UCS2 = 70


EMERGENCY_NUMBER = "{emergency_number}"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_LONGEST_EMERGENCY_NUMBER = "9999999"


def fill(text: str, emergency_number: str) -> str:
    """The text with `{emergency_number}` replaced by the clinic's emergency number (e.g. 911, 112)."""
    return text.replace(EMERGENCY_NUMBER, emergency_number)


def _check_placeholders(value: str) -> str:
    unknown = [p for p in _PLACEHOLDER.findall(value) if p != EMERGENCY_NUMBER]
    if unknown:
        raise ValueError(f"unknown placeholder {unknown[0]}: only {EMERGENCY_NUMBER} is filled in")
    return value


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text)


def sms_units(text: str) -> tuple[int, int]:
    """(length in encoding units, one-segment limit) for `text`: GSM-7 when it can be, else UCS-2."""
    if is_gsm7(text):
        return sum(2 if ch in _GSM7_EXTENSION else 1 for ch in text), SMS_SEGMENT_GSM7
    return len(text.encode("utf-16-le")) // 2, SMS_SEGMENT_UCS2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    """One text per supported language."""

    en: str = Field(min_length=1)
    es: str = Field(min_length=1)

    def get(self, language: str) -> str:
        return self.es if language == "es" else self.en


class SmsText(Localized):
    """An SMS prompt: must fit one SMS segment (160 GSM-7 characters, or 70 if it needs Unicode)."""

    @field_validator("en", "es")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        _check_placeholders(value)
        units, limit = sms_units(fill(value, _LONGEST_EMERGENCY_NUMBER))
        if units > limit:
            offending = sorted({ch for ch in value if not is_gsm7(ch)})
            why = f" (non-GSM-7 characters {''.join(offending)!r} lower the limit to 70)" if offending else ""
            raise ValueError(f"SMS text is {units} characters, more than one segment of {limit}{why}: {value!r}")
        return value


class WebText(_Strict):
    label: str = Field(min_length=1)
    help: str | None = None

    @field_validator("label", "help")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        return value if value is None else _check_placeholders(value)

    def filled(self, emergency_number: str) -> WebText:
        help_text = None if self.help is None else fill(self.help, emergency_number)
        return WebText(label=fill(self.label, emergency_number), help=help_text)


class WebPrompt(_Strict):
    en: WebText
    es: WebText

    def get(self, language: str) -> WebText:
        return self.es if language == "es" else self.en


class Words(_Strict):
    """Extra words or phrases (per language) a patient may use; matched ignoring case and accents."""

    en: list[str] = Field(default_factory=list)
    es: list[str] = Field(default_factory=list)


Condition = dict[str, list[Scalar]]
"""`{name: [allowed values]}`: every name must hold one of its values."""


class _ItemBase(_Strict):
    id: str = Field(pattern=_ID, max_length=64)
    sms: SmsText
    web: WebPrompt
    clarify: SmsText | None = None
    optional: bool = False
    ask_if: Condition | None = None
    only_if_setting: Condition | None = None
    third_party_ref: str | None = None

    def applies(self, answers: dict[str, AnswerValue] | None = None, settings: dict[str, Scalar] | None = None) -> bool:
        """Whether to ask this item, given earlier answers in the instrument and the protocol's settings.

        `ask_if` names earlier items of the same instrument; `only_if_setting` names protocol settings
        (a setting the protocol does not have means "do not ask")."""
        answers = answers or {}
        settings = settings or {}
        for name, allowed in (self.ask_if or {}).items():
            if answers.get(name) not in allowed:
                return False
        for name, allowed in (self.only_if_setting or {}).items():
            if name not in settings or settings[name] not in allowed:
                return False
        return True


class IntegerItem(_ItemBase):
    """A whole number in [min, max] (NRS 0-10, patient global 0-100)."""

    type: Literal["integer"]
    min: int
    max: int
    anchors: dict[int, Localized] = Field(default_factory=dict)
    red_flag_at_or_above: int | None = None

    @model_validator(mode="after")
    def _range(self) -> IntegerItem:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        for anchor in self.anchors:
            if not self.min <= anchor <= self.max:
                raise ValueError(f"anchors: {anchor} is outside {self.min}-{self.max}")
        return self


class YesNoItem(_ItemBase):
    """Yes or no. `red_flag_if` is the answer that is a red flag (e.g. true for 'chest pain?').
    `yes_words` name the symptom itself: said without a negation ("no fever but chills") they mean yes."""

    type: Literal["yes_no"]
    red_flag_if: bool | None = None
    yes_words: Words = Words()


class Choice(_Strict):
    """One option. `key` is what the patient may type (e.g. "1"); `words` are other ways to say it."""

    value: str | int
    key: str = Field(pattern=r"^\d{1,3}$")
    label: Localized
    words: Words = Words()
    red_flag: bool = False
    handoff: bool = False

    @field_validator("value")
    @classmethod
    def _value_shape(cls, value: str | int) -> str | int:
        if isinstance(value, str) and not re.match(_ID, value):
            raise ValueError(f"a word value must be lower_snake_case, got {value!r}")
        return value


class ChoiceItem(_ItemBase):
    """One of a list. List choices from least to most concerning: when a reply names two, the more
    concerning (later) one is taken."""

    type: Literal["choice"]
    choices: list[Choice] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique(self) -> ChoiceItem:
        for attr in ("value", "key"):
            seen: set[object] = set()
            for index, choice in enumerate(self.choices):
                got = getattr(choice, attr)
                if got in seen:
                    raise ValueError(f"choices[{index}].{attr}: {got!r} is used twice")
                seen.add(got)
        if len({type(c.value) for c in self.choices}) > 1:
            raise ValueError("choices: values must be all words or all numbers")
        return self

    def choice_for(self, value: AnswerValue) -> Choice | None:
        return next((c for c in self.choices if c.value == value and type(c.value) is type(value)), None)


class TemperatureItem(_ItemBase):
    """A body temperature, stored in °C. Replies in °F are converted; outside `plausible_c` is refused."""

    type: Literal["temperature"]
    plausible_c: tuple[float, float] = (34.0, 43.0)
    red_flag_at_or_above_c: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TemperatureItem:
        low, high = self.plausible_c
        if not 25.0 <= low < high <= 45.0:
            raise ValueError(f"plausible_c must be two temperatures low < high within 25-45 °C, got {low}-{high}")
        return self


class FreeTextItem(_ItemBase):
    """The patient's own words, kept as typed (up to `max_length` characters)."""

    type: Literal["free_text"]
    max_length: int = Field(1600, ge=1, le=10_000)


Item = Annotated[IntegerItem | YesNoItem | ChoiceItem | TemperatureItem | FreeTextItem, Field(discriminator="type")]
ItemType = IntegerItem | YesNoItem | ChoiceItem | TemperatureItem | FreeTextItem


class NrsScoring(_Strict):
    """A 0-10 pain rating; change against baseline is meaningful at `mcid_abs` points or `mcid_pct` %."""

    method: Literal["nrs"]
    item: str
    mcid_abs: float = Field(2, gt=0)
    mcid_pct: float = Field(30, gt=0, le=100)


class ValueScoring(_Strict):
    """The item's value is the score (e.g. patient global 0-100)."""

    method: Literal["value"]
    item: str
    higher_is_worse: bool = True


class PgicScoring(_Strict):
    """Patient Global Impression of Change: the chosen category (1 very much improved ... 7 very much worse)."""

    method: Literal["pgic"]
    item: str
    improved: list[int] = Field(default_factory=lambda: [1, 2])
    worse: list[int] = Field(default_factory=lambda: [6, 7])


class PassScoring(_Strict):
    """Patient Acceptable Symptom State: yes (acceptable) or no."""

    method: Literal["pass"]
    item: str


class KoosJrScoring(_Strict):
    """KOOS JR: raw = sum of the 7 items (0-4 each) mapped to the 0-100 interval score by the HSS table."""

    method: Literal["koos_jr"]
    items: list[str] = Field(min_length=7, max_length=7)
    raw_to_interval: list[float] = Field(min_length=29, max_length=29)
    require_all_items: bool = True
    mcid_provisional: float | None = None

    @field_validator("raw_to_interval")
    @classmethod
    def _table(cls, table: list[float]) -> list[float]:
        if table[0] != 100.0 or table[-1] != 0.0:
            raise ValueError("the table must start at 100.0 (raw 0) and end at 0.0 (raw 28)")
        for raw in range(1, len(table)):
            if not table[raw] < table[raw - 1]:
                raise ValueError(f"the table must fall strictly: raw {raw} ({table[raw]}) >= raw {raw - 1}")
        return table


class FieldsScoring(_Strict):
    """No summary number: the answers are recorded as named fields, with the red-flag answers listed."""

    method: Literal["fields"]


Scoring = Annotated[
    NrsScoring | ValueScoring | PgicScoring | PassScoring | KoosJrScoring | FieldsScoring,
    Field(discriminator="method"),
]


class ThirdParty(_Strict):
    """Item text owned by someone else, kept under third_party/<folder>/ with its NOTICE."""

    folder: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    owner: str


Licence = Literal["free", "public_domain", "own_wording", "paraphrase_of_third_party", "third_party"]
"""third_party: the owner's official wording is used (under third_party/); paraphrase_of_third_party: our
own wording of a third-party instrument, so its scores carry a caveat."""


class Instrument(_Strict):
    id: str = Field(pattern=_ID, max_length=64)
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$", max_length=40)
    title: Localized
    description: str | None = None
    sources: list[str] = Field(default_factory=list)
    licence: Licence
    third_party: ThirdParty | None = None
    intro: SmsText | None = None
    items: list[Item] = Field(min_length=1)
    scoring: Scoring

    @model_validator(mode="after")
    def _references(self) -> Instrument:
        if self.licence.endswith("third_party") != (self.third_party is not None):
            raise ValueError("third_party: give it exactly when licence is third_party or paraphrase_of_third_party")
        by_id: dict[str, ItemType] = {}
        for index, item in enumerate(self.items):
            if item.id in by_id:
                raise ValueError(f"items[{index}].id: {item.id!r} is used twice")
            for name, allowed in (item.ask_if or {}).items():
                earlier = by_id.get(name)
                if earlier is None:
                    raise ValueError(f"items[{index}].ask_if: {name!r} is not an earlier item of this instrument")
                _check_condition_values(f"items[{index}].ask_if.{name}", earlier, allowed)
            if item.third_party_ref and self.third_party is None:
                raise ValueError(f"items[{index}].third_party_ref: the instrument has no third_party block")
            by_id[item.id] = item
        self._check_scoring(by_id)
        return self

    def _check_scoring(self, by_id: dict[str, ItemType]) -> None:
        scoring = self.scoring
        if isinstance(scoring, KoosJrScoring):
            for name in scoring.items:
                item = by_id.get(name)
                if not isinstance(item, ChoiceItem) or sorted(c.value for c in item.choices) != [0, 1, 2, 3, 4]:
                    raise ValueError(f"scoring.items: {name!r} must be a choice item with values 0-4")
            return
        if isinstance(scoring, FieldsScoring):
            return
        item = by_id.get(scoring.item)
        expected: dict[str, type] = {"nrs": IntegerItem, "value": IntegerItem, "pass": YesNoItem, "pgic": ChoiceItem}
        if not isinstance(item, expected[scoring.method]):
            raise ValueError(
                f"scoring.item: {scoring.item!r} must be a {expected[scoring.method].__name__} of this instrument"
            )
        if isinstance(scoring, NrsScoring) and isinstance(item, IntegerItem) and (item.min, item.max) != (0, 10):
            raise ValueError(f"scoring.item: an NRS item must range 0-10, {item.id!r} is {item.min}-{item.max}")
        if isinstance(scoring, PgicScoring) and isinstance(item, ChoiceItem):
            if sorted(c.value for c in item.choices) != list(range(1, 8)):
                raise ValueError(f"scoring.item: a PGIC item must have the values 1-7, {item.id!r} does not")

    def item(self, item_id: str) -> ItemType:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(f"instrument {self.id!r} has no item {item_id!r}")


def _check_condition_values(where: str, item: ItemType, allowed: list[Scalar]) -> None:
    if isinstance(item, ChoiceItem):
        values = {c.value for c in item.choices}
        bad = [v for v in allowed if v not in values or isinstance(v, bool)]
    elif isinstance(item, YesNoItem):
        bad = [v for v in allowed if not isinstance(v, bool)]
    elif isinstance(item, IntegerItem):
        bad = [v for v in allowed if isinstance(v, bool) or not isinstance(v, int) or not item.min <= v <= item.max]
    else:
        bad = []
    if bad:
        raise ValueError(f"{where}: {bad!r} cannot be answers of {item.id!r}")
