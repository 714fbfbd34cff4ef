"""The web survey form: the page's questions (with what is saved so far) and reading a submitted form.

Every item of the survey is on one page, grouped by instrument, with the web wording of the instrument
files in the patient's language. A question asked only after a certain answer (`ask_if`) is shown with
a note (and hidden by a few lines of script until it applies); an answer to it is ignored when the
answer it depends on does not allow it. Values are read with the same parser as SMS replies, so a
choice, a number or a temperature means the same whichever way it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aftercare.instruments import (
    AnswerValue,
    ChoiceItem,
    FreeTextItem,
    InstrumentRegistry,
    IntegerItem,
    ParseResult,
    SurveyItem,
    TemperatureItem,
    YesNoItem,
    parse_answer,
)
from aftercare.models import SurveyResponse
from aftercare.surveys import items

MAX_FIELD_CHARS = 2000
SCALE_MAX_OPTIONS = 11  # an integer item with up to this many values is a row of buttons

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "yes": "Yes", "no": "No", "optional": "optional", "choose": "Please choose one answer.",
        "number": "Please enter a whole number from {min} to {max}.",
        "temperature": "Please enter the temperature, e.g. 37.8 or 100.1 F.", "text": "Please shorten your answer.",
        "required": "Please answer this question.", "only_if": "Only if you answered \u201cyes\u201d above.",
    },
    "es": {
        "yes": "Sí", "no": "No", "optional": "opcional", "choose": "Elija una respuesta.",
        "number": "Escriba un número entero del {min} al {max}.",
        "temperature": "Escriba la temperatura, p. ej. 37,8 o 100,1 F.", "text": "Acorte su respuesta.",
        "required": "Responda esta pregunta.", "only_if": "Solo si respondió \u201csí\u201d arriba.",
    },
}


@dataclass
class Question:
    """One question on the page."""

    name: str
    kind: str  # choice, scale, number, yes_no, temperature, text
    label: str
    help: str | None
    options: list[tuple[str, str]] = field(default_factory=list)  # (form value, label)
    optional: bool = False
    show_if: tuple[str, list[str]] | None = None  # (other question, form values that show it)
    value: str = ""
    error: str | None = None
    low: int | None = None
    high: int | None = None
    max_length: int | None = None
    anchors: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    title: str
    questions: list[Question]


def _form_value(si: SurveyItem, value: AnswerValue) -> str:
    item = si.item
    if value is None:
        return ""
    if isinstance(item, ChoiceItem):
        choice = item.choice_for(value)
        return choice.key if choice else ""
    if isinstance(item, YesNoItem):
        return "yes" if value is True else "no" if value is False else ""
    if isinstance(item, TemperatureItem) and isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _show_if(si: SurveyItem) -> tuple[str, list[str]] | None:
    if not si.item.ask_if:
        return None
    (name, allowed), *_ = si.item.ask_if.items()
    source = next((i for i in si.instrument.items if i.id == name), None)
    values = [_form_value(SurveyItem(si.instrument, source), v) for v in allowed] if source else []
    return name, [v for v in values if v]


def _question(registry: InstrumentRegistry, si: SurveyItem, language: str, emergency: str) -> Question:
    item, words = si.item, WORDS[language]
    text = registry.web_text(si.instrument.id, item.id, language, emergency_number=emergency)
    question = Question(name=item.id, kind="text", label=text.label, help=text.help, optional=item.optional,
                        show_if=_show_if(si))
    if isinstance(item, ChoiceItem):
        question.kind = "choice"
        question.options = [(c.key, c.label.get(language)) for c in item.choices]
    elif isinstance(item, YesNoItem):
        question.kind, question.options = "yes_no", [("yes", words["yes"]), ("no", words["no"])]
    elif isinstance(item, IntegerItem):
        question.low, question.high = item.min, item.max
        question.anchors = {str(k): v.get(language) for k, v in item.anchors.items()}
        if item.max - item.min + 1 <= SCALE_MAX_OPTIONS:
            question.kind = "scale"
            question.options = [(str(n), str(n)) for n in range(item.min, item.max + 1)]
        else:
            question.kind = "number"
    elif isinstance(item, TemperatureItem):
        question.kind = "temperature"
    elif isinstance(item, FreeTextItem):
        question.kind, question.max_length = "text", item.max_length
    return question


def page(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    protocol_settings: Mapping[str, Any],
    *,
    language: str,
    emergency: str,
    answers: Mapping[str, AnswerValue],
    submitted: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[Section]:
    """The page's sections: every question, with the submitted (else saved) value and any error."""
    sections: list[Section] = []
    for si in items.items_for(registry, response, protocol_settings, None):
        question = _question(registry, si, language, emergency)
        if submitted is not None and si.item.id in submitted:
            question.value = submitted[si.item.id]
        else:
            question.value = _form_value(si, answers.get(si.item.id))
        question.error = (errors or {}).get(si.item.id)
        title = si.instrument.title.get(language)
        if not sections or sections[-1].title != title:
            sections.append(Section(title, []))
        sections[-1].questions.append(question)
    return sections


@dataclass
class Reading:
    """A submitted form, read: the answers to store (item -> (raw, result)) and the problems per question."""

    answers: dict[str, tuple[SurveyItem, str, ParseResult]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    submitted: dict[str, str] = field(default_factory=dict)


def read(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    protocol_settings: Mapping[str, Any],
    form: Mapping[str, str],
    *,
    language: str,
    saved: Mapping[str, AnswerValue],
) -> Reading:
    """Read the form against every question; answers to questions that do not apply are dropped."""
    words = WORDS[language]
    reading = Reading()
    every = items.items_for(registry, response, protocol_settings, None)
    for si in every:
        raw = str(form.get(si.item.id, "") or "")[:MAX_FIELD_CHARS].strip()
        reading.submitted[si.item.id] = raw
        if not raw:
            continue
        item = si.item
        keyed = isinstance(item, ChoiceItem | YesNoItem)
        if isinstance(item, ChoiceItem) and raw not in {c.key for c in item.choices}:
            reading.errors[item.id] = words["choose"]
            continue
        if isinstance(item, YesNoItem) and raw not in ("yes", "no"):
            reading.errors[item.id] = words["choose"]
            continue
        result = parse_answer(item, raw, "en" if keyed else language)
        if not result.ok:
            reading.errors[item.id] = _problem(si, words)
            continue
        reading.answers[item.id] = (si, raw, result)
    merged: dict[str, AnswerValue] = {**saved, **{k: v[2].value for k, v in reading.answers.items()}}
    applies = {si.item.id for si in items.items_for(registry, response, protocol_settings, merged)}
    for name in [n for n in reading.answers if n not in applies]:
        del reading.answers[name]
    return reading


def _problem(si: SurveyItem, words: dict[str, str]) -> str:
    item = si.item
    if isinstance(item, IntegerItem):
        return words["number"].format(min=item.min, max=item.max)
    if isinstance(item, TemperatureItem):
        return words["temperature"]
    if isinstance(item, FreeTextItem):
        return words["text"]
    return words["choose"]


def missing_errors(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    protocol_settings: Mapping[str, Any],
    answers: Mapping[str, AnswerValue],
    *,
    language: str,
) -> dict[str, str]:
    """Required questions still without an answer, each with a message."""
    return {si.item.id: WORDS[language]["required"]
            for si in items.missing_required(registry, response, protocol_settings, answers)}
