"""The reply parser: a table of real-looking replies in en and es, and properties over any input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftercare.instruments import (
    REASONS,
    ChoiceItem,
    FreeTextItem,
    InstrumentRegistry,
    IntegerItem,
    ItemType,
    Outcome,
    TemperatureItem,
    YesNoItem,
    parse_answer,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = InstrumentRegistry.from_dir(ROOT / "config" / "instruments")
TABLE: list[list[Any]] = yaml.safe_load((ROOT / "tests" / "data" / "replies.yaml").read_text(encoding="utf-8"))
ALL_ITEMS: list[ItemType] = [item for instrument in REGISTRY.all() for item in instrument.items]


def item_for(ref: str) -> ItemType:
    instrument_id, _, item_id = ref.partition(".")
    return REGISTRY.get(instrument_id).item(item_id or instrument_id)


def test_the_table_is_big_and_varied() -> None:
    assert len(TABLE) >= 150
    assert {row[1] for row in TABLE} == {"en", "es"}
    assert sum(row[1] == "es" for row in TABLE) >= 50
    assert {row[3] for row in TABLE} == {o.value for o in Outcome}


@pytest.mark.parametrize("row", TABLE, ids=[f"{r[0]}|{r[1]}|{r[2][:40]}" for r in TABLE])
def test_reply_table(row: list[Any]) -> None:
    ref, language, text, outcome, value, *reason = row
    result = parse_answer(item_for(ref), text, language)
    assert (result.outcome.value, result.value) == (outcome, value), result
    if reason:
        assert result.reason == reason[0], result
    assert result.raw == text


def test_a_need_help_answer_is_handed_to_a_human() -> None:
    item = item_for("quick_status")
    assert parse_answer(item, "1", "en").handoff
    assert parse_answer(item, "ayuda", "es").handoff
    assert not parse_answer(item, "0", "en").handoff


def test_words_beyond_the_answer_are_flagged_for_free_text_triage() -> None:
    item = item_for("quick_status")
    assert not parse_answer(item, "0", "en").extra_text
    assert parse_answer(item, "0 but my calf is swollen", "en").extra_text
    assert not parse_answer(item_for("nrs_now"), "pain is about 7", "en").extra_text


def test_a_1600_character_reply_is_read_quickly_and_kept_whole() -> None:
    text = ("my knee has been bothering me all day and " * 40)[:1590] + " pain 7"
    result = parse_answer(item_for("nrs_now"), text, "en")
    assert result.raw == text and len(text) == 1597
    assert (result.outcome, result.value, result.extra_text) == (Outcome.OK, 7, True)
    free = parse_answer(item_for("redflag_checkin.free_text"), "x" * 1700, "en")
    assert free.ok and free.value == "x" * 1600 and free.raw == "x" * 1700 and free.note


def test_results_serialise_for_storage() -> None:
    data = parse_answer(item_for("redflag_checkin.temp_c"), "101 F", "en").to_dict()
    assert data == {
        "outcome": "ok",
        "value": 38.3,
        "raw": "101 F",
        "reason": "temperature_f",
        "item_id": "temp_c",
        "handoff": False,
        "extra_text": False,
        "note": "101 °F = 38.3 °C",
    }


def test_non_text_input_counts_as_empty() -> None:
    item = item_for("nrs_now")
    assert parse_answer(item, None, "en").reason == "empty"
    assert parse_answer(item, 7, "xx").value == 7  # an unknown language reads as English


def check_invariants(item: ItemType, text: str, result: Any) -> None:
    assert result.outcome in set(Outcome)
    assert result.reason in REASONS[result.outcome] and result.reason != "internal_error", result
    assert result.raw == text and result.item_id == item.id
    if result.outcome is not Outcome.OK:
        assert not result.handoff
        if result.outcome is not Outcome.OUT_OF_RANGE:
            assert result.value is None
        return
    if result.value is None:
        assert item.optional and result.reason == "skipped"
    elif isinstance(item, IntegerItem):
        assert type(result.value) is int and item.min <= result.value <= item.max
    elif isinstance(item, YesNoItem):
        assert type(result.value) is bool
    elif isinstance(item, ChoiceItem):
        assert item.choice_for(result.value) is not None
        assert result.handoff == item.choice_for(result.value).handoff  # type: ignore[union-attr]
    elif isinstance(item, TemperatureItem):
        assert type(result.value) is float and item.plausible_c[0] <= result.value <= item.plausible_c[1]
    elif isinstance(item, FreeTextItem):
        assert isinstance(result.value, str) and len(result.value) <= item.max_length


VOCABULARY = sorted(
    {w for row in TABLE for w in str(row[2]).split()}
    | {"/", "-", "?", "¿", "°", ",", ".", "10", "0", "-1", "stop", "no", "sí", "y", "out of", "de", "F", "C"}
)
noisy_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=1700),
    st.lists(st.sampled_from(VOCABULARY), max_size=12).map(" ".join),
    st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=4)), max_size=8).map("".join),
    st.from_regex(r"-?\d{1,30}([.,]\d{1,5})?\s?(°|F|C|/10|-\d{1,3})?", fullmatch=True),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=st.sampled_from(ALL_ITEMS), text=noisy_text, language=st.sampled_from(["en", "es", "fr", ""]))
def test_no_input_crashes_the_parser(item: ItemType, text: str, language: str) -> None:
    check_invariants(item, text, parse_answer(item, text, language))


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_the_table_items_hold_their_invariants_on_any_text(text: str) -> None:
    for item in (item_for("quick_status"), item_for("redflag_checkin.temp_c"), item_for("patient_global")):
        check_invariants(item, text, parse_answer(item, text, "es"))
