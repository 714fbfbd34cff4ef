"""The reply parser: one patient reply, one item -> ParseResult. Pure; never raises on any input.

Outcomes:
    ok             value is the answer (see schema.AnswerValue); store it.
    unclear        looks like an attempt to answer, but we cannot tell what: ask the clarifying question once.
    out_of_range   a number outside the item's range or not one of its choices ("11", "-3", "38.4 F").
    not_an_answer  plainly something else: STOP-like words, a question, booking talk, a complaint, small talk
                   or a long message with no answer in it. Treat it as free text; keep the item open.

`reason` says why, in a small fixed vocabulary (REASONS). The raw text is always kept as given.
Safety choices: a range ("6-7", "6 or 7") takes the higher number; a decimal NRS ("6.5") is rounded up; a
reply naming two choices takes the more concerning one (choices are listed least -> most concerning); a
hedge ("a little") to a red-flag yes/no question counts as yes; several temperatures -> the highest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from aftercare.instruments import intents
from aftercare.instruments.readers import NO_EMOJI, YES_EMOJI, Found, Outcome, read
from aftercare.instruments.schema import AnswerValue, ChoiceItem, FreeTextItem, ItemType, YesNoItem
from aftercare.instruments.text import normalize

__all__ = ["REASONS", "Outcome", "ParseResult", "parse_answer"]

_log = logging.getLogger(__name__)

REASONS = {
    Outcome.OK: {"number", "number_word", "range_higher", "rounded_up", "zero_word", "yes", "no", "hedge_as_yes",
                 "symptom_named",
                 "choice", "choice_most_concerning", "temperature_c", "temperature_f", "temperature_highest",
                 "skipped", "text"},
    Outcome.UNCLEAR: {"empty", "no_answer_found", "several_numbers", "other_scale", "copied_scale", "yes_and_no",
                      "unsure", "hedge", "negated", "internal_error"},
    Outcome.OUT_OF_RANGE: {"below_min", "above_max", "not_a_choice", "implausible_temperature"},
    Outcome.NOT_AN_ANSWER: {"opt_out", "keyword", "question", "booking", "complaint", "small_talk", "free_text"},
}  # fmt: skip


@dataclass(frozen=True)
class ParseResult:
    """What a reply means for one item. `value` is set for ok (None = an optional item skipped) and, for
    out_of_range, holds the number as read (None when it has too many digits). `handoff` is true when the
    answer must go to a human at once (quick_status "1"). `extra_text` is a hint that the reply has words
    beyond the answer: run the raw text through free-text triage too."""

    outcome: Outcome
    value: AnswerValue
    raw: str
    reason: str
    item_id: str
    handoff: bool = False
    extra_text: bool = False
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


def parse_answer(item: ItemType, text: object, language: str = "en") -> ParseResult:
    """Read one reply to `item`. `text` is the message body as received (None or non-text counts as empty);
    `language` is the patient's ("en" or "es"; anything else reads as "en"). Both languages' words are
    understood either way; `language` only settles words that differ ("once" is 11 only in Spanish)."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    try:
        return _parse(item, raw, "es" if language == "es" else "en")
    except Exception:  # pragma: no cover - a bug; the property tests fail on this reason
        _log.exception("reply parser failed on item %s (reply of %d characters not logged)", item.id, len(raw))
        return ParseResult(Outcome.UNCLEAR, None, raw, "internal_error", item.id)


# ------------------------------------------------------------------------------------------------- flow

_SKIP_WORDS = {
    "n", "no", "na", "n a", "none", "nope", "nothing", "skip", "pass", "not taken", "didnt", "did not",
    "didnt take it", "did not take it", "didnt check", "not checked", "no thermometer", "dont have one",
    "no thanks", "no thank you", "nothing else", "thats all", "thats it", "all good", "nada", "nada mas",
    "ninguno", "no gracias", "eso es todo", "no me la tome", "no la tome", "no tengo termometro", "no se la tomo",
    "no lo medi", "no la medi",
}  # fmt: skip


def _parse(item: ItemType, raw: str, language: str) -> ParseResult:
    norm = normalize(raw)
    has_emoji_answer = isinstance(item, YesNoItem) and any(ch in raw[:2000] for ch in YES_EMOJI + NO_EMOJI)
    if not re.search(r"[a-z0-9]", norm) and not has_emoji_answer:
        return ParseResult(Outcome.UNCLEAR, None, raw, "empty", item.id)
    if intents.opt_out(norm):
        return ParseResult(Outcome.NOT_AN_ANSWER, None, raw, "opt_out", item.id)
    if intents.keyword(norm) and not _item_word(item, intents.bare(norm)):
        return ParseResult(Outcome.NOT_AN_ANSWER, None, raw, "keyword", item.id)
    if item.optional and intents.bare(norm) in _SKIP_WORDS:
        return ParseResult(Outcome.OK, None, raw, "skipped", item.id)
    if isinstance(item, FreeTextItem):
        kept = raw.strip()
        note = None
        if len(kept) > item.max_length:
            kept, note = kept[: item.max_length], f"cut to {item.max_length} characters"
        return ParseResult(Outcome.OK, kept, raw, "text", item.id, note=note)

    found = read(item, raw, norm, language)
    other = _other_intent(norm)
    answered = found.outcome is not Outcome.UNCLEAR and (
        found.bare or _answer_comes_first(item, raw, norm, language, found)
    )
    if other == "booking" or (other and not answered):
        return ParseResult(Outcome.NOT_AN_ANSWER, None, raw, other, item.id)
    if found.outcome is Outcome.UNCLEAR and found.reason == "no_answer_found":
        if intents.small_talk(norm):
            return ParseResult(Outcome.NOT_AN_ANSWER, None, raw, "small_talk", item.id)
        if len(re.findall(r"[a-z]+", norm)) >= 6:
            return ParseResult(Outcome.NOT_AN_ANSWER, None, raw, "free_text", item.id)
    return ParseResult(
        found.outcome,
        found.value,
        raw,
        found.reason,
        item.id,
        handoff=found.handoff,
        extra_text=not found.bare and found.outcome is not Outcome.UNCLEAR,
        note=found.note,
    )


_FIRST_CLAUSE_END = re.compile(r"(?<![0-9])[.,]|[.,](?![0-9])|[;!?]|\b(?:but|pero)\b")


def _answer_comes_first(item: ItemType, raw: str, norm: str, language: str, found: Found) -> bool:
    """'yes, should I go to the ER?', 'Pain 8. When can I shower?': the reply opens with a plain answer and
    then asks or says something else. The answer counts; the rest is flagged as extra text."""
    end = _FIRST_CLAUSE_END.search(norm)
    if end is None or end.start() == 0:
        return False
    first = read(item, raw, norm[: end.start()].strip(), language)
    return first.bare and (first.outcome, first.value) == (found.outcome, found.value)


def _other_intent(norm: str) -> str | None:
    if intents.booking(norm):
        return "booking"
    if intents.complaint(norm):
        return "complaint"
    if intents.question(norm):
        return "question"
    return None


def _item_word(item: ItemType, bare: str) -> bool:
    if not isinstance(item, ChoiceItem):
        return False
    return any(normalize(w) == bare for c in item.choices for w in (*c.words.en, *c.words.es))
