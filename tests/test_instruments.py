"""Instrument files: the shipped ones load and fit SMS; protocols only name instruments that exist;
licensing rules hold; a bad file is refused naming the file, the field and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aftercare.instruments import (
    ChoiceItem,
    InstrumentError,
    InstrumentRegistry,
    TemperatureItem,
    YesNoItem,
    clarify_prompt,
    load_instrument_file,
    sms_prompt,
    sms_units,
)
from aftercare.instruments.schema import FreeTextItem, is_gsm7
from aftercare.protocols import ProtocolRegistry

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "instruments"
REGISTRY = InstrumentRegistry.from_dir(SHIPPED)
SMS_PROMPTS = [
    (f"{ins.id}.{item.id}.{part}.{lang}", prompt(item, lang, emergency_number="911"))
    for ins in REGISTRY.all()
    for item in ins.items
    for part, prompt in (("sms", sms_prompt), ("clarify", clarify_prompt))
    for lang in ("en", "es")
] + [(f"{ins.id}.intro.{lang}", ins.intro.get(lang)) for ins in REGISTRY.all() if ins.intro for lang in ("en", "es")]


def test_shipped_instruments_load_with_versions() -> None:
    assert REGISTRY.ids() == [
        "koos_jr",
        "nrs_now",
        "nrs_pain",
        "nrs_worst_24h",
        "nsaid_taken",
        "pass",
        "patient_global",
        "pgic",
        "quick_status",
        "redflag_checkin",
        "swelling_trend",
    ]
    assert all(ins.version for ins in REGISTRY.all())


def test_every_instrument_a_protocol_names_exists() -> None:
    protocols = ProtocolRegistry.from_dir(ROOT / "config" / "protocols")
    named = {
        (protocol.id, survey_id, instrument_id)
        for protocol in protocols.all()
        for survey_id, survey in protocol.surveys.items()
        for instrument_id in survey.instruments
    }
    assert named, "the shipped protocols name no instruments"
    missing = [entry for entry in sorted(named) if entry[2] not in REGISTRY]
    assert missing == [], f"protocol surveys name instruments with no file in config/instruments: {missing}"


def test_womac_and_promis_are_not_shipped() -> None:
    names = " ".join(str(p.relative_to(SHIPPED)).lower() for p in SHIPPED.rglob("*"))
    assert "womac" not in names and "promis" not in names
    for path in SHIPPED.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8").lower()
        assert "womac" not in text and "promis" not in text, path


@pytest.mark.parametrize(("where", "text"), SMS_PROMPTS, ids=[w for w, _ in SMS_PROMPTS])
def test_sms_prompts_fit_one_gsm7_segment(where: str, text: str) -> None:
    units, limit = sms_units(text)
    assert is_gsm7(text), f"{where} needs Unicode: {sorted({c for c in text if not is_gsm7(c)})}"
    assert units <= limit == 160


def test_every_question_says_how_to_answer_in_both_languages() -> None:
    for ins in REGISTRY.all():
        for item in ins.items:
            assert "Reply" in item.sms.en and "Responda" in item.sms.es, (ins.id, item.id)
            assert item.web.en.label and item.web.es.label
            if isinstance(item, ChoiceItem):
                assert all(c.label.en and c.label.es for c in item.choices)


def test_the_checkin_has_the_clinical_field_vocabulary() -> None:
    checkin = REGISTRY.get("redflag_checkin")
    fields = {item.id: item for item in checkin.items}
    assert list(fields) == [
        "fever_or_chills_reported",
        "temp_c",
        "knee_redness",
        "knee_warmth",
        "swelling_trend",
        "can_bear_weight",
        "calf_pain_or_swelling_one_leg",
        "breathless_or_chest_pain",
        "allergic_symptoms",
        "wound_drainage",
        "harvest_site_bleeding",
        "numbness_or_weakness",
        "fall_or_new_injury",
        "free_text",
    ]
    choices = {i.id: [c.value for c in i.choices] for i in checkin.items if isinstance(i, ChoiceItem)}
    assert choices == {
        "knee_redness": ["none", "local", "spreading"],
        "swelling_trend": ["better", "same", "worse"],
        "can_bear_weight": ["full", "partial", "none"],
        "allergic_symptoms": ["none", "skin_only", "face_throat_or_breathing"],
        "wound_drainage": ["none", "clear", "pus"],
        "harvest_site_bleeding": ["none", "spotting", "soaking"],
    }
    assert isinstance(fields["temp_c"], TemperatureItem) and fields["temp_c"].optional
    assert fields["temp_c"].plausible_c == (34.0, 43.0)
    assert isinstance(fields["free_text"], FreeTextItem)
    for name in (
        "knee_warmth",
        "calf_pain_or_swelling_one_leg",
        "breathless_or_chest_pain",
        "fever_or_chills_reported",
    ):
        assert isinstance(fields[name], YesNoItem)


def test_quick_status_zero_is_fine_and_one_goes_to_a_human() -> None:
    item = REGISTRY.get("quick_status").item("quick_status")
    assert isinstance(item, ChoiceItem)
    assert [(c.key, c.value, c.handoff) for c in item.choices] == [("0", "all_fine", False), ("1", "need_help", True)]


def test_a_survey_asks_each_item_once_and_conditional_items_only_when_they_apply() -> None:
    checkin_plus = ["nrs_now", "redflag_checkin", "swelling_trend", "nsaid_taken", "pgic"]
    asked = [s.item.id for s in REGISTRY.survey_items(checkin_plus)]
    assert asked.count("swelling_trend") == 1
    assert "harvest_site_bleeding" not in asked  # the injection protocols have no same-day harvest
    with_harvest = [s.item.id for s in REGISTRY.survey_items(checkin_plus, settings={"harvest_site": "bone_marrow"})]
    assert "harvest_site_bleeding" in with_harvest
    assert "temp_c" in asked  # with no answers yet the whole survey is listed
    no_fever = [s.item.id for s in REGISTRY.survey_items(checkin_plus, answers={"fever_or_chills_reported": False})]
    fever = [s.item.id for s in REGISTRY.survey_items(checkin_plus, answers={"fever_or_chills_reported": True})]
    assert "temp_c" not in no_fever and "temp_c" in fever
    first = REGISTRY.survey_items(["nrs_now"])[0]
    assert (first.instrument.id, first.instrument.version, first.item.id) == ("nrs_now", "1.0.0", "nrs_now")


def test_koos_jr_item_text_is_not_shipped_until_hss_terms_are_confirmed() -> None:
    koos = REGISTRY.get("koos_jr")
    assert koos.licence == "paraphrase_of_third_party"
    folder = SHIPPED / "third_party" / "koos_jr"
    notice = (folder / "NOTICE").read_text(encoding="utf-8")
    assert "Hospital for Special Surgery" in notice and "LICENSED TEXT NOT INCLUDED; OBTAIN IT FROM HSS" in notice
    texts = REGISTRY.third_party("koos_jr")
    assert texts is not None and texts.included is False
    assert all("Licensed text not included; obtain from HSS" in t["en"] for t in texts.items.values())
    assert sorted(texts.items) == sorted(i.third_party_ref or "" for i in koos.items)
    # while not included, the web form shows our paraphrase, never the placeholder
    assert REGISTRY.web_text("koos_jr", "koos_s6", "en", emergency_number="911") == koos.item("koos_s6").web.en


def test_official_text_is_used_on_the_web_once_a_clinic_adds_it(tmp_path: Path) -> None:
    copy = tmp_path / "instruments"
    shutil.copytree(SHIPPED, copy)
    items = copy / "third_party" / "koos_jr" / "items.yaml"
    items.write_text(
        items.read_text(encoding="utf-8")
        .replace("included: false", "included: true")
        .replace('S6: {en: "Licensed text not included; obtain from HSS."', 'S6: {en: "OFFICIAL S6 WORDING"'),
        encoding="utf-8",
    )
    registry = InstrumentRegistry.from_dir(copy)
    assert registry.web_text("koos_jr", "koos_s6", "en", emergency_number="911").label == "OFFICIAL S6 WORDING"
    assert registry.web_text("nrs_now", "nrs_now", "es", emergency_number="911").label.startswith("¿Cuánto")


def test_the_clinics_emergency_number_is_filled_in() -> None:
    item = REGISTRY.get("redflag_checkin").item("breathless_or_chest_pain")
    assert sms_prompt(item, "en", emergency_number="112").endswith("call 112.")
    assert "llame al 066" in clarify_prompt(item, "es", emergency_number="066")
    help_text = REGISTRY.web_text("redflag_checkin", item.id, "es", emergency_number="112").help
    assert help_text is not None and "112" in help_text and "{" not in help_text


def test_answer_words_stay_words() -> None:
    """YAML 1.1 would turn `no` into False; instrument files are read with YAML 1.2 booleans."""
    redness = REGISTRY.get("redflag_checkin").item("knee_redness")
    assert isinstance(redness, ChoiceItem) and "no" in redness.choices[0].words.en


MINIMAL = """\
id: tiny
version: "1.0"
title: {en: Tiny, es: Diminuto}
licence: own_wording
items:
  - id: pain
    type: integer
    min: 0
    max: 10
    sms: {en: "Pain? Reply 0-10", es: "¿Dolor? Responda 0-10"}
    web: {en: {label: Pain}, es: {label: Dolor}}
  - id: hot
    type: yes_no
    sms: {en: "Hot? Reply YES or NO", es: "¿Caliente? Responda SI o NO"}
    web: {en: {label: Hot}, es: {label: Caliente}}
