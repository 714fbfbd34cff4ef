"""Triage rules as data (config/triage.yaml): schema and loader. Every problem names the rule id and the field."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from aftercare.configfile import FileCache
from aftercare.triage.conditions import Condition, ConditionError, compile_condition
from aftercare.triage.fields import FIELDS


class Tier(StrEnum):
    """Severity tiers, most severe first (clinical.md §2.2)."""

    emergency = "emergency"
    urgent = "urgent"
    review = "review"
    routine = "routine"

    @property
    def rank(self) -> int:
        """4 for emergency down to 1 for routine (0 is kept for "no rule fired")."""
        return {"emergency": 4, "urgent": 3, "review": 2, "routine": 1}[self.value]


# What a fired rule asks the rest of the system to do. The wiring (paging, queue, outbox) acts on these names.
ROUTES: dict[str, str] = {
    "tell_patient_emergency": "tell the patient at once to call the local emergency number",
    "page_on_call": "page the on-call physician (SMS + email with a link, no PHI); escalate when not acknowledged",
    "acknowledge_patient": "send the patient an acknowledgement with what to do if it gets worse",
    "human_now": "put it in front of a person at once (top of the queue, staff notified) without paging",
    "queue_review": "physician review queue, within 1-2 business days",
    "human_queue": "a person reads the message (coordinator inbox); never auto-answered",
    "outreach_call": "the coordinator calls the patient",
    "log": "logged only",
}
HUMAN_ROUTES = frozenset(ROUTES) - {"log"}

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONSTANT = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_RULE_KEYS = {"id", "tier", "when", "reason", "routes", "education", "note", "enabled"}
_TOP_KEYS = {"version", "constants", "tiers", "rules"}


class RulesError(ValueError):
    """A rules file that cannot be used. `problems` lists each one, naming the rule and the field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n  ".join(problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n  {listed}")


@dataclass(frozen=True)
class Rule:
    """One rule: when its condition is true, the message gets its tier, reason and routes."""

    id: str
    tier: Tier
    condition: Condition
    reason: str
    routes: tuple[str, ...]
    education: str | None = None
    note: str | None = None

    @property
    def when(self) -> str:
        return self.condition.source

    def explain(self, facts: Mapping[str, Any]) -> str:
        """The reason with its {placeholders} filled from the facts ('?' when missing)."""
        return _PLACEHOLDER.sub(lambda m: _show_value(facts.get(m.group(1).strip())), self.reason)


