"""The words triage rules are written in: every field a rule may name, with its type and where it comes from.

Answer fields are the check-in / survey vocabulary of clinical.md §7 (the instruments speak it too). Free text is
read onto the same answer fields, plus a few text-only fields. Context fields describe the moment (days since T0,
which survey). Derived fields are computed from answers, baseline and the previous answers.
`baseline.<answer field>` and `previous.<answer field>` name the baseline survey and the previous check-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["bool", "number", "enum", "id"]
Source = Literal["answer", "text", "context", "derived"]


@dataclass(frozen=True)
class FieldSpec:
    """One field: its type, its allowed values and where its value comes from."""

    name: str
    kind: FieldKind
    source: Source
    doc: str
    values: tuple[str, ...] = ()  # enum values, least to most concerning
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False

    def severity_rank(self, value: object) -> int:
        """Position of an enum value in concern order (higher = more concerning)."""
        return self.values.index(str(value))


def _b(name: str, source: Source, doc: str) -> FieldSpec:
    return FieldSpec(name, "bool", source, doc)


def _n(name: str, source: Source, doc: str, lo: float | None = None, hi: float | None = None,
       integer: bool = False) -> FieldSpec:
    return FieldSpec(name, "number", source, doc, minimum=lo, maximum=hi, integer=integer)


def _e(name: str, values: tuple[str, ...], doc: str) -> FieldSpec:
    return FieldSpec(name, "enum", "answer", doc, values=values)


_ANSWERS = (
    _n("nrs_now", "answer", "pain now, 0-10", 0, 10, integer=True),
    _n("nrs_worst_24h", "answer", "worst pain in the last 24 h, 0-10", 0, 10, integer=True),
    _n("nrs_pain", "answer", "pain (outcome survey / baseline), 0-10", 0, 10, integer=True),
    _n("temp_c", "answer", "measured temperature, degrees C", 30, 45),
    _b("fever_or_chills_reported", "answer", "fever or chills reported"),
    _e("knee_redness", ("none", "local", "spreading"), "redness of the knee"),
    _b("knee_warmth", "answer", "the knee feels warm or hot"),
    _e("swelling_trend", ("better", "same", "worse"), "knee swelling compared with the last check-in"),
    _e("can_bear_weight", ("full", "partial", "none"), "weight bearing on the treated leg"),
    _b("calf_pain_or_swelling_one_leg", "answer", "pain or swelling of one calf / leg (DVT sign)"),
    _b("breathless_or_chest_pain", "answer", "breathlessness or chest pain (PE sign)"),
    _e("allergic_symptoms", ("none", "skin_only", "face_throat_or_breathing"), "allergic reaction"),
    _e("wound_drainage", ("none", "clear", "pus"), "drainage from the injection or harvest site"),
    _e("harvest_site_bleeding", ("none", "spotting", "soaking"), "bleeding at the harvest (or injection) site"),
    _b("numbness_or_weakness", "answer", "numbness or weakness of the leg"),
    _b("nsaid_taken", "answer", "an NSAID was taken"),
    _b("fall_or_new_injury", "answer", "a fall or a new injury"),
    _n("pgic", "answer", "patient global impression of change, 1 (very much improved) - 7 (very much worse)",
       1, 7, integer=True),
    _n("koos_jr", "answer", "KOOS JR interval score, 0 (worst) - 100 (best)", 0, 100),
    _b("pass", "answer", "patient acceptable symptom state: the current state is satisfactory"),
    _b("help_requested", "answer", "the patient asked for help (early check-in answer '1', or 'please call me')"),
    _e("quick_status", ("all_fine", "need_help"), "early check-in quick answer: 0 = all fine, 1 = I need help"),
    _n("patient_global", "answer", "patient global assessment, 0 (very well) - 100 (very poor)", 0, 100, True),
)

_TEXT = (
    _b("text_present", "text", "the message has free text that is not a keyword or a survey answer"),
    _b("text_about_other", "text", "a red flag is mentioned about someone else (my husband has a fever)"),
    _b("text_resolved_flag", "text", "a red flag is mentioned as past and resolved (fever on day 2, gone now)"),
    _n("temp_c_past_max", "text", "highest temperature the text reports as past, degrees C", 30, 45),
    _b("suspected_infection", "text", "the patient says it looks infected"),
    _b("seeking_emergency_care", "text", "mentions 911, an ambulance, the ER or going to hospital"),
    _b("fainting", "text", "fainted, passed out, collapsed"),
    _b("dizziness", "text", "dizzy or light-headed"),
    _b("feels_unwell", "text", "generally unwell: flu-like, vomiting, feels awful"),
    _b("getting_worse", "text", "says it is getting worse"),
    _b("severe_pain_words", "text", "pain described as unbearable, excruciating, the worst ever"),
    _b("nsaid_asked", "text", "asks whether an NSAID may be taken"),
)

_CONTEXT = (
    _n("day", "context", "days since T0 (the procedure); negative before it"),
    FieldSpec("survey", "id", "context", "id of the survey answered (checkin, checkin_plus, wk6, mo3, mo6 ...)"),
    _n("missed_checkins", "context", "early check-ins missed so far", 0, None, integer=True),
)

_DERIVED = (
    _n("pain_now", "derived", "current pain: nrs_now, else nrs_pain (answers or text)"),
    _n("baseline_pain", "derived", "baseline pain: baseline.nrs_pain, else baseline.nrs_now"),
    _n("nrs_drop", "derived", "baseline_pain - pain_now (positive = better)"),
    _n("nrs_drop_pct", "derived", "nrs_drop as a percentage of baseline_pain"),
    _n("koos_jr_gain", "derived", "koos_jr - baseline.koos_jr (positive = better)"),
    _n("pain_rise", "derived", "pain_now - the previous check-in's pain (positive = worse)"),
)

ANSWER_FIELDS: dict[str, FieldSpec] = {f.name: f for f in _ANSWERS}
TEXT_FIELDS: dict[str, FieldSpec] = {f.name: f for f in _TEXT}
CONTEXT_FIELDS: dict[str, FieldSpec] = {f.name: f for f in _CONTEXT}
DERIVED_FIELDS: dict[str, FieldSpec] = {f.name: f for f in _DERIVED}
NAMESPACES = ("baseline", "previous")


def _all_fields() -> dict[str, FieldSpec]:
    fields: dict[str, FieldSpec] = {}
    for group in (ANSWER_FIELDS, TEXT_FIELDS, CONTEXT_FIELDS, DERIVED_FIELDS):
        fields.update(group)
    for namespace in NAMESPACES:
        for spec in _ANSWERS:
            fields[f"{namespace}.{spec.name}"] = FieldSpec(
                f"{namespace}.{spec.name}", spec.kind, "context", f"{namespace}: {spec.doc}",
                spec.values, spec.minimum, spec.maximum, spec.integer,
            )
    return fields


FIELDS: dict[str, FieldSpec] = _all_fields()


def check_value(spec: FieldSpec, value: object) -> object:
    """The value as the field's type, or ValueError saying what was expected."""
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {value!r}")
        if spec.integer and value != int(value):
            raise ValueError(f"must be a whole number, got {value!r}")
        if spec.minimum is not None and value < spec.minimum or spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"must be between {_fmt(spec.minimum)} and {_fmt(spec.maximum)}, got {value!r}")
        return value
    if spec.kind == "enum":
        if value not in spec.values:
            raise ValueError(f"must be one of {'|'.join(spec.values)}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a text id, got {value!r}")
    return value


def _fmt(bound: float | None) -> str:
    return "any" if bound is None else f"{bound:g}"


def more_concerning(spec: FieldSpec, a: object, b: object) -> object:
    """Of two values of one field, the more concerning: true over false, higher number, later enum value.

    Lower weight bearing and lower KOOS JR / PASS are worse, but merging only ever happens on answer fields where
    the text reader reports a concern, so "higher = worse" holds for the numbers it can read (pain, temperature).
    """
    if a is None:
        return b
    if b is None:
        return a
    if spec.kind == "bool":
        return bool(a) or bool(b)
    if spec.kind == "enum":
        return a if spec.severity_rank(a) >= spec.severity_rank(b) else b
    if spec.kind == "number":
        assert isinstance(a, int | float) and isinstance(b, int | float)
        return max(a, b)
    return a