scoring: {method: nrs, item: pain}
"""


def write(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_new_instrument_is_just_another_file(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    assert InstrumentRegistry.from_dir(tmp_path).get("tiny").item("hot").type == "yes_no"


@pytest.mark.parametrize(
    ("change", "into", "problem"),
    [
        ("type: integer", "type: slider", "items[0]: Input tag 'slider'"),
        ("max: 10", "max: 0", "items[0].integer: Value error, min (0) must be below max (0)"),
        ('"Pain? Reply 0-10"', '"' + "Pain? " * 30 + 'Reply 0-10"', "items[0].integer.sms.en"),
        ('"¿Dolor? Responda 0-10"', '"¿Dolor? Está bien? Responda 0-10 ' + "x" * 50 + '"', "lower the limit to 70"),
        ("  - id: hot", "  - id: pain", "items[1].id: 'pain' is used twice"),
        ("item: pain}", "item: hot}", "scoring.item: 'hot' must be a IntegerItem"),
        ("item: pain}", "item: nope}", "scoring.item: 'nope'"),
        ('version: "1.0"', 'version: "one"', "version"),
        ("min: 0", "min: 0\n    colour: red", "items[0].integer.colour"),
        ("web: {en: {label: Hot}, es: {label: Caliente}}", "web: {en: {label: Hot}}", "items[1].yes_no.web.es"),
        ("    type: yes_no", "    type: yes_no\n    ask_if: {later: [true]}", "'later' is not an earlier item"),
        (
            "    type: yes_no",
            "    type: yes_no\n    ask_if: {pain: [true]}",
            "ask_if.pain: [True] cannot be answers of 'pain'",
        ),
        ("licence: own_wording", "licence: borrowed", "licence"),
        ('"Hot? Reply YES or NO"', '"Hot? Call {clinic_phone}. Reply YES or NO"', "unknown placeholder {clinic_phone}"),
        ("licence: own_wording", "licence: paraphrase_of_third_party", "third_party: give it exactly when"),
        (
            "scoring: {method: nrs, item: pain}",
            "scoring: {method: koos_jr, items: [pain], raw_to_interval: [1]}",
            "scoring.koos_jr.items",
        ),
    ],
)
def test_bad_files_name_the_file_field_and_problem(tmp_path: Path, change: str, into: str, problem: str) -> None:
    assert change in MINIMAL
    path = write(tmp_path, MINIMAL.replace(change, into))
    with pytest.raises(InstrumentError) as info:
        load_instrument_file(path)
    message = str(info.value)
    assert str(path) in message and problem in message, message


def test_the_koos_jr_table_must_have_29_falling_values(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "i")
    path = tmp_path / "i" / "koos_jr.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new, problem in [
        ("8.291, 0.000]", "8.291]", "scoring.koos_jr.raw_to_interval: List should have at least 29 items"),
        ("91.975, 84.600", "84.600, 91.975", "must fall strictly: raw 2"),
        ("[100.000,", "[99.000,", "must start at 100.0"),
    ]:
        path.write_text(text.replace(old, new), encoding="utf-8")
        with pytest.raises(InstrumentError) as info:
            InstrumentRegistry.from_dir(tmp_path / "i")
        assert str(path) in str(info.value) and problem in str(info.value), info.value


def test_folder_level_problems_are_named(tmp_path: Path) -> None:
    write(tmp_path, "id: [unclosed", "broken.yaml")
    with pytest.raises(InstrumentError, match="broken.yaml: not valid YAML"):
        InstrumentRegistry.from_dir(tmp_path)
    (tmp_path / "broken.yaml").unlink()
    write(tmp_path, "- a list", "list.yaml")
    with pytest.raises(InstrumentError, match="list.yaml: expected a mapping"):
        InstrumentRegistry.from_dir(tmp_path)
    (tmp_path / "list.yaml").unlink()
    write(tmp_path, MINIMAL, "other.yaml")
    with pytest.raises(InstrumentError, match=r"other.yaml: id: 'tiny' must match the file name 'other'"):
        InstrumentRegistry.from_dir(tmp_path)
    with pytest.raises(InstrumentError, match="does not exist"):
        InstrumentRegistry.from_dir(tmp_path / "nowhere")
    with pytest.raises(InstrumentError, match=r"unknown instrument 'womac' \(known: "):
        REGISTRY.get("womac")


def test_third_party_text_needs_its_notice(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "i")
    (tmp_path / "i" / "third_party" / "koos_jr" / "NOTICE").unlink()
    with pytest.raises(InstrumentError, match=r"koos_jr.yaml: third_party.folder: .*NOTICE is missing"):
        InstrumentRegistry.from_dir(tmp_path / "i")


def test_third_party_references_must_exist(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "i")
    items = tmp_path / "i" / "third_party" / "koos_jr" / "items.yaml"
    items.write_text(items.read_text(encoding="utf-8").replace("  A5:", "  A6:"), encoding="utf-8")
    with pytest.raises(InstrumentError, match=r"koos_jr.yaml: items\[6\].third_party_ref: 'A5' is not in"):
        InstrumentRegistry.from_dir(tmp_path / "i")