def _show_value(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass(frozen=True)
class RuleSet:
    """The validated rules of one file, in file order, with their constants and default routes per tier."""

    source: str
    version: int
    constants: Mapping[str, bool | int | float | str]
    tier_routes: Mapping[Tier, tuple[str, ...]]
    rules: tuple[Rule, ...]

    def get(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def default_rules_path() -> Path:
    from aftercare.settings import get_settings

    return get_settings().config_dir / "triage.yaml"


def _parse_file(path: Path) -> RuleSet:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesError(str(path), [f"not valid YAML: {exc}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(path), [f"cannot read the rules file: {exc}"]) from exc
    return parse_rules(raw, source=str(path))


_FILES = FileCache(_parse_file, default_rules_path, lambda path, exc: RulesError(
    str(path), [f"cannot read the rules file: {exc.strerror or exc}"]))


def load_rules(path: Path | None = None) -> RuleSet:
    """The rules file at `path` (default: config/triage.yaml, looked at most once a second), validated; parsed
    again when the file changes."""
    return _FILES.get(path)


def parse_rules(raw: object, *, source: str = "<rules>") -> RuleSet:
    """Validate a parsed rules document; RulesError lists every problem at once."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise RulesError(source, ["expected a mapping with version, constants, tiers and rules at the top level"])
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.append(f"{key}: unknown top-level key (expected {', '.join(sorted(_TOP_KEYS))})")
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append(f"version: must be a whole number, got {version!r}")
        version = 1
    constants = _constants(raw.get("constants") or {}, problems)
    tier_routes = _tiers(raw.get("tiers") or {}, problems)
    rules = _rules(raw.get("rules"), constants, tier_routes, problems)
    if problems:
        raise RulesError(source, problems)
    return RuleSet(source, version, constants, tier_routes, tuple(rules))


def _constants(raw: object, problems: list[str]) -> dict[str, bool | int | float | str]:
    if not isinstance(raw, dict):
        problems.append("constants: must be a mapping of name: value")
        return {}
    constants: dict[str, bool | int | float | str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _CONSTANT.match(name):
            problems.append(f"constants.{name}: a constant name is lower_case_with_underscores")
        elif name in FIELDS:
            problems.append(f"constants.{name}: clashes with the field {name!r}; choose another name")
        elif not isinstance(value, bool | int | float | str):
            problems.append(f"constants.{name}: must be a number, true/false or text, got {value!r}")
        else:
            constants[name] = value
    return constants


def _tiers(raw: object, problems: list[str]) -> dict[Tier, tuple[str, ...]]:
    defaults = {
        Tier.emergency: ("tell_patient_emergency", "page_on_call"),
        Tier.urgent: ("page_on_call", "acknowledge_patient"),
        Tier.review: ("queue_review",),
        Tier.routine: ("log",),
    }
    if not isinstance(raw, dict):
        problems.append("tiers: must be a mapping of tier: {routes: [...]}")
        return defaults
    for name, body in raw.items():
        if name not in Tier.__members__:
            problems.append(f"tiers.{name}: unknown tier (expected one of {', '.join(Tier)})")
            continue
        if not isinstance(body, dict) or set(body) - {"routes"}:
            problems.append(f"tiers.{name}: expected {{routes: [...]}}")
            continue
        routes = _routes(body.get("routes"), f"tiers.{name}.routes", problems)
        if routes is not None:
            defaults[Tier(name)] = routes
    return defaults


def _routes(raw: object, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: must be a non-empty list of routes ({', '.join(ROUTES)})")
        return None
    unknown = [r for r in raw if r not in ROUTES]
    if unknown:
        problems.append(f"{where}: unknown route(s) {', '.join(map(repr, unknown))} (expected {', '.join(ROUTES)})")
        return None
    return tuple(dict.fromkeys(raw))


def _rules(
    raw: object,
    constants: Mapping[str, bool | int | float | str],
    tier_routes: Mapping[Tier, tuple[str, ...]],
    problems: list[str],
) -> list[Rule]:
    if not isinstance(raw, list) or not raw:
        problems.append("rules: must be a non-empty list of rules")
        return []
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, body in enumerate(raw):
        rule = _rule(index, body, constants, tier_routes, seen, problems)
        if rule is not None:
            rules.append(rule)
    return rules


Problem = Callable[[str, str], None]


def _rule(
    index: int,
    body: object,
    constants: Mapping[str, bool | int | float | str],
    tier_routes: Mapping[Tier, tuple[str, ...]],
    seen: set[str],
    problems: list[str],
) -> Rule | None:
    if not isinstance(body, dict):
        problems.append(f"rules[{index}]: each rule is a mapping with id, tier, when and reason")
        return None
    rule_id = body.get("id")
    label = f"rule {rule_id}" if isinstance(rule_id, str) and rule_id else f"rules[{index}] (no id)"
    before = len(problems)

    def problem(key: str, message: str) -> None:
        problems.append(f"{label}, {key}: {message}")

    _check_id(rule_id, seen, problem)
    for key in sorted(set(body) - _RULE_KEYS):
        problem(key, f"unknown key (expected {', '.join(sorted(_RULE_KEYS))})")
    if body.get("enabled", True) is False:
        return None
    tier_name = body.get("tier")
    if tier_name not in Tier.__members__:
        problem("tier", f"unknown tier {tier_name!r} (expected one of {', '.join(Tier)})")
    reason = _reason(body.get("reason"), constants, problem)
    condition = _condition(body.get("when"), constants, problem)
    routes = _routes(body["routes"], f"{label}, routes", problems) if "routes" in body else None
    education, note = body.get("education"), body.get("note")
    if education is not None and (not isinstance(education, str) or not _SLUG.match(education)):
        problem("education", f"must be a reply id like nsaid_hold, got {education!r}")
    if note is not None and not isinstance(note, str):
        problem("note", "must be text")
    if len(problems) > before or condition is None or reason is None:
        return None
    tier = Tier(str(tier_name))
    return Rule(str(rule_id), tier, condition, reason, routes or tier_routes[tier], education, note)


def _check_id(rule_id: object, seen: set[str], problem: Problem) -> None:
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        problem("id", "required: letters, digits, '-', '_' or '.', starting with a letter")
    elif rule_id in seen:
        problem("id", f"{rule_id!r} is used by another rule")
    else:
        seen.add(rule_id)


def _reason(raw: object, constants: Mapping[str, bool | int | float | str], problem: Problem) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        problem("reason", "required: a sentence a clinician can read")
        return None
    for name in _PLACEHOLDER.findall(raw):
        if name.strip() not in FIELDS and name.strip() not in constants:
            problem("reason", f"placeholder {{{name}}} is not a field")
    return raw.strip()


def _condition(raw: object, constants: Mapping[str, bool | int | float | str], problem: Problem) -> Condition | None:
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    if not isinstance(raw, str) or not raw.strip():
        problem("when", "required: a condition such as `temp_c >= 38.0 and day <= 21`")
        return None
    try:
        return compile_condition(raw, FIELDS, constants)
    except ConditionError as exc:
        where = f"when (field {exc.field})" if exc.field else "when"
        problem(where, f"{exc} in `{raw.strip()}`")
        return None
