"""Read a patient's free text (English or Spanish) for red flags, onto the fields the triage rules use.

The reader normalises the text (case, accents, apostrophes, "38,7" -> 38.7, "101F" -> "101 f"), splits it into
sentences and clauses, finds red-flag concepts (lexicon.py), pain numbers and temperatures, and decides for each
finding whether it is present, negated ("no fever", "sin fiebre", "denies chest pain"), resolved ("not red anymore",
"fever on day 2, gone now"), about someone else ("my husband has a fever") or hypothetical ("what if I get a
fever?"). When it cannot tell, it reads the more concerning way: a past symptom that is not said to be over counts
as current (with lower confidence), a hedge ("I think I have a fever") counts, "bleeding" without an amount counts
as soaking, and a red flag about someone else or one that has resolved still goes to a person (review).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aftercare.triage.fields import FIELDS, more_concerning
from aftercare.triage.findings import Finding
from aftercare.triage.lexicon import Lexicon, load_lexicon
from aftercare.triage.reader import Reader
from aftercare.triage.textdoc import SEGMENT_PUNCT, SENTENCE_END, Doc, normalize

TextKind = Literal["free_text", "keyword", "answer"]


@dataclass(frozen=True)
class TextReading:
    """What a message says, as fields for the rules, with the findings behind each field."""

    kind: TextKind
    findings: tuple[Finding, ...] = ()
    fields: Mapping[str, object] = field(default_factory=dict)
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def classify(
    text: str | None, *, day: float, survey: str | None = None, lexicon: Lexicon | None = None
) -> tuple[TextKind | None, dict[str, object]]:
    """What kind of message this is: a carrier keyword or acknowledgement, an early check-in "0"/"1", or free text.

    Returns the kind (None for no text) and any answers it stands for ("1" on an early check-in = help_requested).
    """
    if text is None or not text.strip():
        return None, {}
    lexicon = lexicon or load_lexicon()
    words = " ".join(t for t in normalize(text, lexicon) if t not in SENTENCE_END and t not in SEGMENT_PUNCT)
    early = survey.startswith("checkin") if survey else 0 <= day <= 14
    if words in ("0", "1") and early:
        return "answer", ({"help_requested": True} if words == "1" else {})
    if not words or words in lexicon.keywords:
        return "keyword", {}
    return "free_text", {}


def read(text: str, lexicon: Lexicon | None = None) -> TextReading:
    """Findings and fields of one free-text message (words: `lexicon`, default the configured one)."""
    lexicon = lexicon or load_lexicon()
    doc = Doc(normalize(text, lexicon))
    findings = Reader(doc, lexicon).findings()
    if lexicon.antipyretics.search(doc.text):  # "38.3 earlier, 37.1 after tylenol": masked, not gone
        findings = [_unmask(f) for f in findings]
    return _reading(findings, lexicon.recheck_if_resolved)


def _unmask(finding: Finding) -> Finding:
    if finding.status == "resolved" and finding.concept in ("fever", "chills"):
        return Finding(finding.concept, finding.field, finding.value, finding.words + " (fever medicine taken)",
                       "present", past=True, hedged=finding.hedged, high=finding.high)
    if finding.concept == "temperature" and finding.past and finding.high:
        return Finding(finding.concept, finding.field, finding.value, finding.words + " (fever medicine taken)",
                       finding.status, past=False, hedged=finding.hedged, high=finding.high)
    return finding


class _Fields:
    """Field values read from the text, with the findings behind each."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {"text_present": True}
        self.evidence: dict[str, list[str]] = {}

    def set(self, name: str, value: object, finding: Finding) -> None:
        self.values[name] = value
        self.note(name, finding)

    def merge(self, finding: Finding) -> None:
        """The finding's value, or the more concerning of it and what is already there."""
        assert finding.field is not None
        spec = FIELDS[finding.field]
        self.set(finding.field, more_concerning(spec, self.values.get(finding.field), finding.value), finding)

    def note(self, name: str, finding: Finding) -> None:
        said = self.evidence.setdefault(name, [])
        if finding.describe() not in said:
            said.append(finding.describe())


_NUMBERS = ("pain_number", "temperature")


def _reading(findings: list[Finding], recheck_if_resolved: frozenset[str]) -> TextReading:
    fields = _Fields()
    _number_fields([f for f in findings if f.concept in _NUMBERS], fields)
    for finding in findings:
        if finding.status == "other_person" and finding.high:
            fields.set("text_about_other", True, finding)
        elif finding.concept in _NUMBERS:
            continue
        elif finding.status == "present" and finding.field:
            fields.merge(finding)
        elif finding.status == "resolved" and finding.concept in recheck_if_resolved:
            fields.set("text_resolved_flag", True, finding)
    return TextReading("free_text", tuple(findings), fields.values, {k: tuple(v) for k, v in fields.evidence.items()})


def _number_fields(numbers: list[Finding], fields: _Fields) -> None:
    """Current readings win; past ones count when nothing current is given; readings that are over are recorded."""
    for concept in _NUMBERS:
        readings = [f for f in numbers if f.concept == concept]
        current = [f for f in readings if f.status == "present" and not f.past]
        past = [f for f in readings if f.status == "present" and f.past]
        over = [f for f in readings if f.status == "resolved"]
        if not current:  # only past readings, not said to be over: they may still be current
            current, past = past, []
        for finding in current:
            fields.merge(finding)
        if concept == "temperature" and past + over:
            hottest = max(past + over, key=lambda f: float(f.value))  # type: ignore[arg-type]
            fields.set("temp_c_past_max", hottest.value, hottest)
