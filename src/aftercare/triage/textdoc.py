"""A message as tokens, sentences and clauses: lower case, no accents or apostrophes, decimals kept whole
("38,7" -> 38.7), numbers split from units ("101F" -> 101 f) and red-flag words spelt right ("fievre" -> fiebre)."""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from aftercare.triage.lexicon import Lexicon, load_lexicon

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z&]+|[.!?;,:/()%#=-]")


def normalize(text: str, lexicon: Lexicon | None = None) -> list[str]:
    """Lower-case tokens without accents or apostrophes; decimals kept whole ("38,7" -> "38.7").

    Misspelt red-flag words are corrected with the lexicon's fuzzy terms (default: the configured lexicon).
    """
    lexicon = lexicon or load_lexicon()
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
    return [_fuzzy(token, lexicon) for token in _TOKEN.findall(text)]


def _fuzzy(token: str, lexicon: Lexicon) -> str:
    """A misspelt red-flag word ("fievre", "pantorila", "breth") spelt right; anything else unchanged."""
    if len(token) < 5 or not token.isalpha() or token in lexicon.fuzzy_protected or token in lexicon.fuzzy_terms:
        return token
    for term in lexicon.fuzzy_terms:
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



@dataclass(frozen=True)
class Span:
    start: int  # token index
    end: int  # exclusive


@dataclass(frozen=True)
class Sentence(Span):
    question: bool



SENTENCE_END = {".", "!", "?", ";"}
SEGMENT_PUNCT = {",", "(", ")"}
_SEGMENT_START = {"but", "pero", "aunque", "though", "although", "however", "except", "excepto", "salvo", "whereas",
                  "mientras", "now", "ahora", "today", "hoy", "currently", "actualmente"}
_AFTER_AND = {"i", "im", "ive", "my", "me", "yo", "mi", "he", "she", "his", "her", "the", "la", "el", "its", "it",
              "now", "today", "ahora", "hoy", "tengo", "estoy", "then", "luego", "also", "tambien"}



class Doc:
    """Tokens, their text, sentences and clauses (segments)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.text = " ".join(tokens)
        self.starts: list[int] = []
        position = 0
        for token in tokens:
            self.starts.append(position)
            position += len(token) + 1
        self.sentences: list[Sentence] = []
        self.segments: list[Span] = []
        self.segment_sentence: list[int] = []
        self._split()
        self._segment_starts = [segment.start for segment in self.segments]
        self._found: dict[re.Pattern[str], list[Span]] = {}

    def _split(self) -> None:
        start = 0
        for index, token in enumerate(self.tokens + ["."]):
            if token in SENTENCE_END:
                if index > start:
                    question = index < len(self.tokens) and token == "?"
                    self.sentences.append(Sentence(start, index, question))
                start = index + 1
        for number, sentence in enumerate(self.sentences):
            seg_start = sentence.start
            for index in range(sentence.start, sentence.end):
                token = self.tokens[index]
                nxt = self.tokens[index + 1] if index + 1 < sentence.end else ""
                boundary = token in SEGMENT_PUNCT
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
            self.segments.append(Span(start, end))
            self.segment_sentence.append(sentence)

    def token_span(self, match: re.Match[str]) -> Span:
        start = bisect.bisect_right(self.starts, match.start()) - 1
        end = bisect.bisect_right(self.starts, match.end() - 1)
        return Span(start, end)

    def segment_of(self, index: int) -> int:
        """The clause a token is in (a sentence-ending token counts with the clause before it)."""
        if not self.segments:
            return 0
        return max(bisect.bisect_right(self._segment_starts, index) - 1, 0)

    def sentence_of_segment(self, segment: int) -> Sentence:
        return self.sentences[self.segment_sentence[segment]]

    def words(self, span: Span) -> str:
        return " ".join(self.tokens[span.start:span.end])

    def find(self, pattern: re.Pattern[str], span: Span | None = None) -> Iterable[Span]:
        """Where a pattern matches, as token spans (within `span` if given). Each pattern runs once per message."""
        found = self._found.get(pattern)
        if found is None:
            found = self._found[pattern] = [self.token_span(m) for m in pattern.finditer(self.text)]
        return [f for f in found if span is None or (f.start >= span.start and f.end <= span.end)]
