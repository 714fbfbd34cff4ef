"""The free-text reader: finds red-flag concepts, knee swelling trends, temperatures and pain scores in a message,
and decides for each whether it is present, negated, over, about someone else or hypothetical."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aftercare.triage.findings import Finding, Status
from aftercare.triage.lexicon import FEVER_C, Concept, Lexicon
from aftercare.triage.textdoc import Doc, Sentence, Span


@dataclass(frozen=True)
class _Match(Span):
    concept: Concept
    segment: int


class Reader:
    """Reads one normalised message with the words of one lexicon."""

    def __init__(self, doc: Doc, lexicon: Lexicon) -> None:
        self.doc = doc
        self.lex = lexicon
        self.tokens = doc.tokens
        self.matches = self._concept_matches()
        self.swellings = [s for s in doc.find(lexicon.swelling) if not self._inside_concept(s, ("face_throat", "calf"))]
        self.claimed: set[int] = set()
        self.claimed_starts: set[int] = set()
        for span in [*self.matches, *self.swellings]:
            self.claimed.update(range(span.start, span.end))
            self.claimed_starts.add(span.start)
        self.proxy = any(True for _ in doc.find(self.lex.proxy))
        self.others = list(doc.find(self.lex.other_person))
        self.other_tokens = {i for span in self.others for i in range(span.start, span.end)}

    # --- matching --------------------------------------------------------------------------------------------

    def _concept_matches(self) -> list[_Match]:
        found: list[_Match] = []
        for concept in self.lex.concepts:
            for span in self.doc.find(concept.pattern):
                found.append(_Match(span.start, span.end, concept, self.doc.segment_of(span.start)))
        if [t for t in self.tokens if t.isalpha()] in (["help"], ["ayuda"], ["help", "me"], ["sos"]):
            found.append(_Match(0, len(self.tokens), self.lex.concept_by_name["help"], 0))
        kept = []
        for match in found:
            yields = match.concept.yields_to
            in_segment = match.concept.yields_in_segment
            if any(o.concept.name in yields and o.start < match.end and match.start < o.end for o in found):
                continue
            if any(o.concept.name in in_segment and o.segment == match.segment for o in found):
                continue
            kept.append(match)
        return [m for m in kept if m.concept.field is not None]

    def _inside_concept(self, span: Span, names: tuple[str, ...]) -> bool:
        return any(m.concept.name in names and m.start <= span.start and span.end <= m.end for m in self.matches)

    # --- findings --------------------------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        result = [self._concept_finding(m) for m in self.matches]
        result += [f for f in (self._swelling_finding(s) for s in self.swellings) if f]
        result += self._temperatures()
        result += self._pain_numbers()
        return result

    def _concept_finding(self, match: _Match) -> Finding:
        concept = match.concept
        field_name, value = concept.field, concept.value
        if concept.name == "nsaid" and self._asks(match):
            field_name = "nsaid_asked"
        polarity = self._polarity(match, span_negation=concept.span_negation, ok_words=concept.span_negation)
        status = self._status(match, polarity)
        return Finding(concept.name, field_name, value, self.doc.words(match), status,
                       past=self._past(match), hedged=self._hedged(match), high=concept.high)

    def _swelling_finding(self, span: Span) -> Finding | None:
        segment = self.doc.segment_of(span.start)
        seg = self.doc.segments[segment]
        text = self.doc.words(seg)
        polarity = self._polarity(span, span_negation=False, post=False)  # "hinchazon no baja" is a trend
        trend: str | None
        not_worse = bool(self.lex.not_worse.search(text))
        if polarity in ("negated", "resolved"):
            trend = "better"  # "no swelling", "swelling gone": nothing to be not-better about
        elif _search(self.lex.swelling_same, text) and re.search(r"(?:not|no|isnt|hasnt) ", text) and \
                re.search(r"(?:not|isnt|hasnt|no) (?:\w+ )?(?:better|improv|going down|gone down|smaller|less|"
                          r"mejora|baja|quita|desinflama|va)", text):
            trend = "same"
        elif _search(self.lex.swelling_worse, text) and not not_worse:
            trend = "worse"
        elif _search(self.lex.swelling_better, text):
            trend = "better"
        elif _search(self.lex.swelling_same, text):
            trend = "same"
        else:
            return None
        status = self._status(span, "present")
        return Finding("swelling", "swelling_trend", trend, text, status, past=self._past(span),
                       hedged=self._hedged(span))

    def _status(self, span: Span, polarity: str) -> Status:
        if polarity == "negated":
            return "negated"
        if self._hypothetical(span):
            return "hypothetical"
        if self._about_other(span):
            return "other_person"
        if polarity == "resolved":
            return "resolved"
        return "present"

    # --- negation and resolution -----------------------------------------------------------------------------

    def _polarity(
        self, span: Span, *, span_negation: bool, ok_words: bool = False, post: bool = True
    ) -> Literal["present", "negated", "resolved"]:
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        if span_negation:
            for index in range(span.start, span.end):
                if self.tokens[index] in self.lex.negations and not self._pseudo(index):
                    return "resolved" if self._resolution_words(index, span) else "negated"
        negator = self._negator_before(span, sentence)
        if negator is not None:
            return "resolved" if self._resolution_words(negator, span) else "negated"
        if post and self._negated_after(span, sentence, ok_words):
            return "negated"
        if self._resolved_after(span):
            return "resolved"
        return "present"

    def _pseudo(self, index: int) -> bool:
        nxt = self.tokens[index + 1] if index + 1 < len(self.tokens) else ""
        return nxt in self.lex.pseudo_after

    def _negator_before(self, span: Span, sentence: Sentence) -> int | None:
        index, steps = span.start - 1, 0
        while index >= sentence.start and steps <= 6:
            token = self.tokens[index]
            if index in self.claimed:
                index -= 1
                continue
            if token in ("ni", "nor", "neither"):
                return index  # "ni fiebre ni escalofrios": each "ni" negates what follows
            if token in (",", "and", "or", "y", "o", "u", "&", "/"):
                after = index + 1
                while after < span.start and self.tokens[after] in self.lex.list_connectors:
                    after += 1
                if after not in self.claimed_starts and self.tokens[after] not in self.lex.negations:
                    return None
            elif token in self.lex.scope_breakers:
                return None
            elif token in ("i", "yo") and not (index > 0 and self.tokens[index - 1] in
                                                ("think", "believe", "feel", "creo", "suppose", "guess")):
                return None
            elif token in self.lex.negations and not self._pseudo(index):
                return index
            steps += 1
            index -= 1
        return None

    def _negated_after(self, span: Span, sentence: Sentence, ok_words: bool) -> bool:
        index, skipped = span.end, 0
        while index < sentence.end and skipped <= 2:
            token = self.tokens[index]
            if token in (",", "(", ")", "/", "and", "y", "but", "pero", "because", "porque"):
                break
            if ok_words and token in self.lex.post_ok and skipped == 0:
                return True
            if token in self.lex.post_negations:
                nxt = self.tokens[index + 1] if index + 1 < sentence.end else ""
                # "fiebre no", "fever: none", "fiebre no tengo" - but not "hinchazon no baja" (a verb follows)
                return nxt in ("", "tengo", "hay", "tiene", "tuve", "have", "had", "thanks", "gracias", "so", "yet",
                               "at", "really", "today", "hoy", "ahora", "now")
            if index in self.claimed:
                return False
            skipped += 0 if token in (":", "-", "=", "is", "es", "esta", "was", "has", "have", "at", "all", "feels",
                                      "seems", "looks", "se", "siente", "ve") else 1
            index += 1
        # "Chest pain? No." - a short question answered by the next sentence.
        if sentence.question and sentence.end - sentence.start <= 5:
            reply = sentence.end + 1
            return reply < len(self.tokens) and self.tokens[reply] in ("no", "nope", "none", "nada", "ninguno",
                               "ninguna")
        return False

    def _resolution_words(self, negator: int, span: Span) -> bool:
        """The negation says it is over: "no longer", "no more", "ya no", "not ... anymore"."""
        before = self.tokens[negator - 1] if negator > 0 else ""
        after = self.tokens[negator + 1] if negator + 1 < len(self.tokens) else ""
        tail = " ".join(self.tokens[span.end:span.end + 4])
        return before == "ya" or after in ("longer", "more") or bool(re.search(r"\bany ?more\b|\bmas\b", tail))

    def _resolved_after(self, span: Span) -> bool:
        segment = self.doc.segment_of(span.start)
        sentence_number = self.doc.segment_sentence[segment]
        number = segment
        while number < len(self.doc.segments) and self.doc.segment_sentence[number] == sentence_number:
            seg = self.doc.segments[number]
            start = span.end if number == segment else seg.start
            if number != segment and any(seg.start <= i < seg.end for i in self.claimed_starts):
                break  # the next clause is about something else
            text = " ".join(self.tokens[start:seg.end])
            if text and self.lex.resolved_post.search(text) and not self.lex.not_resolved.search(text):
                return True
            number += 1
        return False

    # --- time, hedges, hypotheticals, questions --------------------------------------------------------------

    def _segment_words(self, span: Span) -> list[str]:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        return self.tokens[seg.start:seg.end]

    def _past(self, span: Span) -> bool:
        words = self._segment_words(span)
        text = " ".join(words)
        past = any(w in self.lex.past for w in words) or bool(self.lex.past_phrases.search(text))
        present = any(w in self.lex.present for w in words)
        return past and not present

    def _hedged(self, span: Span) -> bool:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        return any(s.start < span.start for s in self.doc.find(self.lex.hedges, seg))

    def _hypothetical(self, span: Span) -> bool:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        for marker in self.doc.find(self.lex.hypothetical, seg):
            if marker.start < span.start:
                before = self.tokens[max(seg.start, marker.start - 2):marker.start]
                if not any(w in ("normal", "ok", "okay", "bad", "fine") for w in before):
                    return True
        sentence_text = self.doc.words(sentence)
        asks = sentence.question or re.search(r"\b(?:que hago|debo|deberia|llamo|que pasa)\b", sentence_text)
        return bool(asks) and "si" in self.tokens[seg.start:span.start]

    def _asks(self, match: _Match) -> bool:
        sentence = self.doc.sentence_of_segment(match.segment)
        text = self.doc.words(sentence)
        if re.search(r"\b(?:took|taken|take it|ive been taking|been taking|had|tome|tomo|tomado|tomaba|he tomado)\b",
                     text):
            return False
        return sentence.question or bool(re.match(r"(?:can|may|could|is it|am i|should|puedo|se puede|podria)\b",
                                                  text))

    # --- who it is about -------------------------------------------------------------------------------------

    def _about_other(self, span: Span) -> bool:
        if self.proxy or not self.others:
            return False
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        if any(sentence.start <= s.start < sentence.end for s in self.doc.find(self.lex.also)):
            return False  # "my wife has chills too": the patient may have them as well
        seen_relation_before = any(s.start < span.start for s in self.others)
        for index in range(span.start - 1, sentence.start - 1, -1):
            token = self.tokens[index]
            if index in self.other_tokens:
                return True
            if token in self.lex.first_person:
                return False
            if token in self.lex.third_person and seen_relation_before:
                return True
        # No subject in this sentence: a pronoun-less sentence right after one about a relative stays with them
        first = self.tokens[sentence.start] if sentence.start < len(self.tokens) else ""
        return first in self.lex.third_person and seen_relation_before

    # --- numbers ---------------------------------------------------------------------------------------------

    def _number(self, index: int) -> float | None:
        token = self.tokens[index]
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return float(token)
        return None

    def _temperatures(self) -> list[Finding]:
        found: list[Finding] = []
        for index, _token in enumerate(self.tokens):
            value = self._number(index)
            if value is None:
                continue
            celsius = self._as_temperature(index, value)
            if celsius is None:
                continue
            span = Span(index, index + 1)
            self.claimed.add(index)
            status = self._status(span, "resolved" if self._resolved_after(span) else "present")
            found.append(Finding("temperature", "temp_c", celsius, self._number_words(index), status,
                                 past=self._past(span), hedged=self._hedged(span), high=celsius >= FEVER_C))
        return found

    def _as_temperature(self, index: int, value: float) -> float | None:
        after = self.tokens[index + 1:index + 3]
        before = self.tokens[index - 1] if index > 0 else ""
        if before in ("day", "dia", "since", "desde", "at", "las", "x", "age", "aged", "#", "room", "/"):
            return None
        if after and after[0] in self.lex.not_a_measure_after:
            return None
        unit = None
        for word in after:
            if word in self.lex.temp_units_f:
                unit = "f"
            elif word in self.lex.temp_units_c:
                unit = "c"
            elif word in self.lex.temp_units_any:
                unit = unit or "any"
                continue
            break
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(index))
        context = any(w in self.lex.temp_words for w in self.tokens[sentence.start:sentence.end]) or any(
            m.concept.name in ("fever", "chills") and sentence.start <= m.start < sentence.end for m in self.matches
        )
        decimal = "." in self.tokens[index]
        fahrenheit = unit == "f" or (unit != "c" and 90 <= value <= 113)
        celsius = round((value - 32) * 5 / 9, 1) if fahrenheit else value
        if not 34 <= celsius <= 44:
            return None
        plausible = 35 <= celsius <= 43
        if unit or (context and plausible) or (decimal and plausible):
            return celsius
        return None

    def _number_words(self, index: int) -> str:
        return " ".join(self.tokens[max(0, index - 3):index + 3])

    def _pain_numbers(self) -> list[Finding]:
        found: list[Finding] = []
        scale: set[int] = set()  # the "out of 10" / "de diez" after a score
        for index, token in enumerate(self.tokens):
            if self._number(index) is None and token not in self.lex.number_words:
                continue
            match = self.lex.out_of_ten.match(" ".join(self.tokens[index + 1:index + 4]))
            if match:
                scale.update(range(index + 1, index + 1 + len(match.group(0).split())))
        for index, token in enumerate(self.tokens):
            if index in scale or (index in self.claimed and self._number(index) is not None):
                continue  # the scale, or a temperature
            value = self._number(index)
            is_word = value is None and token in self.lex.number_words
            if is_word:
                value = float(self.lex.number_words[token])
            if value is None or value > 10:
                continue
            if not self._is_pain_number(index, is_word):
                continue
            span = Span(index, index + 1)
            status = self._status(span, "resolved" if self._resolved_after(span) else "present")
            number = int(value) if value == int(value) else value
            found.append(Finding("pain_number", "nrs_now", number, self._number_words(index), status,
                                 past=self._past(span), hedged=self._hedged(span), high=value >= 9))
        return found

    def _is_pain_number(self, index: int, is_word: bool) -> bool:
        rest = " ".join(self.tokens[index + 1:index + 4])
        if self.lex.out_of_ten.match(rest):
            return True
        before = self.tokens[index - 1] if index > 0 else ""
        after = self.tokens[index + 1] if index + 1 < len(self.tokens) else ""
        if before in self.lex.not_pain_before or after in self.lex.not_a_measure_after:
            return False
        if index > 0 and self.tokens[index - 1] == "/":
            return False  # the 10 of "9/10"
        if index > 1 and before in ("de", "of", "sobre", "over", "en") and (
            self._number(index - 2) is not None or self.tokens[index - 2] in self.lex.number_words
        ):
            return False  # the diez of "nueve de diez"
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(index))
        window = 3 if is_word else 12
        start = max(sentence.start, index - window)
        return any(w in self.lex.pain_words for w in self.tokens[start:index])


def _search(pattern: re.Pattern[str], text: str) -> bool:
    return bool(pattern.search(text))

