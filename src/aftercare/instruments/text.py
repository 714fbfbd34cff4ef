"""Text helpers for the reply parser: normalising, tokens, phrase matching and numbers in digits or words.

Everything here is pure and bounded: input is cut to MAX_SCAN characters before any regular expression
runs, and no pattern backtracks beyond a fixed window.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_SCAN = 2000
MAX_DIGITS = 7

_APOSTROPHES = "'’`´ʼ"
_KEEP = re.compile(r"[^a-z0-9.,/\-?°%:+ ]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, accents and apostrophes removed, emoji and symbols turned into spaces, one space between
    words. Keeps digits and the punctuation numbers need (. , / - : % °) and '?'."""
    text = unicodedata.normalize("NFKC", text[:MAX_SCAN]).lower()
    text = text.replace("¿", " ? ").replace("º", "°")
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    for ch in _APOSTROPHES:
        text = text.replace(ch, "")
    text = _KEEP.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    clause: int  # a new clause starts after . , ; ! ? : and at "but", "pero", ...


_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_CLAUSE_MARKS = frozenset(".,;!?:")
_CLAUSE_WORDS = frozenset("but though although however except aunque pero sino excepto".split())


def tokens(norm: str) -> list[Token]:
    out: list[Token] = []
    clause, previous_end = 0, 0
    for m in _TOKEN.finditer(norm):
        if any(ch in _CLAUSE_MARKS for ch in norm[previous_end : m.start()]) or m.group() in _CLAUSE_WORDS:
            clause += 1
        out.append(Token(m.group(), m.start(), m.end(), clause))
        previous_end = m.end()
    return out


def words(norm: str) -> list[str]:
    return [t.text for t in tokens(norm) if t.text.isalpha()]


def collapse_repeats(word: str) -> str:
    """'yesss' -> 'yes', 'nooo' -> 'no', 'siii' -> 'si' (every run of a letter becomes one letter)."""
    return re.sub(r"(.)\1+", r"\1", word)


NEGATORS = frozenset(
    "not no dont didnt doesnt isnt arent wasnt werent never nunca sin ni nor cant cannot havent hasnt".split()
)


@dataclass(frozen=True)
class PhraseMatch:
    payload: object
    first: int  # token index
    last: int  # token index, exclusive
    negated: bool


class PhraseMatcher:
    """Finds phrases (sequences of normalised words) left to right, longest phrase first at each position.

    A match is `negated` when one of the three tokens before it in the same clause is a negator ("not", "no",
    "sin", ...) that is not itself part of a match, and the phrase does not start with a negator itself."""

    def __init__(self, phrases: Iterable[tuple[str, object]]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], object]]] = {}
        self.vocabulary: set[str] = set()
        for phrase, payload in phrases:
            parts = tuple(normalize(phrase).replace("-", " ").split())
            if not parts:
                continue
            self._by_first.setdefault(parts[0], []).append((parts, payload))
            self.vocabulary.update(parts)
        for options in self._by_first.values():
            options.sort(key=lambda option: -len(option[0]))

    def find(self, toks: Sequence[str], clauses: Sequence[int] | None = None) -> list[PhraseMatch]:
        found: list[tuple[int, int, object]] = []
        index = 0
        while index < len(toks):
            for parts, payload in self._by_first.get(toks[index], ()):
                if tuple(toks[index : index + len(parts)]) == parts:
                    found.append((index, index + len(parts), payload))
                    index += len(parts)
                    break
            else:
                index += 1
        covered = {i for first, last, _ in found for i in range(first, last)}
        matches = []
        for first, last, payload in found:
            negated = False
            if toks[first] not in NEGATORS:
                for i in range(first - 1, max(-1, first - 4), -1):
                    if clauses is not None and clauses[i] != clauses[first]:
                        break
                    if toks[i] in NEGATORS and i not in covered:
                        negated = True
                        break
            matches.append(PhraseMatch(payload, first, last, negated))
        return matches


def canonical_words(toks: Sequence[str], vocabulary: set[str]) -> list[str]:
    """Tokens with repeated letters collapsed when that turns an unknown word into a known one."""
    out = []
    for tok in toks:
        if tok not in vocabulary and tok.isalpha():
            collapsed = collapse_repeats(tok)
            if collapsed in vocabulary:
                tok = collapsed
        out.append(tok)
    return out


def fuzzy_word(word: str, candidates: Iterable[str], cutoff: float = 0.8) -> str | None:
    """A close spelling ('sevn' -> 'seven', 'nuebe' -> 'nueve') among candidates of at least 4 letters that
    start with the same letter; None when nothing is close enough."""
    if len(word) < 4 or not word.isalpha():
        return None
    pool = [c for c in candidates if len(c) >= 4 and c[0] == word[0]]
    best = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    return best[0] if best else None


