"""The free-text reader: what it finds in English and Spanish messages, and how it decides whether it is present,
negated, over, about someone else or hypothetical."""

from __future__ import annotations

from typing import Any

import pytest

from aftercare.triage import classify, read
from aftercare.triage.freetext import normalize


def fields(text: str) -> dict[str, Any]:
    return {k: v for k, v in read(text).fields.items() if k != "text_present"}


def status(text: str, concept: str) -> str:
    found = [f for f in read(text).findings if f.concept == concept]
    assert found, f"no {concept} in {text!r}: {read(text).findings}"
    return found[0].status


def test_normalising_keeps_decimals_and_drops_accents_and_apostrophes() -> None:
    assert normalize("Tengo 38,7°C y escalofríos") == ["tengo", "38.7", "deg", "c", "y", "escalofrios"]
    assert normalize("I can't walk. 101F") == ["i", "cant", "walk", ".", "101", "f"]
    assert normalize("pain 9/10!") == ["pain", "9", "/", "10", "!"]


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("I have a fever", "fever_or_chills_reported", True),
        ("tengo fiebre", "fever_or_chills_reported", True),
        ("fievre since this morning", "fever_or_chills_reported", True),  # typo, one letter off
        ("calentura", "fever_or_chills_reported", True),
        ("escalofríos", "fever_or_chills_reported", True),
        ("can't breathe", "breathless_or_chest_pain", True),
        ("cant breath", "breathless_or_chest_pain", True),
        ("no puedo respirar", "breathless_or_chest_pain", True),
        ("me duele el pecho", "breathless_or_chest_pain", True),
        ("my throat is closing", "allergic_symptoms", "face_throat_or_breathing"),
        ("hives all over", "allergic_symptoms", "skin_only"),
        ("there is pus", "wound_drainage", "pus"),
        ("supura", "wound_drainage", "pus"),
        ("a little clear fluid", "wound_drainage", "clear"),
        ("cant walk", "can_bear_weight", "none"),
        ("no puedo apoyar la pierna", "can_bear_weight", "none"),
        ("can't walk far yet", "can_bear_weight", "partial"),
        ("pantorrilla hinchada", "calf_pain_or_swelling_one_leg", True),
        ("my calf hurts", "calf_pain_or_swelling_one_leg", True),
        ("bleeding through the dressing", "harvest_site_bleeding", "soaking"),
        ("a tiny bit of blood on the gauze", "harvest_site_bleeding", "spotting"),
        ("the hip is bleeding", "harvest_site_bleeding", "soaking"),  # no amount: the higher
        ("redness spreading up the leg", "knee_redness", "spreading"),
        ("more swollen than yesterday", "swelling_trend", "worse"),
        ("cada vez más hinchada", "swelling_trend", "worse"),
        ("swelling is no better", "swelling_trend", "same"),
        ("la hinchazón no baja", "swelling_trend", "same"),
        ("swelling going down", "swelling_trend", "better"),
        ("me caí", "fall_or_new_injury", True),
        ("took an advil", "nsaid_taken", True),
        ("can I take ibuprofen?", "nsaid_asked", True),
        ("unbearable", "severe_pain_words", True),
        ("please call me", "help_requested", True),
    ],
)
def test_red_flags_in_english_and_spanish(text: str, field: str, value: Any) -> None:
    assert fields(text).get(field) == value, read(text).findings


@pytest.mark.parametrize(
    "text",
    ["no fever", "sin fiebre", "denies chest pain", "no tengo dolor en la pantorrilla", "fever: none",
     "ni fiebre ni escalofríos", "No chest pain, no trouble breathing, calf fine", "I don't think I have a fever",
     "no redness, swelling or fever", "fiebre no"],
)
def test_negations_clear_the_flag(text: str) -> None:
    assert not {k for k, v in fields(text).items() if v not in ("better", "partial")} - {"swelling_trend"}, (
        read(text).findings
    )


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("no fever but my calf is swollen", "calf_pain_or_swelling_one_leg"),
        ("sin fiebre pero con escalofríos", "fever_or_chills_reported"),
        ("No, I have a fever", "fever_or_chills_reported"),
        ("No puedo respirar bien", "breathless_or_chest_pain"),  # "no" that is not a negation
        ("the fever hasn't gone away", "fever_or_chills_reported"),
        ("Short of breath, never had this before", "breathless_or_chest_pain"),
    ],
)
def test_a_negation_does_not_reach_past_its_clause(text: str, flag: str) -> None:
    assert fields(text).get(flag), read(text).findings


@pytest.mark.parametrize(
    ("text", "celsius"),
    [("38.5", 38.5), ("101F", 38.3), ("101.3 degrees", 38.5), ("39 grados", 39.0), ("38,7", 38.7),
     ("fiebre de 38", 38.0), ("temp 100.4", 38.0), ("38.2°C", 38.2), ("thermometer says 99.1", 37.3),
     ("102 fahrenheit", 38.9)],
)
def test_temperatures_in_celsius_and_fahrenheit(text: str, celsius: float) -> None:
    assert fields(text)["temp_c"] == celsius


