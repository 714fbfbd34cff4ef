"""Readers, one per answer type: what a reply says for an integer, yes/no, choice or temperature item.

Each returns a Found (outcome, value, reason, and whether the reply held nothing but the answer); parse.py
adds the checks that apply to every item (opt-out, questions, booking talk) and builds the ParseResult.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from enum import StrEnum

from aftercare.instruments.schema import (
    AnswerValue,
    ChoiceItem,
    IntegerItem,
    ItemType,
    TemperatureItem,
    YesNoItem,
)
from aftercare.instruments.text import (
    NEGATORS,
    NUMBER_WORDS,
    Number,
    PhraseMatcher,
    canonical_words,
    digitize,
    fuzzy_word,
    normalize,
    numbers,
    tokens,
)


class Outcome(StrEnum):
    """What a reply is for the item asked (see parse.py)."""

    OK = "ok"
    UNCLEAR = "unclear"
    OUT_OF_RANGE = "out_of_range"
    NOT_AN_ANSWER = "not_an_answer"


YES_EMOJI = "👍✅✔☑👌"
NO_EMOJI = "👎❌✖🚫⛔"


@dataclass(frozen=True)
class Found:
    """What one reader made of a reply."""

    outcome: Outcome
    value: AnswerValue = None
    reason: str = "no_answer_found"
    bare: bool = False  # nothing but the answer (and filler words) in the reply
    handoff: bool = False
    note: str | None = None


UNCLEAR = Found(Outcome.UNCLEAR)


def read(item: ItemType, raw: str, norm: str, language: str) -> Found:
    """Read the normalised reply `norm` (and `raw`, for emoji) as an answer to `item`."""
    if isinstance(item, IntegerItem):
        return _read_integer(item, norm, language)
    if isinstance(item, YesNoItem):
        return _read_yes_no(item, raw, norm)
    if isinstance(item, ChoiceItem):
        return _read_choice(item, norm, language)
    if isinstance(item, TemperatureItem):
        return _read_temperature(item, norm, language)
    return UNCLEAR


# ------------------------------------------------------------------------------------------- filler words

_FILLER = frozenset(
    """
    a an the and or but so is its it was be been am are im i my me mine ive id ill about around approximately
    approx maybe like say would think guess probably prob roughly nearly almost just only right now today
    tonight this morning afternoon evening night yesterday currently still pain painful hurts hurt hurting
    knee knees level rating rate number score scale out of on at feel feels feeling its pretty really very
    quite kind sort somewhere between well ok okay yes yeah thanks thank you please pls lol hmm um uh
    dolor duele dueleme rodilla nivel numero como un una el la lo los las es esta estoy era fue de del en
    y o pero mas menos ahora hoy ayer manana tarde noche mi me tengo siento creo que unos unas casi sobre
    aproximadamente tipo gracias por favor si ok bueno pues entre le
    """.split()
)


def _leftover(norm: str, used: list[tuple[int, int]]) -> bool:
    """True when, outside the character spans in `used`, the reply has words that are not filler."""
    keep = list(norm)
    for start, end in used:
        keep[start:end] = " " * (end - start)
    rest = "".join(keep)
    return any(w not in _FILLER and w not in NUMBER_WORDS for w in re.findall(r"[a-z]+", rest))


# ------------------------------------------------------------------------------------------------ integer

_RANGE = re.compile(
    r"(?<![0-9.,])(\d{1,3}(?:[.,]\d+)?)\s*"
    r"(?:-|–|—|to|or|a|o|y|and|/|hasta|or maybe|maybe|possibly|o tal vez|tal vez|o quizas|quizas)\s*"
    r"(\d{1,3}(?:[.,]\d+)?)(?![0-9])"
)
_OUT_OF = re.compile(
    r"(?<![0-9.,])(\d{1,4}(?:[.,]\d+)?)\s*(?:/|out of|outta|of|de|sobre|over|on a scale of|en una escala de)\s*"
    r"(\d{1,4})(?![0-9.,])"
)
_QUANTITY = re.compile(
    r"\s*(?:pills?|tablets?|tabs?|caps(?:ules)?|mg|ml|cc|days?|hours?|hrs?|h|weeks?|wks?|months?|years?|yrs?"
    r"|times?|am|pm|a\.m|p\.m|mins?|minutes?|inches?|cm|mm|ft|feet|miles?|km|steps?|%|percent|porciento"
    r"|dias?|horas?|semanas?|meses?|mes|anos?|veces|pastillas?|tabletas?|capsulas?|minutos?|pulgadas?"
    r"|advil|tylenol|ibuprofen|aleve|motrin|aspirin|ibuprofeno|paracetamol|naproxeno|aspirina|°|deg|degrees"
    r"|grados|f|c)(?![a-z0-9])"
)
_ORDINAL = re.compile(r"(?:st|nd|rd|th|ro|do|to|vo|er|a|o)(?![a-z0-9])")
_TIME_BEFORE = re.compile(r"(?:\ba las|\ba la|\bsince|\bdesde|\buntil|\bhasta las|:)\s*$")
_ZERO_WORDS = PhraseMatcher(
    (w, 0)
    for w in ("none", "no pain", "nothing", "zero", "not at all", "no hurt", "doesnt hurt", "does not hurt",
              "nada", "sin dolor", "ninguno", "ninguna", "no duele", "no me duele", "cero", "no tengo dolor")
)  # fmt: skip


def _is_quantity(norm: str, number: Number) -> bool:
    before = norm[max(0, number.start - 12) : number.start]
    if _ORDINAL.match(norm, number.end):
        return True
    return (
        bool(_QUANTITY.match(norm, number.end))
        or bool(_TIME_BEFORE.search(before))
        or (number.end < len(norm) and norm[number.end] == ":")
    )


def _denominators(norm: str, top_key: float) -> tuple[list[tuple[int, int]], bool]:
    """Spans of "/10", "out of 10", "de 10" to ignore, and whether the reply uses another common scale."""
    spans, other_scale = [], False
    for m in _OUT_OF.finditer(norm):
        top = float(m.group(2))
        if top == top_key:
            spans.append((m.end(1), m.end()))
        elif top in (5.0, 10.0, 100.0) and float(m.group(1).replace(",", ".")) <= top:
            other_scale = True
    return spans, other_scale


def _read_integer(item: IntegerItem, original: str, language: str) -> Found:
    norm = digitize(original, language)
    if not numbers(norm) and len(norm.split()) <= 4:
        norm = digitize(original, language, allow_typos=True)
    from_words = not re.search(r"[0-9]", original)
    denominators, other_scale = _denominators(norm, item.max)
    if other_scale:
        return Found(Outcome.UNCLEAR, reason="other_scale")
    masked = _mask(norm, denominators)
    spans = list(denominators)
    picked: float | None = None
    reason = "number"
    ranges = list(_RANGE.finditer(masked))
    if len(ranges) == 1:
        low, high = sorted(float(g.replace(",", ".")) for g in ranges[0].groups())
        if (low, high) == (item.min, item.max):
            return Found(Outcome.UNCLEAR, reason="copied_scale")
        outside = masked[: ranges[0].start()] + masked[ranges[0].end() :]
        if low != high and not [n for n in numbers(outside) if not _is_quantity(outside, n)]:
            picked, reason = high, "range_higher"
            spans.append(ranges[0].span())
    if picked is None:
        found = [n for n in numbers(masked) if not _is_quantity(masked, n)]
        if len({n.value for n in found}) > 1:
            return Found(Outcome.UNCLEAR, reason="several_numbers")
        if found:
            spans.extend((n.start, n.end) for n in found)
            if found[0].value is None:
                return Found(Outcome.OUT_OF_RANGE, None, "above_max", bare=not _leftover(norm, spans))
            picked = found[0].value
            reason = "number_word" if from_words else "number"
    if picked is None:
        toks = tokens(norm)
        zero = [m for m in _ZERO_WORDS.find([t.text for t in toks], [t.clause for t in toks]) if not m.negated]
        if item.min == 0 and zero:
            spans.extend((toks[m.first].start, toks[m.last - 1].end) for m in zero)
            return Found(Outcome.OK, 0, "zero_word", bare=not _leftover(norm, spans))
        return UNCLEAR
    bare = not _leftover(norm, spans)
    if not picked.is_integer():
        picked, reason = float(math.ceil(picked)), "rounded_up"
    value = int(picked)
    if value < item.min:
        return Found(Outcome.OUT_OF_RANGE, value, "below_min", bare=bare)
    if value > item.max:
        return Found(Outcome.OUT_OF_RANGE, value, "above_max", bare=bare)
    return Found(Outcome.OK, value, reason, bare=bare)


def _mask(norm: str, spans: list[tuple[int, int]]) -> str:
    chars = list(norm)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


# ------------------------------------------------------------------------------------------------- yes/no

_YES, _NO, _UNSURE, _HEDGE = "yes", "no", "unsure", "hedge"
_YES_NO = PhraseMatcher(
    [(w, _YES) for w in (
        "yes", "yeah", "yea", "yep", "yup", "ya", "yes i have", "yes i did", "i have", "i did", "i do", "sure",
        "correct", "affirmative", "indeed", "definitely", "of course", "absolutely", "i think so", "uh huh",
        "si", "sip", "claro", "claro que si", "afirmativo", "por supuesto", "creo que si", "tengo", "si tengo",
        "asi es", "cierto", "yes please")]
    + [(w, _NO) for w in (
        "no", "nope", "nah", "not", "none", "never", "negative", "not really", "no way", "dont think so",
        "i dont think so", "i do not", "i dont", "i have not", "i havent", "i did not", "i didnt", "dont have",
        "do not have", "i have no", "havent", "didnt", "dont", "nada", "nunca", "negativo", "ninguno",
        "ninguna", "no tengo", "no he", "no creo", "creo que no", "para nada", "nop", "nel", "tampoco")]
    + [(w, _UNSURE) for w in (
        "maybe", "not sure", "unsure", "idk", "i dont know", "dont know", "dunno", "perhaps", "possibly",
        "i guess", "yes and no", "quizas", "quiza", "tal vez", "no se", "no estoy seguro", "no estoy segura",
        "puede ser", "a lo mejor", "si y no")]
    + [(w, _HEDGE) for w in (
        "a little", "a bit", "a little bit", "slightly", "kind of", "kinda", "sort of", "somewhat", "a tad",
        "un poco", "un poquito", "algo", "poquito", "mas o menos", "leve", "mild", "little")]
)  # fmt: skip
_WHOLE_MESSAGE_ONLY = {"y": _YES, "s": _YES, "n": _NO}


def _read_yes_no(item: YesNoItem, raw: str, norm: str) -> Found:
    toks = tokens(norm)
    clauses = [t.clause for t in toks]
    texts = canonical_words([t.text for t in toks], _YES_NO.vocabulary | set(_WHOLE_MESSAGE_ONLY))
    if len(texts) == 1 and texts[0] in _WHOLE_MESSAGE_ONLY:
        kind = _WHOLE_MESSAGE_ONLY[texts[0]]
        return Found(Outcome.OK, kind == _YES, kind, bare=True)
    symptoms = _symptoms(item).find(texts, clauses)
    named = [m for m in symptoms if not m.negated]
    if named:
        return Found(Outcome.OK, True, "symptom_named", bare=False, note="the patient named the symptom")
    matches = _YES_NO.find(texts, clauses)
    kinds = {str(m.payload) for m in matches}
    snippet = raw[:2000]
    if any(ch in snippet for ch in YES_EMOJI):
        kinds.add(_YES)
    if any(ch in snippet for ch in NO_EMOJI):
        kinds.add(_NO)
    spans = [(toks[m.first].start, toks[m.last - 1].end) for m in (*matches, *symptoms)]
    bare = not _leftover(norm, spans)
    if _UNSURE in kinds:
        return Found(Outcome.UNCLEAR, reason="unsure")
    if _YES in kinds and _NO in kinds:
        return Found(Outcome.UNCLEAR, reason="yes_and_no")
    if _YES in kinds:
        return Found(Outcome.OK, True, "yes", bare=bare)
    if _NO in kinds:
        return Found(Outcome.OK, False, "no", bare=bare)
    if _HEDGE in kinds:
        if item.red_flag_if is True:
            return Found(Outcome.OK, True, "hedge_as_yes", bare=bare, note="a hedge ('a little') read as yes")
        return Found(Outcome.UNCLEAR, reason="hedge")
    return UNCLEAR


@functools.lru_cache(maxsize=256)
def _phrase_matcher(phrases: tuple[tuple[str, object], ...]) -> PhraseMatcher:
    return PhraseMatcher(phrases)


def _symptoms(item: YesNoItem) -> PhraseMatcher:
    return _phrase_matcher(tuple((w, True) for w in (*item.yes_words.en, *item.yes_words.es)))


# ------------------------------------------------------------------------------------------------- choice


def _matcher(item: ChoiceItem) -> PhraseMatcher:
    return _phrase_matcher(
        tuple(
            (word, index)
            for index, choice in enumerate(item.choices)
            for word in (*choice.words.en, *choice.words.es, choice.label.en, choice.label.es)
        )
    )


def _read_choice(item: ChoiceItem, norm: str, language: str) -> Found:
    matcher = _matcher(item)
    digits = digitize(norm, language)
    toks = tokens(digits)
    texts = canonical_words([t.text for t in toks], matcher.vocabulary)
    picked: set[int] = set()
    spans: list[tuple[int, int]] = []
    negated = False
    keys = {c.key: i for i, c in enumerate(item.choices)}
    unknown_number: float | None = None
    saw_unknown = False

    top_key = max(float(c.key) for c in item.choices)
    masked = _mask(digits, _denominators(digits, top_key)[0])
    nums = [n for n in numbers(masked) if not _is_quantity(masked, n)]
    for n in nums:
        key = None if n.value is None or not float(n.value).is_integer() else str(int(n.value))
        if key is not None and key in keys:
            picked.add(keys[key])
            spans.append((n.start, n.end))
        else:
            saw_unknown, unknown_number = True, n.value
    for m in matcher.find(texts, [t.clause for t in toks]):
        if str(texts[m.first]).isdigit():
            continue
        if m.negated:
            negated = True
            continue
        picked.add(int(str(m.payload)))
        spans.append((toks[m.first].start, toks[m.last - 1].end))
    if not picked and not saw_unknown and len(texts) <= 4:
        for position, index in _fuzzy_choice(item, texts):
            picked.add(index)
            spans.append((toks[position].start, toks[position].end))
    if not picked:
        if saw_unknown:
            value = int(unknown_number) if unknown_number is not None and unknown_number.is_integer() else None
            return Found(Outcome.OUT_OF_RANGE, value, "not_a_choice", bare=True)
        return Found(Outcome.UNCLEAR, reason="negated" if negated else "no_answer_found")
    index = max(picked)
    choice = item.choices[index]
    reason = "choice_most_concerning" if len(picked) > 1 else "choice"
    note = None
    if len(picked) > 1:
        note = "several choices named: took " + choice.label.en
    return Found(Outcome.OK, choice.value, reason, bare=not _leftover(digits, spans), handoff=choice.handoff, note=note)


def _fuzzy_choice(item: ChoiceItem, texts: list[str]) -> list[tuple[int, int]]:
    """(token position, choice index) for misspelt choice words ("beter", "wrose") in a short reply."""
    singles: dict[str, int] = {}
    for index, choice in enumerate(item.choices):
        for word in (*choice.words.en, *choice.words.es, choice.label.en, choice.label.es):
            norm = normalize(word)
            if " " not in norm and len(norm) >= 5:
                singles.setdefault(norm, index)
    if any(word in NEGATORS for word in texts):
        return []
    out = []
    for position, word in enumerate(texts):
        guess = fuzzy_word(word, singles, cutoff=0.8) if len(word) >= 5 else None
        if guess is not None:
            out.append((position, singles[guess]))
    return out


# -------------------------------------------------------------------------------------------- temperature

_TEMP_UNIT = re.compile(
    r"\s*(?:°|deg\b|degrees?\b|grados?\b)?\s*(?P<unit>c\b|celsius\b|centigrados?\b|centigrade\b"
    r"|f\b|fahrenheit\b|farenheit\b|fahrenheits?\b)?"
)
_TEMPERATURE_NOT_TAKEN = PhraseMatcher(
    (w, True)
    for w in ("no", "n", "none", "nope", "not taken", "didnt take", "did not take", "didnt check", "did not check",
              "didnt measure", "not measured", "no thermometer", "dont have a thermometer", "do not have a thermometer",
              "no fever", "normal", "skip", "nada", "no me la tome", "no la tome", "no tengo termometro", "sin fiebre",
              "no la medi", "no lo medi", "no se la tomo", "no me la he tomado", "normal")
)  # fmt: skip
_POINT = re.compile(r"\b(\d{2,3})\s*(?:point|punto|coma)\s*(\d)\b")


def _read_temperature(item: TemperatureItem, norm: str, language: str) -> Found:
    norm = _POINT.sub(r"\1.\2", digitize(norm, language))
    low, high = item.plausible_c
    readings: list[tuple[float, str, float]] = []  # (celsius, unit, as read)
    implausible: float | None = None
    spans: list[tuple[int, int]] = []
    for n in numbers(norm):
        if n.value is None:
            implausible = implausible if implausible is not None else math.inf
            continue
        m = _TEMP_UNIT.match(norm, n.end)
        unit = (m.group("unit") or "")[:1] if m else ""
        end = m.end() if m else n.end
        as_read = n.value
        if unit == "f":
            celsius, shown = (as_read - 32) * 5 / 9, "f"
        elif unit == "c":
            celsius, shown = as_read, "c"
        elif low <= as_read <= high:
            celsius, shown = as_read, "c"
        else:
            celsius, shown = (as_read - 32) * 5 / 9, "f"
        if low <= celsius <= high:
            readings.append((round(celsius, 1), shown, as_read))
            spans.append((n.start, end))
        elif implausible is None:
            implausible = as_read
    if not readings:
        if implausible is not None:
            value = None if math.isinf(implausible) else implausible
            return Found(Outcome.OUT_OF_RANGE, value, "implausible_temperature", bare=True,
                          note=f"outside the plausible {low:g}-{high:g} °C")  # fmt: skip
        toks = tokens(norm)
        not_taken = _TEMPERATURE_NOT_TAKEN.find([t.text for t in toks])
        if item.optional and not_taken:
            spans = [(toks[m.first].start, toks[m.last - 1].end) for m in not_taken]
            return Found(Outcome.OK, None, "skipped", bare=not _leftover(norm, spans), note="no reading given")
        return UNCLEAR
    celsius, unit, as_read = max(readings)
    bare = not _leftover(norm, spans)
    if len({r[0] for r in readings}) > 1:
        return Found(Outcome.OK, celsius, "temperature_highest", bare=bare, note="several readings: took the highest")
    if unit == "f":
        return Found(Outcome.OK, celsius, "temperature_f", bare=bare, note=f"{as_read:g} °F = {celsius:.1f} °C")
    return Found(Outcome.OK, celsius, "temperature_c", bare=bare)
