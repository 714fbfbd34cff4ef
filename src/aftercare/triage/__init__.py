"""Triage: rules as data (config/triage.yaml) over survey answers, free text and context; pure, no database.

    from aftercare.triage import TriageInput, evaluate
    result = evaluate(TriageInput(day=4, text="tengo fiebre 38,7"))
    result.severity      # "urgent"
    result.rules         # ["U1-fever-measured", "U2-fever-reported", "T0-free-text"]
    result.routes        # ("page_on_call", "acknowledge_patient", "human_queue")
    result.needs_human   # True
"""

from aftercare.triage.context import TriageInput, describe_errors, known_answers
from aftercare.triage.engine import FiredRule, TriageResult, evaluate
from aftercare.triage.fields import ANSWER_FIELDS, FIELDS
from aftercare.triage.freetext import Finding, TextReading, classify, read
from aftercare.triage.rules import HUMAN_ROUTES, ROUTES, Rule, RulesError, RuleSet, Tier, load_rules, parse_rules

__all__ = [
    "ANSWER_FIELDS",
    "FIELDS",
    "HUMAN_ROUTES",
    "ROUTES",
    "Finding",
    "FiredRule",
    "Rule",
    "RuleSet",
    "RulesError",
    "TextReading",
    "Tier",
    "TriageInput",
    "TriageResult",
    "classify",
    "describe_errors",
    "evaluate",
    "known_answers",
    "load_rules",
    "parse_rules",
    "read",
]
