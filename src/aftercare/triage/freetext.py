"""Read a patient's free text (English or Spanish) for red flags, onto the fields the triage rules use.

The reader normalises the text (case, accents, apostrophes, "38,7" -> 38.7, "101F" -> "101 f"), splits it into
sentences and clauses, finds red-flag concepts (lexicon.py), pain numbers and temperatures, and decides for each
finding whether it is present, negated ("no fever", "sin fiebre", "denies chest pain"), resolved ("not red anymore",
"fever on day 2, gone now"), about someone else ("my husband has a fever") or hypothetical ("what if I get a
fever?"). When it cannot tell, it reads the more concerning way: a past symptom that is not said to be over counts
as current (with lower confidence), a hedge ("I think I have a fever") counts, "bleeding" without an amount counts
as soaking, and a red flag about someone else or one that has resolved still goes to a person (review).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aftercare.triage import lexicon as lx
from aftercare.triage.fields import FIELDS, more_concerning

Status = Literal["present", "negated", "resolved", "other_person", "hypothetical"]
TextKind = Literal["free_text", "keyword", "answer"]


@dataclass(frozen=True)
class Finding:
    """One thing the reader found in the text, and how it was meant."""

    concept: str
    field: str | None
    value: object
    words: str  # the words it was read from (normalised)
    status: Status
    past: bool = False  # told in the past tense and not said to be over: may still be current
    hedged: bool = False  # "I think", "maybe", "un poco"
    high: bool = False  # a red flag

    @property
    def confidence(self) -> Literal["high", "low"]:
        return "low" if self.past or self.hedged or self.status != "present" else "high"

    def describe(self) -> str:
        notes = {
            "present": "", "negated": " (negated)", "resolved": " (said to be over)",
            "other_person": " (about someone else)", "hypothetical": " (hypothetical)",
        }[self.status]
        if self.status == "present" and self.past:
            notes = " (past tense, may still be current)"
        return f'"{self.words}"{notes}'

    def to_dict(self) -> dict[str, object]:
        return {"concept": self.concept, "field": self.field, "value": self.value, "words": self.words,
                "status": self.status, "past": self.past, "hedged": self.hedged, "confidence": self.confidence}


@dataclass(frozen=True)
class TextReading:
    """What a message says, as fields for the rules, with the findings behind each field."""

    kind: TextKind
    findings: tuple[Finding, ...] = ()
    fields: Mapping[str, object] = field(default_factory=dict)
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ normalising

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z&]+|[.!?;,:/()%#=-]")


def normalize(text: str) -> list[str]:
    """Lower-case tokens without accents or apostrophes; decimals kept whole ("38,7" -> "38.7")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\u2019\u2018`\u00b4]", "'", text)
    text = re.sub(r"(?<!\w)s[ií](?=\s*[,.!]|\s*$)", " siyes ", text)  # "sí," / "si." = yes (before accents go)
    text = re.sub(r"(?<!\w)sí(?!\w)", " siyes ", text)
    text = text.replace("°", " deg ").replace("º", " deg ").replace("˚", " deg ")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"(?<=\w)'(?=\w)", "", text)  # can't -> cant, I'm -> im
    text = text.replace("'", " ")
    text = re.sub(r"(\d),(\d{1,2})(?!\d)", r"\1.\2", text)  # 38,7 -> 38.7
    text = re.sub(r"(\d)\.(?!\d)", r"\1 .", text)
    text = re.sub(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)", " ", text)  # 101f -> 101 f, day2 -> day 2
    text = re.sub(r"[\r\n]+", " . ", text)
    return [_fuzzy(token) for token in _TOKEN.findall(text)]


def _fuzzy(token: str) -> str:
    """A misspelt red-flag word ("fievre", "pantorila", "breth") spelt right; anything else unchanged."""
    if len(token) < 5 or not token.isalpha() or token in lx.FUZZY_PROTECTED or token in lx.FUZZY_TERMS:
        return token
    for term in lx.FUZZY_TERMS:
        if len(term) >= 6 and abs(len(term) - len(token)) <= 1 and _one_edit(token, term):
            return term
    return token


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance <= 1."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) <= 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


# ------------------------------------------------------------------------------------------------ structure


@dataclass(frozen=True)
class _Span:
    start: int  # token index
    end: int  # exclusive


@dataclass(frozen=True)
class _Sentence(_Span):
    question: bool


@dataclass(frozen=True)
class _Match(_Span):
    concept: lx.Concept
    segment: int


_SENTENCE_END = {".", "!", "?", ";"}
_SEGMENT_PUNCT = {",", "(", ")"}
_SEGMENT_START = {"but", "pero", "aunque", "though", "although", "however", "except", "excepto", "salvo", "whereas",
                  "mientras", "now", "ahora", "today", "hoy", "currently", "actualmente"}
_AFTER_AND = {"i", "im", "ive", "my", "me", "yo", "mi", "he", "she", "his", "her", "the", "la", "el", "its", "it",
              "now", "today", "ahora", "hoy", "tengo", "estoy", "then", "luego", "also", "tambien"}


class _Doc:
    """Tokens, their text, sentences and clauses (segments)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.text = " ".join(tokens)
        self.starts: list[int] = []
        position = 0
        for token in tokens:
            self.starts.append(position)
            position += len(token) + 1
        self.sentences: list[_Sentence] = []
        self.segments: list[_Span] = []
        self.segment_sentence: list[int] = []
        self._split()

    def _split(self) -> None:
        start = 0
        for index, token in enumerate(self.tokens + ["."]):
            if token in _SENTENCE_END:
                if index > start:
                    question = index < len(self.tokens) and token == "?"
                    self.sentences.append(_Sentence(start, index, question))
                start = index + 1
        for number, sentence in enumerate(self.sentences):
            seg_start = sentence.start
            for index in range(sentence.start, sentence.end):
                token = self.tokens[index]
                nxt = self.tokens[index + 1] if index + 1 < sentence.end else ""
                boundary = token in _SEGMENT_PUNCT
                starts_new = token in _SEGMENT_START or (token in ("and", "y") and nxt in _AFTER_AND)
                if starts_new and index > seg_start:
                    self._add_segment(seg_start, index, number)
                    seg_start = index
                elif boundary:
                    self._add_segment(seg_start, index, number)
                    seg_start = index + 1
            self._add_segment(seg_start, sentence.end, number)

    def _add_segment(self, start: int, end: int, sentence: int) -> None:
        if end > start:
            self.segments.append(_Span(start, end))
            self.segment_sentence.append(sentence)

    def token_span(self, match: re.Match[str]) -> _Span:
        start = bisect.bisect_right(self.starts, match.start()) - 1
        end = bisect.bisect_right(self.starts, match.end() - 1)
        return _Span(start, end)

    def segment_of(self, index: int) -> int:
        for number, segment in enumerate(self.segments):
            if segment.start <= index < segment.end:
                return number
        return max(len(self.segments) - 1, 0)

    def sentence_of_segment(self, segment: int) -> _Sentence:
        return self.sentences[self.segment_sentence[segment]]

    def words(self, span: _Span) -> str:
        return " ".join(self.tokens[span.start:span.end])

    def find(self, pattern: re.Pattern[str], span: _Span | None = None) -> Iterable[_Span]:
        for match in pattern.finditer(self.text):
            found = self.token_span(match)
            if span is None or (found.start >= span.start and found.end <= span.end):
                yield found


# ------------------------------------------------------------------------------------------------ the reader


def classify(text: str | None, *, day: float, survey: str | None = None) -> tuple[TextKind | None, dict[str, object]]:
    """What kind of message this is: a carrier keyword or acknowledgement, an early check-in "0"/"1", or free text.

    Returns the kind (None for no text) and any answers it stands for ("1" on an early check-in = help_requested).
    """
    if text is None or not text.strip():
        return None, {}
    words = " ".join(t for t in normalize(text) if t not in _SENTENCE_END and t not in _SEGMENT_PUNCT)
    early = survey.startswith("checkin") if survey else 0 <= day <= 14
    if words in ("0", "1") and early:
        return "answer", ({"help_requested": True} if words == "1" else {})
    if not words or words in lx.KEYWORDS:
        return "keyword", {}
    return "free_text", {}


def read(text: str) -> TextReading:
    """Findings and fields of one free-text message."""
    doc = _Doc(normalize(text))
    findings = _Reader(doc).findings()
    if lx.ANTIPYRETICS.search(doc.text):  # "38.3 earlier, 37.1 after tylenol": masked, not gone
        findings = [_unmask(f) for f in findings]
    return _reading(findings)


def _unmask(finding: Finding) -> Finding:
    if finding.status == "resolved" and finding.concept in ("fever", "chills"):
        return Finding(finding.concept, finding.field, finding.value, finding.words + " (fever medicine taken)",
                       "present", past=True, hedged=finding.hedged, high=finding.high)
    if finding.concept == "temperature" and finding.past and finding.high:
        return Finding(finding.concept, finding.field, finding.value, finding.words + " (fever medicine taken)",
                       finding.status, past=False, hedged=finding.hedged, high=finding.high)
    return finding


def _reading(findings: list[Finding]) -> TextReading:
    values: dict[str, object] = {"text_present": True}
    evidence: dict[str, list[str]] = {}

    def note(name: str, finding: Finding) -> None:
        evidence.setdefault(name, [])
        if finding.describe() not in evidence[name]:
            evidence[name].append(finding.describe())

    present_numbers: dict[str, list[Finding]] = {}
    past_numbers: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.concept in ("pain_number", "temperature"):
            if finding.status == "present" and not finding.past:
                present_numbers.setdefault(finding.concept, []).append(finding)
            elif finding.status in ("present", "resolved"):
                past_numbers.setdefault(finding.concept, []).append(finding)
    for concept, past in past_numbers.items():
        still = [f for f in past if f.status == "present"]
        if concept not in present_numbers and still:  # only past readings, not said to be over: may be current
            present_numbers[concept] = still
            past = [f for f in past if f.status == "resolved"]
        if concept == "temperature" and past:  # readings that are over, or older than a current one
            hottest = max(past, key=lambda f: float(f.value))  # type: ignore[arg-type]
            values["temp_c_past_max"] = hottest.value
            note("temp_c_past_max", hottest)
    for concept_findings in present_numbers.values():
        for finding in concept_findings:
            _merge(values, finding)
            assert finding.field is not None
            note(finding.field, finding)
    for finding in findings:
        if finding.concept in ("pain_number", "temperature"):
            if finding.status == "other_person" and finding.high:
                values["text_about_other"] = True
                note("text_about_other", finding)
            continue
        if finding.status == "present" and finding.field:
            _merge(values, finding)
            note(finding.field, finding)
        elif finding.status == "other_person" and finding.high:
            values["text_about_other"] = True
            note("text_about_other", finding)
        elif finding.status == "resolved" and finding.concept in lx.RECHECK_IF_RESOLVED:
            values["text_resolved_flag"] = True
            note("text_resolved_flag", finding)
    return TextReading("free_text", tuple(findings), values, {k: tuple(v) for k, v in evidence.items()})


def _merge(values: dict[str, object], finding: Finding) -> None:
    assert finding.field is not None
    values[finding.field] = more_concerning(FIELDS[finding.field], values.get(finding.field), finding.value)


class _Reader:
    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.tokens = doc.tokens
        self.matches = self._concept_matches()
        self.swellings = [s for s in doc.find(lx.SWELLING) if not self._inside_concept(s, ("face_throat", "calf"))]
        self.claimed: set[int] = set()
        self.claimed_starts: set[int] = set()
        for span in [*self.matches, *self.swellings]:
            self.claimed.update(range(span.start, span.end))
            self.claimed_starts.add(span.start)
        self.proxy = any(True for _ in doc.find(lx.PROXY))
        self.others = list(doc.find(lx.OTHER_PERSON))
        self.other_tokens = {i for span in self.others for i in range(span.start, span.end)}

    # --- matching --------------------------------------------------------------------------------------------

    def _concept_matches(self) -> list[_Match]:
        found: list[_Match] = []
        for concept in lx.CONCEPTS:
            for span in self.doc.find(concept.pattern):
                found.append(_Match(span.start, span.end, concept, self.doc.segment_of(span.start)))
        if [t for t in self.tokens if t.isalpha()] in (["help"], ["ayuda"], ["help", "me"], ["sos"]):
            found.append(_Match(0, len(self.tokens), lx.CONCEPT_BY_NAME["help"], 0))
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

    def _inside_concept(self, span: _Span, names: tuple[str, ...]) -> bool:
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

    def _swelling_finding(self, span: _Span) -> Finding | None:
        segment = self.doc.segment_of(span.start)
        seg = self.doc.segments[segment]
        text = self.doc.words(seg)
        polarity = self._polarity(span, span_negation=False, post=False)  # "hinchazon no baja" is a trend
        trend: str | None
        not_worse = bool(lx.NOT_WORSE.search(text))
        if polarity in ("negated", "resolved"):
            trend = "better"  # "no swelling", "swelling gone": nothing to be not-better about
        elif _search(lx.SWELLING_SAME, text) and re.search(r"(?:not|no|isnt|hasnt) ", text) and \
                re.search(r"(?:not|isnt|hasnt|no) (?:\w+ )?(?:better|improv|going down|gone down|smaller|less|"
                          r"mejora|baja|quita|desinflama|va)", text):
            trend = "same"
        elif _search(lx.SWELLING_WORSE, text) and not not_worse:
            trend = "worse"
        elif _search(lx.SWELLING_BETTER, text):
            trend = "better"
        elif _search(lx.SWELLING_SAME, text):
            trend = "same"
        else:
            return None
        status = self._status(span, "present")
        return Finding("swelling", "swelling_trend", trend, text, status, past=self._past(span),
                       hedged=self._hedged(span))

    def _status(self, span: _Span, polarity: str) -> Status:
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
        self, span: _Span, *, span_negation: bool, ok_words: bool = False, post: bool = True
    ) -> Literal["present", "negated", "resolved"]:
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        if span_negation:
            for index in range(span.start, span.end):
                if self.tokens[index] in lx.NEGATIONS and not self._pseudo(index):
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
        return nxt in lx.PSEUDO_AFTER

    def _negator_before(self, span: _Span, sentence: _Sentence) -> int | None:
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
                while after < span.start and self.tokens[after] in lx.LIST_CONNECTORS:
                    after += 1
                if after not in self.claimed_starts and self.tokens[after] not in lx.NEGATIONS:
                    return None
            elif token in lx.SCOPE_BREAKERS:
                return None
            elif token in ("i", "yo") and not (index > 0 and self.tokens[index - 1] in
                                                ("think", "believe", "feel", "creo", "suppose", "guess")):
                return None
            elif token in lx.NEGATIONS and not self._pseudo(index):
                return index
            steps += 1
            index -= 1
        return None

    def _negated_after(self, span: _Span, sentence: _Sentence, ok_words: bool) -> bool:
        index, skipped = span.end, 0
        while index < sentence.end and skipped <= 2:
            token = self.tokens[index]
            if token in (",", "(", ")", "/", "and", "y", "but", "pero", "because", "porque"):
                break
            if ok_words and token in lx.POST_OK and skipped == 0:
                return True
            if token in lx.POST_NEGATIONS:
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

    def _resolution_words(self, negator: int, span: _Span) -> bool:
        """The negation says it is over: "no longer", "no more", "ya no", "not ... anymore"."""
        before = self.tokens[negator - 1] if negator > 0 else ""
        after = self.tokens[negator + 1] if negator + 1 < len(self.tokens) else ""
        tail = " ".join(self.tokens[span.end:span.end + 4])
        return before == "ya" or after in ("longer", "more") or bool(re.search(r"\bany ?more\b|\bmas\b", tail))

    def _resolved_after(self, span: _Span) -> bool:
        segment = self.doc.segment_of(span.start)
        sentence_number = self.doc.segment_sentence[segment]
        number = segment
        while number < len(self.doc.segments) and self.doc.segment_sentence[number] == sentence_number:
            seg = self.doc.segments[number]
            start = span.end if number == segment else seg.start
            if number != segment and any(seg.start <= i < seg.end for i in self.claimed_starts):
                break  # the next clause is about something else
            text = " ".join(self.tokens[start:seg.end])
            if text and lx.RESOLVED_POST.search(text) and not lx.NOT_RESOLVED.search(text):
                return True
            number += 1
        return False

    # --- time, hedges, hypotheticals, questions --------------------------------------------------------------

    def _segment_words(self, span: _Span) -> list[str]:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        return self.tokens[seg.start:seg.end]

    def _past(self, span: _Span) -> bool:
        words = self._segment_words(span)
        text = " ".join(words)
        past = any(w in lx.PAST for w in words) or bool(lx.PAST_PHRASES.search(text))
        present = any(w in lx.PRESENT for w in words)
        return past and not present

    def _hedged(self, span: _Span) -> bool:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        return any(s.start < span.start for s in self.doc.find(lx.HEDGES, seg))

    def _hypothetical(self, span: _Span) -> bool:
        seg = self.doc.segments[self.doc.segment_of(span.start)]
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        for marker in self.doc.find(lx.HYPOTHETICAL, seg):
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

    def _about_other(self, span: _Span) -> bool:
        if self.proxy or not self.others:
            return False
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(span.start))
        if any(sentence.start <= s.start < sentence.end for s in self.doc.find(lx.ALSO)):
            return False  # "my wife has chills too": the patient may have them as well
        seen_relation_before = any(s.start < span.start for s in self.others)
        for index in range(span.start - 1, sentence.start - 1, -1):
            token = self.tokens[index]
            if index in self.other_tokens:
                return True
            if token in lx.FIRST_PERSON:
                return False
            if token in lx.THIRD_PERSON and seen_relation_before:
                return True
        # No subject in this sentence: a pronoun-less sentence right after one about a relative stays with them
        first = self.tokens[sentence.start] if sentence.start < len(self.tokens) else ""
        return first in lx.THIRD_PERSON and seen_relation_before

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
            span = _Span(index, index + 1)
            self.claimed.add(index)
            status = self._status(span, "resolved" if self._resolved_after(span) else "present")
            found.append(Finding("temperature", "temp_c", celsius, self._number_words(index), status,
                                 past=self._past(span), hedged=self._hedged(span), high=celsius >= lx.FEVER_C))
        return found

    def _as_temperature(self, index: int, value: float) -> float | None:
        after = self.tokens[index + 1:index + 3]
        before = self.tokens[index - 1] if index > 0 else ""
        if before in ("day", "dia", "since", "desde", "at", "las", "x", "age", "aged", "#", "room", "/"):
            return None
        if after and after[0] in lx.NOT_A_MEASURE_AFTER:
            return None
        unit = None
        for word in after:
            if word in lx.TEMP_UNITS_F:
                unit = "f"
            elif word in lx.TEMP_UNITS_C:
                unit = "c"
            elif word in lx.TEMP_UNITS_ANY:
                unit = unit or "any"
                continue
            break
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(index))
        context = any(w in lx.TEMP_WORDS for w in self.tokens[sentence.start:sentence.end]) or any(
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
            if self._number(index) is None and token not in lx.NUMBER_WORDS:
                continue
            match = lx.OUT_OF_TEN.match(" ".join(self.tokens[index + 1:index + 4]))
            if match:
                scale.update(range(index + 1, index + 1 + len(match.group(0).split())))
        for index, token in enumerate(self.tokens):
            if index in scale or (index in self.claimed and self._number(index) is not None):
                continue  # the scale, or a temperature
            value = self._number(index)
            is_word = value is None and token in lx.NUMBER_WORDS
            if is_word:
                value = float(lx.NUMBER_WORDS[token])
            if value is None or value > 10:
                continue
            if not self._is_pain_number(index, is_word):
                continue
            span = _Span(index, index + 1)
            status = self._status(span, "resolved" if self._resolved_after(span) else "present")
            number = int(value) if value == int(value) else value
            found.append(Finding("pain_number", "nrs_now", number, self._number_words(index), status,
                                 past=self._past(span), hedged=self._hedged(span), high=value >= 9))
        return found

    def _is_pain_number(self, index: int, is_word: bool) -> bool:
        rest = " ".join(self.tokens[index + 1:index + 4])
        if lx.OUT_OF_TEN.match(rest):
            return True
        before = self.tokens[index - 1] if index > 0 else ""
        after = self.tokens[index + 1] if index + 1 < len(self.tokens) else ""
        if before in lx.NOT_PAIN_BEFORE or after in lx.NOT_A_MEASURE_AFTER:
            return False
        if index > 0 and self.tokens[index - 1] == "/":
            return False  # the 10 of "9/10"
        if index > 1 and before in ("de", "of", "sobre", "over", "en") and (
            self._number(index - 2) is not None or self.tokens[index - 2] in lx.NUMBER_WORDS
        ):
            return False  # the diez of "nueve de diez"
        sentence = self.doc.sentence_of_segment(self.doc.segment_of(index))
        window = 3 if is_word else 12
        start = max(sentence.start, index - window)
        return any(w in lx.PAIN_WORDS for w in self.tokens[start:index])


def _search(pattern: re.Pattern[str], text: str) -> bool:
    return bool(pattern.search(text))