@pytest.mark.parametrize(
    "text",
    ["walked 100 meters", "I'm 38 years old", "day 38", "took 2 x 200mg ibuprofen", "my appointment is at 10:30",
     "did 40 reps"],
)
def test_other_numbers_are_not_temperatures(text: str) -> None:
    assert "temp_c" not in fields(text)


@pytest.mark.parametrize(
    ("text", "score"),
    [("pain 9/10", 9), ("9 out of 10", 9), ("the pain is a nine", 9), ("nueve de diez", 9), ("dolor de 10", 10),
     ("pain 1 out of 10", 1), ("dolor 4 de 10", 4), ("pain about a seven", 7), ("pain was 8 the first night, now 3", 3),
     ("it's like 8 or 9", None)],
)
def test_pain_scores_in_digits_and_words(text: str, score: int | None) -> None:
    assert fields(text).get("nrs_now") == score


def test_pain_number_words_need_pain_nearby() -> None:
    assert "nrs_now" not in fields("Nine days after the shot")
    assert "nrs_now" not in fields("pain is fine, walked 3 blocks")
    assert fields("pain ok, it's 8 or 9 at night")["nrs_now"] == 9


def test_time_past_and_resolved() -> None:
    assert status("Had a fever on day 2 but it's gone now", "fever") == "resolved"
    assert fields("Had a fever on day 2 but it's gone now") == {"text_resolved_flag": True}
    assert status("ya no tengo fiebre", "fever") == "resolved"
    past = [f for f in read("I had chills last night").findings if f.concept == "chills"][0]
    assert past.status == "present" and past.past and past.confidence == "low"  # may still be current
    assert fields("I had chills last night")["fever_or_chills_reported"] is True
    assert status("knee not red anymore", "redness") == "resolved"
    assert "text_resolved_flag" not in fields("knee not red anymore")  # redness that passed is no red flag


def test_a_reading_that_came_down_stays_on_record() -> None:
    assert fields("temp 38.6 last night, 37.2 now") == {"temp_c": 37.2, "temp_c_past_max": 38.6}
    assert fields("38.4 on Tuesday but normal since")["temp_c_past_max"] == 38.4
    masked = fields("38.3 earlier, 37.1 after tylenol")  # fever medicine: masked, not gone
    assert masked["temp_c"] == 38.3


@pytest.mark.parametrize(
    ("text", "about_other"),
    [
        ("my husband has a fever", True),
        ("mi esposo tiene fiebre", True),
        ("My husband says I have a fever", False),
        ("mi esposo dice que tengo fiebre", False),
        ("My son has a fever and so do I", False),
        ("I think my wife has the chills", True),
        ("My husband is sick. He has a fever.", True),
        ("Escribo por mi mamá. Tiene fiebre", False),  # a proxy: the mother is the patient
        ("This is her daughter. She has chills", False),
        ("Mi mamá (la paciente) tiene fiebre", False),
    ],
)
def test_who_it_is_about(text: str, about_other: bool) -> None:
    result = fields(text)
    assert bool(result.get("text_about_other")) is about_other, read(text).findings
    assert bool(result.get("fever_or_chills_reported")) is not about_other


def test_hypotheticals_and_information_questions_raise_nothing() -> None:
    for text in ("What should I do if I get a fever?", "¿Qué hago si me da fiebre?", "what are the signs of a clot?",
                 "is there a risk of infection if I swim?", "what if my calf starts hurting on the flight?"):
        assert fields(text) == {}, (text, read(text).findings)
    assert fields("Sí, tengo fiebre")["fever_or_chills_reported"] is True  # "sí" = yes, not "if"


def test_words_that_look_like_red_flags() -> None:
    for text in ("fell asleep with the ice on", "I'm on a blood thinner", "can I use a heating pad?",
                 "my calves are sore from the exercises", "the injection went well", "breathing exercises help",
                 "my hands are shaking from too much coffee", "er, I think it's fine", "I have a UTI, antibiotics ok?"):
        found = {k for k, v in fields(text).items() if v is not False}
        assert not found & {"fall_or_new_injury", "harvest_site_bleeding", "knee_warmth",
                            "calf_pain_or_swelling_one_leg", "suspected_infection", "breathless_or_chest_pain"}, text


@pytest.mark.parametrize(
    ("text", "day", "kind", "answers"),
    [
        ("STOP", 3, "keyword", {}),
        ("ok gracias", 3, "keyword", {}),
        ("Thank you!", 3, "keyword", {}),
        ("👍", 3, "keyword", {}),
        ("1", 2, "answer", {"help_requested": True}),
        ("0", 2, "answer", {}),
        ("1", 60, "free_text", {}),
        ("help", 3, "free_text", {}),
        ("my knee hurts", 3, "free_text", {}),
        ("   ", 3, None, {}),
    ],
)
def test_classify(text: str, day: float, kind: str | None, answers: dict[str, Any]) -> None:
    assert classify(text, day=day) == (kind, answers)


def test_an_infection_elsewhere_is_being_unwell_not_a_joint_infection() -> None:
    assert fields("I have an ear infection") == {"feels_unwell": True}
    assert fields("tengo infección de orina") == {"feels_unwell": True}
    assert fields("the knee looks infected") == {"suspected_infection": True}


def test_help_alone_is_a_request_for_help() -> None:
    assert fields("HELP")["help_requested"] is True
