"""Scoring: the KOOS JR table at every raw score, NRS change with MCID, PGIC, PASS and the check-in fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftercare.instruments import InstrumentRegistry, koos_jr_interval, nrs_change, nrs_change_for, parse_answer, score
from aftercare.instruments.schema import KoosJrScoring, PgicScoring
from aftercare.instruments.scoring import PARAPHRASE_CAVEAT, pgic_group

REGISTRY = InstrumentRegistry.from_dir(Path(__file__).resolve().parents[1] / "config" / "instruments")
KOOS = REGISTRY.get("koos_jr")
KOOS_ITEMS = ["koos_s6", "koos_p2", "koos_p3", "koos_p6", "koos_p9", "koos_a3", "koos_a5"]

# HSS raw -> interval (Lyman et al. 2016), copied independently from shared/clinical.md §3.3.
HSS_TABLE = {
    0: 100.000, 1: 91.975, 2: 84.600, 3: 79.914, 4: 76.332, 5: 73.342, 6: 70.704, 7: 68.284, 8: 65.994,
    9: 63.776, 10: 61.583, 11: 59.381, 12: 57.140, 13: 54.840, 14: 52.465, 15: 50.012, 16: 47.487, 17: 44.905,
    18: 42.281, 19: 39.625, 20: 36.931, 21: 34.174, 22: 31.307, 23: 28.251, 24: 24.875, 25: 20.941, 26: 15.939,
    27: 8.291, 28: 0.000,
}  # fmt: skip


def answers_summing_to(raw: int) -> dict[str, int]:
    """Seven item answers 0-4 that add up to `raw`, spread unevenly (fill items from the last one)."""
    values = [0] * 7
    left = raw
    for index in reversed(range(7)):
        values[index] = min(4, left)
        left -= values[index]
    return dict(zip(KOOS_ITEMS, values, strict=True))


@pytest.mark.parametrize("raw", range(29))
def test_koos_jr_interval_matches_the_hss_table_at_every_raw_score(raw: int) -> None:
    scoring = KOOS.scoring
    assert isinstance(scoring, KoosJrScoring)
    assert koos_jr_interval(raw, scoring.raw_to_interval) == HSS_TABLE[raw]
    result = score(KOOS, answers_summing_to(raw))
    assert (result.raw, result.value, result.complete) == (raw, HSS_TABLE[raw], True)
    assert (result.instrument_id, result.instrument_version, result.name) == ("koos_jr", "1.0.0", "koos_jr_interval")


def test_koos_jr_scores_only_complete_responses() -> None:
    answers: dict[str, int | None] = {**answers_summing_to(10), "koos_p9": None}
    result = score(KOOS, answers)
    assert (result.value, result.raw, result.complete, result.missing) == (None, None, False, ("koos_p9",))
    del answers["koos_a5"]
    assert score(KOOS, answers).missing == ("koos_p9", "koos_a5")


def test_koos_jr_from_paraphrased_prompts_carries_a_caveat() -> None:
    assert PARAPHRASE_CAVEAT in score(KOOS, answers_summing_to(3)).caveats


def test_koos_jr_scored_from_sms_replies() -> None:
    replies = ["mild", "2", "severe", "3/4", "none", "moderado", "extremo"]
    answers = {}
    for item_id, reply in zip(KOOS_ITEMS, replies, strict=True):
        result = parse_answer(KOOS.item(item_id), reply, "es")
        assert result.ok, result
        answers[item_id] = result.value
    assert answers == dict(zip(KOOS_ITEMS, [1, 2, 3, 3, 0, 2, 4], strict=True))
    assert score(KOOS, answers).value == HSS_TABLE[15]


@pytest.mark.parametrize("raw", [-1, 29, 2.5, True, "7"])
def test_koos_jr_raw_outside_the_table_is_refused(raw: object) -> None:
    scoring = KOOS.scoring
    assert isinstance(scoring, KoosJrScoring)
    with pytest.raises(ValueError, match="KOOS JR raw score must be a whole number 0-28"):
        koos_jr_interval(raw, scoring.raw_to_interval)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("baseline", "current", "delta", "percent", "improved", "worsened"),
    [
        (6, 4, -2, -33.3, True, False),  # 2 points
        (7, 6, -1, -14.3, False, False),  # neither 2 points nor 30 %
        (3, 2, -1, -33.3, True, False),  # 30 % of a low baseline
        (1, 0, -1, -100.0, True, False),
        (5, 5, 0, 0.0, False, False),
        (4, 6, 2, 50.0, False, True),
        (0, 2, 2, None, False, True),  # no percent from a baseline of 0
        (0, 1, 1, None, False, False),
        (10, 7, -3, -30.0, True, False),
    ],
)
def test_nrs_change_against_baseline_uses_2_points_or_30_percent(
    baseline: int, current: int, delta: int, percent: float | None, improved: bool, worsened: bool
) -> None:
    change = nrs_change_for(REGISTRY.get("nrs_pain"), baseline, current)
    assert (change.delta, change.percent, change.improved, change.worsened) == (delta, percent, improved, worsened)


def test_nrs_change_thresholds_come_from_the_instrument_or_arguments() -> None:
    assert nrs_change(7, 6, mcid_abs=1, mcid_pct=15).improved
    with pytest.raises(ValueError, match="baseline must be a whole number 0-10"):
        nrs_change(11, 3)
    with pytest.raises(ValueError, match="not scored as an NRS"):
        nrs_change_for(REGISTRY.get("pgic"), 5, 3)


def test_nrs_score_records_the_instrument_version_and_red_flag() -> None:
    worst = REGISTRY.get("nrs_worst_24h")
    result = score(worst, {"nrs_worst_24h": 9})
    assert (result.instrument_id, result.instrument_version, result.value, result.red_flags) == (
        "nrs_worst_24h",
        "1.0.0",
        9,
        ("nrs_worst_24h",),
    )
    assert score(worst, {"nrs_worst_24h": 5}).red_flags == ()
    assert score(worst, {}).missing == ("nrs_worst_24h",)


@pytest.mark.parametrize(
    ("value", "category", "group", "flagged"),
    [
        (1, "very_much_improved", "improved", False),
        (2, "much_improved", "improved", False),
        (3, "minimally_improved", "unchanged", False),
        (4, "no_change", "unchanged", False),
        (5, "minimally_worse", "unchanged", False),
        (6, "much_worse", "worse", True),
        (7, "very_much_worse", "worse", True),
    ],
)
def test_pgic_categories(value: int, category: str, group: str, flagged: bool) -> None:
    pgic = REGISTRY.get("pgic")
    result = score(pgic, {"pgic": value})
    assert (result.value, result.category, bool(result.red_flags)) == (value, category, flagged)
    assert isinstance(pgic.scoring, PgicScoring)
    assert pgic_group(value, pgic.scoring) == group


def test_pass_and_patient_global() -> None:
    assert score(REGISTRY.get("pass"), {"pass": True}).category == "acceptable"
    assert score(REGISTRY.get("pass"), {"pass": False}).category == "not_acceptable"
    assert score(REGISTRY.get("pass"), {}).complete is False
    assert score(REGISTRY.get("patient_global"), {"patient_global": 35}).value == 35


def test_checkin_fields_list_red_flags_and_missing_items() -> None:
    checkin = REGISTRY.get("redflag_checkin")
    answers = {
        "fever_or_chills_reported": True,
        "temp_c": 38.4,
        "knee_redness": "spreading",
        "knee_warmth": True,
        "swelling_trend": "worse",
        "can_bear_weight": "partial",
        "calf_pain_or_swelling_one_leg": False,
        "breathless_or_chest_pain": False,
        "allergic_symptoms": "none",
        "wound_drainage": "none",
        "numbness_or_weakness": False,
        "fall_or_new_injury": False,
    }
    result = score(checkin, answers)
    assert result.complete and result.missing == ()  # harvest site (conditional) and free text (optional)
    assert result.red_flags == ("fever_or_chills_reported", "temp_c", "knee_redness")
    assert dict(result.fields) == answers
    partial = score(checkin, {"temp_c": 37.2})
    assert not partial.complete and "knee_redness" in partial.missing and partial.red_flags == ()


def test_quick_status_need_help_is_a_red_flag() -> None:
    quick = REGISTRY.get("quick_status")
    assert score(quick, {"quick_status": "need_help"}).red_flags == ("quick_status",)
    assert score(quick, {"quick_status": "all_fine"}).red_flags == ()


@pytest.mark.parametrize(
    ("instrument_id", "answers"),
    [
        ("nrs_now", {"nrs_now": 11}),
        ("nrs_now", {"nrs_now": True}),
        ("pgic", {"pgic": 8}),
        ("pass", {"pass": "yes"}),
        ("redflag_checkin", {"knee_redness": "purple"}),
        ("redflag_checkin", {"temp_c": 45.0}),
        ("koos_jr", {"koos_s6": 5}),
    ],
)
def test_invalid_answers_are_refused_naming_the_item(instrument_id: str, answers: dict[str, object]) -> None:
    item_id = next(iter(answers))
    with pytest.raises(ValueError, match=f"^{item_id}: "):
        score(REGISTRY.get(instrument_id), answers)  # type: ignore[arg-type]
