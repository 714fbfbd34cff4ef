"""evaluate(input) -> TriageResult: read the text, merge it with the answers, run every rule, keep the highest tier.

Pure: no database, no clock, no I/O besides loading the rules and lexicon files once. The caller (inbound path,
flow) stores the result and acts on its routes.

Human reading is guaranteed here, not left to the rules file: a free-text message (not a keyword, not a survey
answer) always has `needs_human=True`, even if a clinic deletes the rule that routes it to the human queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from aftercare.triage import freetext
from aftercare.triage.context import DERIVED_FROM, Facts, TriageInput, Value, build_facts
from aftercare.triage.freetext import Finding, TextReading
from aftercare.triage.lexicon import Lexicon, load_lexicon
from aftercare.triage.rules import HUMAN_ROUTES, Rule, RuleSet, Tier, load_rules

Severity = Literal["emergency", "urgent", "review", "routine", "none"]


@dataclass(frozen=True)
class FiredRule:
    """A rule whose condition was true, with its reason filled in and the text evidence behind it."""

    id: str
    tier: Tier
    reason: str
    routes: tuple[str, ...]
    education: str | None
    evidence: tuple[str, ...]

    @property
    def explained(self) -> str:
        """The reason followed by the words of the message it rests on."""
        return f"{self.reason} [text: {'; '.join(self.evidence)}]" if self.evidence else self.reason


@dataclass(frozen=True)
class TriageResult:
    """The outcome for one input: severity (the highest tier fired, or "none"), rules, reasons and routes."""

    severity: Severity
    fired: tuple[FiredRule, ...]
    needs_human: bool
    routes: tuple[str, ...]
    education: tuple[str, ...]
    text_kind: str | None
    findings: tuple[Finding, ...]
    facts: Mapping[str, Value]
    rules_source: str

    @property
    def tier(self) -> Tier | None:
        return None if self.severity == "none" else Tier(self.severity)

    @property
    def rank(self) -> int:
        """4 emergency, 3 urgent, 2 review, 1 routine, 0 none."""
        return 0 if self.tier is None else self.tier.rank

    @property
    def rules(self) -> list[str]:
        return [f.id for f in self.fired]

    @property
    def reasons(self) -> list[str]:
        return [f.explained for f in self.fired]

    def to_dict(self) -> dict[str, Any]:
        """The dry-run line: severity, rules, reasons, then what the wiring acts on and what the text said."""
        return {
            "severity": self.severity,
            "rules": self.rules,
            "reasons": self.reasons,
            "needs_human": self.needs_human,
            "routes": list(self.routes),
            "education": list(self.education),
            "text_kind": self.text_kind,
            "findings": [f.to_dict() for f in self.findings],
        }


def evaluate(inp: TriageInput, rules: RuleSet | None = None, lexicon: Lexicon | None = None) -> TriageResult:
    """Triage one input against `rules`, reading its text with `lexicon` (defaults: the configured files)."""
    ruleset = rules or load_rules()
    lexicon = lexicon or load_lexicon()
    kind, implied_answers = _kind(inp, lexicon)
    reading = freetext.read(inp.text, lexicon) if kind == "free_text" and inp.text else None
    if reading is None and kind is not None and kind != "free_text" and inp.text and inp.text_kind is not None:
        reading = _answer_text_reading(inp.text, lexicon)
    facts = build_facts(inp, reading, implied_answers)
    fired = [_fire(rule, facts, reading) for rule in ruleset.rules if rule.condition.evaluate(facts.values) is True]
    fired.sort(key=lambda f: -f.tier.rank)  # stable: file order within a tier
    routes = tuple(dict.fromkeys(route for f in fired for route in f.routes))
    education = tuple(dict.fromkeys(f.education for f in fired if f.education))
    needs_human = kind == "free_text" or any(route in HUMAN_ROUTES for route in routes)
    severity = cast(Severity, fired[0].tier.value if fired else "none")
    return TriageResult(
        severity=severity,
        fired=tuple(fired),
        needs_human=needs_human,
        routes=routes,
        education=education,
        text_kind=kind,
        findings=reading.findings if reading else (),
        facts=dict(facts.values),
        rules_source=ruleset.source,
    )


def _kind(inp: TriageInput, lexicon: Lexicon) -> tuple[str | None, dict[str, object]]:
    if inp.text is None or not inp.text.strip():
        return None, {}
    if inp.text_kind is not None:
        return inp.text_kind, {}
    return freetext.classify(inp.text, day=inp.day, survey=inp.survey, lexicon=lexicon)


def _answer_text_reading(text: str, lexicon: Lexicon) -> TextReading | None:
    """A reply the parser took as an answer is still read for red flags, but does not go to the human queue."""
    reading = freetext.read(text, lexicon)
    fields = {k: v for k, v in reading.fields.items() if k != "text_present"}
    if not any(f.status == "present" and f.high for f in reading.findings):
        return None
    return TextReading("answer", reading.findings, fields, reading.evidence)


def _fire(rule: Rule, facts: Facts, reading: TextReading | None) -> FiredRule:
    evidence: list[str] = []
    if reading is not None:
        for name in sorted(rule.condition.fields):
            for source_field in DERIVED_FROM.get(name, (name,)):
                if "text" in facts.sources.get(source_field, "") or source_field in reading.evidence:
                    for item in reading.evidence.get(source_field, ()):
                        if item not in evidence:
                            evidence.append(item)
    return FiredRule(rule.id, rule.tier, rule.explain(facts.values), rule.routes, rule.education, tuple(evidence))
