"""The free-text word lists as data (config/triage-lexicon.yaml): the shipped file loads, a bad file is refused naming
the concept (or list) and the key, and an edited copy changes what `aftercare triage test --lexicon` flags."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aftercare.cli import app
from aftercare.triage import TriageInput, evaluate, read
from aftercare.triage.fields import ANSWER_FIELDS, TEXT_FIELDS
from aftercare.triage.lexicon import (
    PHRASES,
    READER_CONCEPTS,
    WORD_SETS,
    LexiconError,
    default_lexicon_path,
    load_lexicon,
    parse_lexicon,
)

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "triage-lexicon.yaml"
RAW: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
runner = CliRunner()


def concept(raw: dict[str, Any], name: str) -> dict[str, Any]:
    [body] = [c for c in raw["concepts"] if c["name"] == name]
    return body


def problems(change: Any) -> str:
    """The error for the shipped lexicon after `change(raw)` edits a copy of it."""
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(LexiconError) as info:
        parse_lexicon(raw, source="test.yaml")
    return str(info.value)


# ------------------------------------------------------------------------------------------------ the shipped file


def test_the_shipped_lexicon_loads_and_is_the_default() -> None:
    lexicon = load_lexicon(SHIPPED)
    assert default_lexicon_path().resolve() == SHIPPED
    assert load_lexicon() is lexicon  # loaded once, cached
    names = [c.name for c in lexicon.concepts]
    assert len(names) == len(set(names)) == len(RAW["concepts"])
    assert set(READER_CONCEPTS) <= set(names)
    assert all(c.field is None or c.field in ANSWER_FIELDS or c.field in TEXT_FIELDS for c in lexicon.concepts)
    assert lexicon.recheck_if_resolved >= {"fever", "chills", "breathing", "calf"}
    assert {"no", "sin", "nunca"} <= lexicon.negations and lexicon.number_words["nueve"] == 9
    assert all(getattr(lexicon, name).pattern for name in PHRASES) and all(getattr(lexicon, n) for n in WORD_SETS)


def test_fragments_expand_into_the_concepts() -> None:
    lexicon = load_lexicon(SHIPPED)
    breathing = lexicon.concept_by_name["breathing"].pattern
    assert breathing.search("i still cant really breathe") and breathing.search("no puedo respirar")
    assert "{" not in breathing.pattern.replace("{0,", "")  # every {NAME} / {gap:N} was replaced


# ------------------------------------------------------------------------------------------------ bad files


def test_a_pattern_that_does_not_compile_names_the_concept() -> None:
    message = problems(lambda raw: concept(raw, "fever")["patterns"].append("fiebr(e"))
    index = len(concept(RAW, "fever")["patterns"])
    expected = f"concept fever, patterns[{index}]: 'fiebr(e' does not compile: missing ), unterminated subpattern"
    assert expected in message


def test_an_unknown_fragment_names_the_concept_and_the_fragment() -> None:
    message = problems(lambda raw: concept(raw, "breathing")["patterns"].insert(0, "{CANNT} breathe"))
    assert "concept breathing, patterns[0]: unknown fragment {CANNT} (defined: {CANT}, {NO_PUEDO}" in message
    message = problems(lambda raw: concept(raw, "breathing")["patterns"].insert(0, "{CANT} {gap:x}breathe"))
    assert "concept breathing, patterns[0]: {gap:x}: write {gap:N} with N words, 1 to 12" in message


def test_an_unknown_field_or_a_wrong_value_names_the_concept() -> None:
    message = problems(lambda raw: concept(raw, "chest").update(field="chest_pain"))
    assert "concept chest, field: unknown field 'chest_pain' (an answer or free-text field of fields.py)" in message
    message = problems(lambda raw: concept(raw, "pus").update(field="wound_drainage", value="yellow"))
    assert "concept pus, value: wound_drainage must be one of none|clear|pus, got 'yellow'" in message
    message = problems(lambda raw: concept(raw, "calf").update(field="calf_pain_or_swelling_one_legs"))
    assert "did you mean 'calf_pain_or_swelling_one_leg'?" in message
    message = problems(lambda raw: concept(raw, "fever").update(field="day", value=3))
    assert "concept fever, field: 'day' is a context field; a concept sets an answer or free-text field" in message


def test_a_duplicate_concept_name_is_refused() -> None:
    def duplicate(raw: dict[str, Any]) -> None:
        raw["concepts"].append({"name": "fever", "field": "fever_or_chills_reported", "value": True,
                                "patterns": ["calentura alta"]})

    assert "concept fever, name: 'fever' is used by another concept" in problems(duplicate)


def test_every_problem_is_listed_at_once_naming_concept_or_list_and_key() -> None:
    def break_things(raw: dict[str, Any]) -> None:
        concept(raw, "fainting")["yields_to"] = ["dizzy"]
        concept(raw, "hives")["hgih"] = True
        concept(raw, "nsaid")["high"] = "yes please"
        concept(raw, "worse")["patterns"] = ["Worse"]
        raw["concepts"] = [c for c in raw["concepts"] if c["name"] != "help"]
        raw["words"]["negations"][0] = False  # an unquoted `no` in YAML
        raw["words"]["post_ok"].append("perfección")
        raw["words"]["past"].append("last week")
        raw["words"].pop("temp_units_f")
        raw["phrases"]["hedges"].append("{RELATION}")
        raw["fragments"]["LATER"] = "{NOT_YET}"

    message = problems(break_things)
    post_ok, hedges = len(RAW["words"]["post_ok"]), len(RAW["phrases"]["hedges"])
    for expected in (
        "concept fainting, yields_to: unknown concept(s) 'dizzy'",
        "concept hives, hgih: unknown key",
        "concept nsaid, high: must be true or false, got 'yes please'",
        "concept worse, patterns[0]: 'Worse' never matches: messages are read in lower case",
        "concepts: 'help' is missing; the reader uses it for a message that is only 'help' or 'ayuda'",
        "words.negations[0]: must be a word, got False (quote words YAML reads as true/false",
        f"words.post_ok[{post_ok}]: 'perfección' never matches: messages are read without accents (write 'perfeccion')",
        "is not one word (only keywords may be several)",
        "words.temp_units_f: required",
        f"phrases.hedges[{hedges}]: unknown fragment {{RELATION}}",
        "fragments.LATER: unknown fragment {NOT_YET}",
    ):
        assert expected in message, (expected, message)


def test_file_errors_name_the_file_and_a_key_given_twice(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(LexiconError, match=r"(?s)nowhere.yaml: 1 problem.*cannot read the lexicon file"):
        load_lexicon(missing)
    twice = tmp_path / "twice.yaml"
    twice.write_text(SHIPPED.read_text(encoding="utf-8") + "\nnumber_words: {nueve: 9}\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"(?s)twice.yaml.*not valid YAML.*'number_words' is given twice"):
        load_lexicon(twice)


def test_a_changed_file_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    before = load_lexicon(path)
    assert read("my knee is gooey", before).fields.get("wound_drainage") is None
    edited = copy.deepcopy(RAW)
    concept(edited, "pus")["patterns"].append("gooey")
    path.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    os.utime(path, (os.stat(path).st_atime, os.stat(path).st_mtime + 5))
    after = load_lexicon(path)
    assert after is not before and read("my knee is gooey", after).fields["wound_drainage"] == "pus"
    assert evaluate(TriageInput(day=5, text="my knee is gooey"), lexicon=after).severity == "urgent"


# ------------------------------------------------------------------------------------------------ the CLI


def test_an_edited_copy_flags_a_message_the_shipped_lexicon_does_not(tmp_path: Path) -> None:
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"text": "the injection spot is all gooey today", "day": 5}\n', encoding="utf-8")
    text = SHIPPED.read_text(encoding="utf-8")
    assert text.count("patterns: ['pus', 'puss',") == 1
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(text.replace("patterns: ['pus', 'puss',", "patterns: ['pus', 'puss', 'gooey',"),
                         encoding="utf-8")

    def severity(*options: str) -> str:
        result = runner.invoke(app, ["triage", "test", str(messages), "--json", *options])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.stdout)["severity"])

    assert severity() == "routine"  # read by a person, but no red flag
    assert severity("--lexicon", str(candidate)) == "urgent"  # wound_drainage: pus


def test_a_bad_lexicon_file_is_refused_naming_the_concept(tmp_path: Path) -> None:
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"text": "fever", "day": 5}\n', encoding="utf-8")
    candidate = tmp_path / "candidate.yaml"
    text = SHIPPED.read_text(encoding="utf-8")
    candidate.write_text(text.replace("'fevers?',", "'fevers?', '{FEVER}',", 1), encoding="utf-8")
    result = runner.invoke(app, ["triage", "test", str(messages), "--lexicon", str(candidate)])
    assert result.exit_code == 2
    assert "candidate.yaml: 1 problem(s)" in result.stderr
    assert "concept fever, patterns[1]: unknown fragment {FEVER}" in result.stderr