# ---------------------------------------------------------------------------------------------- numbers

_EN_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
            "ninety": 90}  # fmt: skip
_ES_SMALL = {
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16,
    "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintiun": 21,
    "veintidos": 22, "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26,
    "veintisiete": 27, "veintiocho": 28, "veintinueve": 29,
}  # fmt: skip
_ES_TENS = {"treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80,
            "noventa": 90}  # fmt: skip
_HUNDRED = {"hundred": 100, "cien": 100, "ciento": 100}
# Words that are numbers only in one language: "once" is 11 in Spanish and "one time" in English.
_ONLY_IN = {"once": "es"}
NUMBER_WORDS: dict[str, int] = {**_EN_SMALL, **_EN_TENS, **_ES_SMALL, **_ES_TENS, **_HUNDRED}
_TENS = {**_EN_TENS, **_ES_TENS}
_UNITS_1_9 = {w: v for w, v in {**_EN_SMALL, **_ES_SMALL}.items() if 1 <= v <= 9}
# Plain words too common to be read as a misspelt number.
_NOT_TYPOS = frozenset(
    "there then these those three tree thee free fine nice nine none once ones tone tons done gone fire "
    "five fife siete sient sienta sientes seas seis sies tres trees dose does dos doce ocho echo cinco".split()
)


@dataclass(frozen=True)
class Number:
    value: float | None  # None: too many digits to be anything we ask for
    start: int  # character offsets in the normalised text
    end: int
    from_word: bool = False
    decimal: bool = False
    negative: bool = False


_DIGITS = re.compile(r"(?<![0-9a-z.,])(-)?([0-9]+)(?:([.,])([0-9]+))?(?![0-9])")


def _digit_numbers(norm: str) -> list[Number]:
    out = []
    for m in _DIGITS.finditer(norm):
        sign, whole, sep, frac = m.groups()
        negative = bool(sign) and (m.start() == 0 or norm[m.start() - 1] == " ")
        if sign and not negative:  # "6-7": the dash belongs to a range, read "7" alone
            start = m.start(2)
        else:
            start = m.start()
        decimal = False
        if sep == "," and frac is not None and len(frac) == 3:  # 1,000 -> thousands separator
            whole, frac = whole + frac, None
        elif frac is not None:
            decimal = True
        if len(whole) > MAX_DIGITS:
            out.append(Number(None, start, m.end(), negative=negative))
            continue
        value = float(f"{whole}.{frac}") if decimal else float(whole)
        out.append(Number(-value if negative else value, start, m.end(), decimal=decimal, negative=negative))
    return out


def _word_numbers(toks: Sequence[Token], language: str, allow_typos: bool) -> list[Number]:
    out: list[Number] = []
    index = 0
    texts = [t.text for t in toks]
    while index < len(toks):
        word = texts[index]
        value = _word_value(word, language)
        if value is None and allow_typos and word not in _NOT_TYPOS:
            guess = fuzzy_word(word, [w for w in NUMBER_WORDS if w not in _ONLY_IN])
            value = NUMBER_WORDS[guess] if guess else None
        if value is None:
            index += 1
            continue
        start, end = toks[index].start, toks[index].end
        nxt = index + 1
        if word == "one" and nxt < len(texts) and texts[nxt] == "hundred":
            value, end, nxt = 100, toks[nxt].end, nxt + 1
        elif value in _TENS.values():
            # "twenty five", "twenty-five", "treinta y cinco"
            skip = 2 if nxt + 1 < len(texts) and texts[nxt] == "y" else 1
            unit = _UNITS_1_9.get(texts[nxt + skip - 1]) if nxt + skip - 1 < len(texts) else None
            if unit is not None:
                value, end, nxt = value + unit, toks[nxt + skip - 1].end, nxt + skip
        out.append(Number(float(value), start, end, from_word=True))
        index = nxt
    return out


def _word_value(word: str, language: str) -> int | None:
    if word == "a":
        return None
    only = _ONLY_IN.get(word)
    if only is not None and only != language:
        return None
    return NUMBER_WORDS.get(word)


def numbers(norm: str) -> list[Number]:
    """Every number written in digits, in order (with a decimal point or comma, a leading minus)."""
    return _digit_numbers(norm)


def digitize(norm: str, language: str, *, allow_typos: bool = False) -> str:
    """The text with number words written as digits ("seis o siete" -> "6 o 7", "twenty five" -> "25",
    "treinta y ocho" -> "38"), so one set of digit patterns reads both. With allow_typos, close misspellings
    count too ("sevn", "nuebe")."""
    out = norm
    for number in sorted(_word_numbers(tokens(norm), language, allow_typos), key=lambda n: -n.start):
        out = out[: number.start] + str(int(number.value or 0)) + out[number.end :]
    return out
