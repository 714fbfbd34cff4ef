"""Triage rules: the shipped file loads, bad files are refused naming the rule and field, the condition language
behaves (three-valued logic for missing answers), and every shipped rule fires on its case and not on its neighbour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aftercare.triage import RulesError, Tier, TriageInput, evaluate, load_rules, parse_rules
from aftercare.triage.conditions import ConditionError, compile_condition
from aftercare.triage.fields import FIELDS

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "triage.yaml"
RULES = load_rules(SHIPPED)


def ruleset(*rules: dict[str, Any], constants: dict[str, Any] | None = None) -> Any:
    return parse_rules({"version": 1, "constants": constants or {}, "rules": list(rules)}, source="test.yaml")


def problems(*rules: dict[str, Any], **top: Any) -> str:
    body: dict[str, Any] = {"rules": list(rules), **top}
    with pytest.raises(RulesError) as info:
        parse_rules(body, source="test.yaml")
    return str(info.value)


GOOD = {"id": "U1", "tier": "urgent", "when": "temp_c >= 38", "reason": "Fever"}


# ------------------------------------------------------------------------------------------------ the shipped file


def test_shipped_rules_load_and_cover_every_tier() -> None:
    assert {rule.tier for rule in RULES.rules} == set(Tier)
    assert len({rule.id for rule in RULES.rules}) == len(RULES.rules)
    assert RULES.constants["fever_c"] == 38.0


def test_shipped_rules_cover_the_issue_list() -> None:
    """Every red flag the issue names has a rule, and names the field it reads."""
    fields_used = set().union(*(rule.condition.fields for rule in RULES.rules))
    for name in ("temp_c", "fever_or_chills_reported", "wound_drainage", "knee_redness", "swelling_trend",
                 "can_bear_weight", "calf_pain_or_swelling_one_leg", "harvest_site_bleeding", "nrs_worst_24h",
                 "breathless_or_chest_pain", "allergic_symptoms", "baseline_pain", "pgic", "fall_or_new_injury",
                 "nrs_drop", "nrs_drop_pct", "koos_jr_gain", "help_requested", "text_present",
                 "previous.swelling_trend", "day", "survey"):
        assert name in fields_used, name


# ------------------------------------------------------------------------------------------------ loader errors


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"when": "temp_f >= 38"}, "rule U1, when (field temp_f): unknown field 'temp_f' (did you mean 'temp_c'?)"),
        ({"when": "temp_c => 38"}, "rule U1, when: unknown operator or symbol '=>'"),
        ({"when": "temp_c >= 38 and"}, "rule U1, when: expected a field, a value or '('"),
        ({"when": "temp_c 38"}, "rule U1, when: unexpected '38'"),
        ({"tier": "urgnet"}, "rule U1, tier: unknown tier 'urgnet' (expected one of emergency, urgent, review"),
        ({"routes": ["page_oncall"]}, "rule U1, routes: unknown route(s) 'page_oncall'"),
        ({"reason": ""}, "rule U1, reason: required"),
        ({"reason": "Fever {temperature}"}, "rule U1, reason: placeholder {temperature} is not a field"),
        ({"tire": "urgent"}, "rule U1, tire: unknown key"),
        ({"when": "knee_redness == sprading"}, "when (field knee_redness): 'sprading' is not a value of knee_redness"),
        ({"when": "knee_redness == 'sprading'"}, "'sprading' is not a value of knee_redness (one of none|local|spr"),
        ({"when": "knee_redness >= local"}, "'>=' compares numbers; knee_redness is enum"),
        ({"when": "temp_c"}, "the condition must be true or false, but temp_c is number"),
        ({"when": "fever_or_chills_reported >= 38"}, "cannot compare fever_or_chills_reported (bool) with 38"),
        ({"when": "pgic in 6"}, "'in' needs a [list] of values"),
        ({"when": "survey is"}, "expected 'is set' or 'is missing'"),
        ({"education": "Nsaid Hold"}, "rule U1, education: must be a reply id"),
        ({"when": ""}, "rule U1, when: required"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_rule_and_field(change: dict[str, Any], expected: str) -> None:
    assert expected in problems({**GOOD, **change})


def test_every_problem_is_listed_at_once() -> None:
    message = problems(
        {**GOOD, "when": "temp_f >= 38"},
        {"id": "R1", "tier": "reviw", "when": "pgic >= 6", "reason": "PGIC"},
        {"id": "U1", "tier": "urgent", "when": "day <= 3", "reason": "again"},
        {"tier": "review", "when": "day <= 3", "reason": "no id"},
    )
    assert "4 problem(s)" in message
    assert "rule U1, when (field temp_f)" in message
    assert "rule R1, tier: unknown tier 'reviw'" in message
    assert "rule U1, id: 'U1' is used by another rule" in message
    assert "rules[3] (no id), id: required" in message


def test_top_level_problems_are_named() -> None:
    assert "colour: unknown top-level key" in problems(GOOD, colour="red")
    assert "constants.temp_c: clashes with the field 'temp_c'" in problems(GOOD, constants={"temp_c": 38})
    assert "tiers.critical: unknown tier" in problems(GOOD, tiers={"critical": {"routes": ["log"]}})
    assert "tiers.urgent.routes: unknown route(s) 'sms'" in problems(GOOD, tiers={"urgent": {"routes": ["sms"]}})
    with pytest.raises(RulesError, match="rules: must be a non-empty list"):
        parse_rules({"rules": []})
    with pytest.raises(RulesError, match="expected a mapping"):
        parse_rules(["not", "a", "mapping"])


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "triage.yaml"
    path.write_text("rules: [ {id: x")
    with pytest.raises(RulesError, match=f"(?s){path}.*not valid YAML"):
        load_rules(path)
    with pytest.raises(RulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "missing.yaml")
    path.write_text("rules:\n  - {id: U1, tier: urgent, when: temp_f >= 38, reason: x}\n")
    with pytest.raises(RulesError, match=r"rule U1, when \(field temp_f\)"):
        load_rules(path)


def test_a_changed_file_is_reloaded_and_a_disabled_rule_is_skipped(tmp_path: Path) -> None:
    import os

    path = tmp_path / "triage.yaml"
    path.write_text("rules:\n  - {id: A, tier: review, when: pgic >= 6, reason: worse}\n")
    assert [r.id for r in load_rules(path).rules] == ["A"]
    path.write_text("rules:\n  - {id: A, tier: review, when: pgic >= 6, reason: worse, enabled: false}\n"
                    "  - {id: B, tier: review, when: pgic >= 5, reason: worse}\n")
    os.utime(path, (1, 1))  # a different mtime even within the same second
    assert [r.id for r in load_rules(path).rules] == ["B"]


def test_routes_default_from_the_tier_and_can_be_overridden() -> None:
    rules = ruleset(GOOD, {"id": "H", "tier": "review", "when": "help_requested", "reason": "help",
                           "routes": ["human_now"]})
    assert rules.get("U1").routes == ("page_on_call", "acknowledge_patient")
    assert rules.get("H").routes == ("human_now",)


# ------------------------------------------------------------------------------------------------ condition language


def cond(source: str, **constants: Any) -> Any:
    return compile_condition(source, FIELDS, constants)


@pytest.mark.parametrize(
    ("source", "facts", "expected"),
    [
        ("temp_c >= 38", {"temp_c": 38.0}, True),
        ("temp_c >= 38", {"temp_c": 37.9}, False),
        ("temp_c >= 38", {}, None),  # missing: unknown, never true
        ("not (temp_c < 38)", {}, None),
        ("temp_c >= 38 or day <= 3", {"day": 2}, True),  # unknown or true = true
        ("temp_c >= 38 and day <= 3", {"day": 9}, False),  # unknown and false = false
        ("temp_c >= 38 and day <= 3", {"day": 2}, None),
        ("knee_redness == spreading", {"knee_redness": "spreading"}, True),
        ("knee_redness != none", {}, None),
        ("survey in [mo3, mo6]", {"survey": "mo6"}, True),
        ("survey not in [mo3, mo6]", {"survey": "wk6"}, True),
        ("pgic in [6, 7]", {"pgic": 5}, False),
        ("pain_now > baseline.nrs_pain + 1", {"pain_now": 7, "baseline.nrs_pain": 5}, True),
        ("pain_now > baseline.nrs_pain + 1", {"pain_now": 6, "baseline.nrs_pain": 5}, False),
        ("nrs_drop / baseline_pain * 100 < 30", {"nrs_drop": 1, "baseline_pain": 6}, True),
        ("nrs_drop / baseline_pain < 1", {"nrs_drop": 1, "baseline_pain": 0}, None),  # no division by zero
        ("temp_c is set", {}, False),
        ("temp_c is missing", {}, True),
        ("-day > 2", {"day": -3}, True),
        ("fever_or_chills_reported == true", {"fever_or_chills_reported": True}, True),
        ("NOT calf_pain_or_swelling_one_leg OR day > 1", {"calf_pain_or_swelling_one_leg": False}, True),
    ],
)
def test_conditions_use_three_valued_logic(source: str, facts: dict[str, Any], expected: bool | None) -> None:
    assert cond(source).evaluate(facts) is expected


def test_constants_are_replaced_and_fields_recorded() -> None:
    condition = cond("temp_c >= fever_c and day <= window", fever_c=38.0, window=21)
    assert condition.evaluate({"temp_c": 38.2, "day": 21}) is True
    assert condition.fields == frozenset({"temp_c", "day"})


def test_the_language_cannot_reach_python() -> None:
    for source in ("__import__('os')", "temp_c.__class__", "open('x')", "temp_c >= 38; day", "lambda: 1"):
        with pytest.raises(ConditionError):
            cond(source)


# ------------------------------------------------------------------------------------------------ engine, rule by rule

# (rule id, input that fires it, a neighbouring input that must not)
PER_RULE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("E1-breathing-chest", {"day": 4, "answers": {"breathless_or_chest_pain": True}},
     {"day": 4, "answers": {"breathless_or_chest_pain": False}}),
    ("E2-face-throat", {"day": 0, "answers": {"allergic_symptoms": "face_throat_or_breathing"}},
     {"day": 0, "answers": {"allergic_symptoms": "skin_only"}}),
    ("E3-fainting", {"day": 1, "text": "I fainted"}, {"day": 1, "text": "I felt faint"}),
    ("U1-fever-measured", {"day": 21, "answers": {"temp_c": 38.0}}, {"day": 21, "answers": {"temp_c": 37.9}}),
    ("U2-fever-reported", {"day": 21, "answers": {"fever_or_chills_reported": True}},
     {"day": 22, "answers": {"fever_or_chills_reported": True}}),
    ("U3-pus", {"day": 5, "answers": {"wound_drainage": "pus"}}, {"day": 5, "answers": {"wound_drainage": "clear"}}),
    ("U3b-looks-infected", {"day": 5, "text": "looks infected"}, {"day": 5, "text": "no sign of infection"}),
    ("U4-escalating-knee", {"day": 3, "answers": {"swelling_trend": "worse", "knee_warmth": True}},
     {"day": 2, "answers": {"swelling_trend": "worse", "knee_warmth": True}}),
    ("U4b-swelling-worse-twice",
     {"day": 4, "answers": {"swelling_trend": "worse"}, "previous": {"swelling_trend": "worse"}},
     {"day": 4, "answers": {"swelling_trend": "worse"}, "previous": {"swelling_trend": "same"}}),
    ("U5-cannot-bear-weight", {"day": 1, "answers": {"can_bear_weight": "none"}},
     {"day": 1, "answers": {"can_bear_weight": "partial"}}),
    ("U6-calf", {"day": 9, "answers": {"calf_pain_or_swelling_one_leg": True}},
     {"day": 9, "answers": {"calf_pain_or_swelling_one_leg": False}}),
    ("U7-bleeding", {"day": 0, "answers": {"harvest_site_bleeding": "soaking"}},
     {"day": 0, "answers": {"harvest_site_bleeding": "spotting"}}),
    ("U8-pain-9", {"day": 2, "answers": {"nrs_worst_24h": 9}}, {"day": 2, "answers": {"nrs_worst_24h": 8}}),
    ("U9-emergency-services", {"day": 5, "text": "I'm at the ER"}, {"day": 5, "text": "not an emergency"}),
    ("R0-asked-for-help", {"day": 2, "answers": {"help_requested": True}}, {"day": 2, "text": "0"}),
    ("R0-asked-for-help", {"day": 2, "answers": {"quick_status": "need_help"}},
     {"day": 2, "answers": {"quick_status": "all_fine"}}),
    ("R1-high-pain-early", {"day": 3, "answers": {"nrs_worst_24h": 7}}, {"day": 4, "answers": {"nrs_worst_24h": 7}}),
    ("R2-numbness", {"day": 1, "answers": {"numbness_or_weakness": True}},
     {"day": 0, "answers": {"numbness_or_weakness": True}}),
    ("R3-pain-above-baseline", {"day": 7, "answers": {"nrs_now": 6}, "baseline": {"nrs_pain": 5}},
     {"day": 6, "answers": {"nrs_now": 6}, "baseline": {"nrs_pain": 5}}),
    ("R4-swelling-not-better", {"day": 14, "answers": {"swelling_trend": "same"}},
     {"day": 14, "answers": {"swelling_trend": "better"}}),
    ("R5-pgic-worse", {"day": 42, "answers": {"pgic": 6}}, {"day": 42, "answers": {"pgic": 5}}),
    ("R6-skin-allergy", {"day": 1, "answers": {"allergic_symptoms": "skin_only"}},
     {"day": 1, "answers": {"allergic_symptoms": "none"}}),
    ("R7-fall", {"day": 20, "answers": {"fall_or_new_injury": True}}, {"day": 20, "text": "fell asleep on the sofa"}),
    ("R8-non-responder",
     {"day": 91, "survey": "mo3", "answers": {"nrs_pain": 5, "koos_jr": 59}, "baseline": {"nrs_pain": 6,
      "koos_jr": 45}},
     {"day": 91, "survey": "mo3", "answers": {"nrs_pain": 4, "koos_jr": 59}, "baseline": {"nrs_pain": 6,
      "koos_jr": 45}}),
    ("R9-fever-late", {"day": 22, "answers": {"temp_c": 38.5}}, {"day": 21, "answers": {"temp_c": 38.5}}),
    ("R10-no-weight-day-0", {"day": 0, "answers": {"can_bear_weight": "none"}},
     {"day": 1, "answers": {"can_bear_weight": "none"}}),
    ("R11-someone-else", {"day": 3, "text": "my husband has a fever"}, {"day": 3,
     "text": "my husband says I have a fever"}),
    ("R12-red-flag-resolved", {"day": 5, "text": "had a fever on day 2, gone now"}, {"day": 5, "text": "no fever"}),
    ("R13-unwell", {"day": 2, "text": "throwing up all night"}, {"day": 30, "text": "throwing up all night"}),
    ("R14-worse-after-flare", {"day": 6, "text": "getting worse"}, {"day": 6, "text": "not getting worse"}),
    ("R15-pain-rising", {"day": 5, "answers": {"nrs_now": 5}, "previous": {"nrs_now": 3}},
     {"day": 5, "answers": {"nrs_now": 4}, "previous": {"nrs_now": 3}}),
    ("R16-red-hot-knee", {"day": 4, "answers": {"knee_warmth": True, "knee_redness": "local"}},
     {"day": 4, "answers": {"knee_warmth": True, "knee_redness": "none"}}),
    ("R17-high-pain-after-flare", {"day": 10, "answers": {"nrs_now": 8}}, {"day": 10, "answers": {"nrs_now": 7}}),
    ("C1-nsaid-taken", {"day": 14, "answers": {"nsaid_taken": True}}, {"day": 15, "answers": {"nsaid_taken": True}}),
    ("C1b-nsaid-question", {"day": 4, "text": "can I take advil?"}, {"day": 4, "text": "I took advil"}),
    ("C2-missed-checkins", {"day": 5, "missed_checkins": 2}, {"day": 5, "missed_checkins": 1}),
    ("C3-expected-flare", {"day": 2, "answers": {"nrs_now": 5}}, {"day": 2, "answers": {"nrs_now": 3}}),
    ("T0-free-text", {"day": 2, "text": "how long do I ice it?"}, {"day": 2, "text": "STOP"}),
]


def test_every_shipped_rule_has_a_case() -> None:
    assert {case[0] for case in PER_RULE} == {rule.id for rule in RULES.rules}


@pytest.mark.parametrize(("rule_id", "fires", "neighbour"), PER_RULE, ids=[case[0] for case in PER_RULE])
def test_each_rule_fires_on_its_case_and_not_its_neighbour(
    rule_id: str, fires: dict[str, Any], neighbour: dict[str, Any]
) -> None:
    hit = evaluate(TriageInput(**fires), RULES)
    assert rule_id in hit.rules, hit.reasons
    assert hit.rank >= RULES.get(rule_id).tier.rank
    miss = evaluate(TriageInput(**neighbour), RULES)
    assert rule_id not in miss.rules, miss.reasons


def test_result_carries_severity_routes_education_and_reasons() -> None:
    result = evaluate(TriageInput(day=4, text="tengo fiebre 38,7"), RULES)
    assert result.severity == "urgent" and result.tier is Tier.urgent
    assert result.rules[:2] == ["U1-fever-measured", "U2-fever-reported"]
    assert result.reasons[0].startswith("Temperature 38.7 C in the first 3 weeks (day 4)")
    assert '[text: "tengo fiebre 38.7"]' in result.reasons[0]
    assert result.routes == ("page_on_call", "acknowledge_patient", "human_queue")
    assert result.needs_human and result.text_kind == "free_text"
    flare = evaluate(TriageInput(day=2, answers={"nrs_now": 5, "nsaid_taken": True}), RULES)
    assert flare.severity == "routine" and flare.education == ("nsaid_hold", "expected_flare")
    assert not flare.needs_human  # answers, nothing for a person: logged with education replies


def test_severity_none_only_when_no_rule_fired() -> None:
    quiet = evaluate(TriageInput(day=5, answers={"nrs_now": 2, "swelling_trend": "better"}), RULES)
    assert (quiet.severity, quiet.rules, quiet.rank, quiet.needs_human) == ("none", [], 0, False)
    text = evaluate(TriageInput(day=5, text="all fine, thanks for asking"), RULES)
    assert text.severity == "routine" and text.rules == ["T0-free-text"] and text.routes == ("human_queue",)


def test_free_text_reaches_a_person_even_without_the_human_queue_rule() -> None:
    only_fever = ruleset(GOOD)
    result = evaluate(TriageInput(day=3, text="how long should I ice it?"), only_fever)
    assert result.severity == "none" and result.needs_human
    keyword = evaluate(TriageInput(day=3, text="STOP"), only_fever)
    assert keyword.text_kind == "keyword" and not keyword.needs_human


def test_text_does_not_clear_an_answer_and_the_more_concerning_value_wins() -> None:
    result = evaluate(TriageInput(day=4, text="no calf pain", answers={"calf_pain_or_swelling_one_leg": True}), RULES)
    assert "U6-calf" in result.rules
    merged = evaluate(TriageInput(day=5, text="temp 39", answers={"temp_c": 37.2}), RULES)
    assert merged.facts["temp_c"] == 39.0


def test_a_parsed_answer_is_still_read_for_red_flags_but_not_queued() -> None:
    plain = evaluate(TriageInput(day=3, text="7", text_kind="answer", answers={"nrs_now": 7}), RULES)
    assert plain.severity == "review" and "T0-free-text" not in plain.rules
    hidden = evaluate(TriageInput(day=3, text="7 and my calf is swollen", text_kind="answer"), RULES)
    assert "U6-calf" in hidden.rules


def test_an_early_checkin_one_goes_to_a_person_at_once() -> None:
    result = evaluate(TriageInput(day=2, text="1", survey="checkin"), RULES)
    assert result.severity == "review" and result.routes == ("human_now",) and result.needs_human
    late = evaluate(TriageInput(day=60, text="1"), RULES)
    assert late.text_kind == "free_text" and late.rules == ["T0-free-text"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"text": "hi"}, "day"),
        ({"day": "3"}, "day: must be a number"),
        ({"day": True}, "day: must be a number"),
        ({"day": 3, "answers": {"temp": 38}}, "answers.temp: unknown answer field (did you mean 'temp_c'?)"),
        ({"day": 3, "answers": {"knee_redness": "pink"}}, "answers.knee_redness: must be one of none|local|spreading"),
        ({"day": 3, "answers": {"nrs_now": 11}}, "answers.nrs_now: must be between 0 and 10"),
        ({"day": 3, "answers": {"nrs_now": 7.5}}, "answers.nrs_now: must be a whole number"),
        ({"day": 3, "baseline": {"koos_jr": "good"}}, "baseline.koos_jr: must be a number"),
        ({"day": 3, "colour": "red"}, "colour: unknown key"),
    ],
)
def test_bad_input_names_the_field(body: dict[str, Any], problem: str) -> None:
    from pydantic import ValidationError

    from aftercare.triage import describe_errors

    with pytest.raises(ValidationError) as info:
        TriageInput.model_validate(body)
    assert any(problem in line for line in describe_errors(info.value)), describe_errors(info.value)


def test_known_answers_drops_what_triage_does_not_read() -> None:
    from aftercare.triage import known_answers

    assert known_answers({"nrs_now": 3, "P2": 1, "koos_jr": 60}) == {"nrs_now": 3, "koos_jr": 60}
