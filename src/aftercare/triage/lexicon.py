"""Red-flag words in English and Spanish: config/triage-lexicon.yaml, checked on load and cached for the reader.

The words live in that file, not here: each concept's patterns and the field of the check-in vocabulary (fields.py)
it sets, so free text fires the same rules as survey answers, and the word lists the reader uses for negation, time,
who a message is about, numbers and carrier keywords. Patterns are regular expressions over normalised text (lower
case, no accents, no apostrophes: "can't" -> "cant", "escalofríos" -> "escalofrios", one space between tokens);
`{NAME}` reuses a fragment defined in the file and `{gap:N}` stands for up to N words. Every pattern must compile
and every name must exist; a bad file is refused with each problem naming the concept (or list) and the key.

Adding a word: add it to the concept's `patterns` in a copy of the file, dry-run your messages with
`aftercare triage test messages.jsonl --lexicon copy.yaml`, then add a line showing it to
tests/data/triage_messages.jsonl. Mechanics stay in code: tokenising (textdoc.py), the `rx`/`gap` helpers, the
concept names the reader relies on (READER_CONCEPTS) and FEVER_C, a clinical threshold rather than a word.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aftercare.configfile import FileCache
from aftercare.triage.fields import ANSWER_FIELDS, FIELDS, TEXT_FIELDS, check_value

W = r"[a-z0-9][a-z0-9.&%]*"  # one word token (no punctuation)
FEVER_C = 38.0  # the reader's own notion of "a concerning temperature" (clinical.md §2.2); rules keep theirs


def gap(n: int) -> str:
    """Up to n word tokens (never across punctuation)."""
    return rf"(?:{W} ){{0,{n}}}"


def rx(*alternatives: str) -> re.Pattern[str]:
    """Whole-token alternatives over the normalised text."""
    return re.compile(r"(?<!\S)(?:" + "|".join(alternatives) + r")(?!\S)")


@dataclass(frozen=True)
class Concept:
    """A red-flag (or context) notion and the patterns that find it."""

    name: str
    field: str | None  # field set when found about the patient; None = context only
    value: object
    pattern: re.Pattern[str]
    high: bool = False  # a red flag: about others / resolved still goes to a person
    yields_to: tuple[str, ...] = ()  # dropped where one of these concepts overlaps it
    yields_in_segment: tuple[str, ...] = ()  # dropped when one of these is in the same clause
    span_negation: bool = True  # a negation word inside the match negates it (False: the pattern includes one)
    recheck_if_resolved: bool = False  # said to have passed, a clinician still checks it (fever gone by day 3)


# The file's `phrases` (whole-token patterns) and `words` (single tokens; keywords are whole messages).
PHRASES = ("antipyretics", "swelling", "swelling_same", "swelling_worse", "swelling_better", "not_worse",
           "resolved_post", "not_resolved", "past_phrases", "hypothetical", "hedges", "other_person", "also", "proxy",
           "out_of_ten")
WORD_SETS = ("negations", "pseudo_after", "post_negations", "post_ok", "list_connectors", "scope_breakers", "past",
             "present", "first_person", "third_person", "pain_words", "not_pain_before", "not_a_measure_after",
             "temp_words", "temp_units_c", "temp_units_f", "temp_units_any", "keywords", "fuzzy_protected")
WORD_LISTS = ("fuzzy_terms",)  # order matters: a misspelling is corrected to the first term it is one edit from
# Concepts the reader names in code; a file without them is refused.
READER_CONCEPTS = {
    "help": "a message that is only 'help' or 'ayuda'",
    "nsaid": "asking whether an NSAID may be taken (nsaid_asked)",
    "fever": "a number near it is read as a temperature",
    "chills": "a number near it is read as a temperature",
    "face_throat": "swelling words inside it are not knee swelling",
    "calf": "swelling words inside it are not knee swelling",
}
READER_FINDINGS = ("swelling", "temperature", "pain_number")  # findings the reader makes itself: reserved names


@dataclass(frozen=True)
class Lexicon:
    """Everything the free-text reader looks for, from one validated file (each list: config/triage-lexicon.yaml)."""

    source: str
    concepts: tuple[Concept, ...]
    concept_by_name: Mapping[str, Concept]
    recheck_if_resolved: frozenset[str]
    number_words: Mapping[str, int]
    fuzzy_terms: tuple[str, ...]
    antipyretics: re.Pattern[str]
    swelling: re.Pattern[str]
    swelling_same: re.Pattern[str]
    swelling_worse: re.Pattern[str]
    swelling_better: re.Pattern[str]
    not_worse: re.Pattern[str]
    resolved_post: re.Pattern[str]
    not_resolved: re.Pattern[str]
    past_phrases: re.Pattern[str]
    hypothetical: re.Pattern[str]
    hedges: re.Pattern[str]
    other_person: re.Pattern[str]
    also: re.Pattern[str]
    proxy: re.Pattern[str]
    out_of_ten: re.Pattern[str]
    negations: frozenset[str]
    pseudo_after: frozenset[str]
    post_negations: frozenset[str]
    post_ok: frozenset[str]
    list_connectors: frozenset[str]
    scope_breakers: frozenset[str]
    past: frozenset[str]
    present: frozenset[str]
    first_person: frozenset[str]
    third_person: frozenset[str]
    pain_words: frozenset[str]
    not_pain_before: frozenset[str]
    not_a_measure_after: frozenset[str]
    temp_words: frozenset[str]
    temp_units_c: frozenset[str]
    temp_units_f: frozenset[str]
    temp_units_any: frozenset[str]
    keywords: frozenset[str]
    fuzzy_protected: frozenset[str]


class LexiconError(ValueError):
    """A lexicon file that cannot be used. `problems` lists each one, naming the concept (or list) and the key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n  ".join(problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n  {listed}")


# --- loading and caching -------------------------------------------------------------------------------------------


def default_lexicon_path() -> Path:
    from aftercare.settings import get_settings

    return get_settings().config_dir / "triage-lexicon.yaml"


def _parse_file(path: Path) -> Lexicon:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise LexiconError(str(path), [f"not valid YAML: {exc}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(str(path), [f"cannot read the lexicon file: {exc}"]) from exc
    return parse_lexicon(raw, source=str(path))


_FILES = FileCache(_parse_file, default_lexicon_path, lambda path, exc: LexiconError(
    str(path), [f"cannot read the lexicon file: {exc.strerror or exc}"]))


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The lexicon at `path` (default: config/triage-lexicon.yaml, looked at most once a second), validated;
    parsed again when the file changes."""
    return _FILES.get(path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (a second `negations:` would hide the first)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


# --- validation ----------------------------------------------------------------------------------------------------

_TOP_KEYS = {"version", "fragments", "concepts", "phrases", "words", "number_words"}
_CONCEPT_KEYS = {"name", "field", "value", "patterns", "high", "span_negation", "yields_to", "yields_in_segment",
                 "recheck_if_resolved", "note"}
_FLAGS = ("high", "span_negation", "recheck_if_resolved")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FRAGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_REFERENCE = re.compile(r"\{([A-Za-z_]\w*)(?::([^{}]*))?\}")
_MAX_GAP = 12


def parse_lexicon(raw: object, *, source: str = "<lexicon>") -> Lexicon:
    """Validate a parsed lexicon document; LexiconError lists every problem at once."""
    if not isinstance(raw, dict):
        raise LexiconError(source, ["expected a mapping with fragments, concepts, phrases and words at the top level"])
    problems: list[str] = []
    for key in sorted(set(raw) - _TOP_KEYS, key=str):
        problems.append(f"{key}: unknown top-level key (expected {', '.join(sorted(_TOP_KEYS))})")
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append(f"version: must be a whole number, got {version!r}")
    fragments = _fragments(raw.get("fragments") or {}, problems)
    concepts = _concepts(raw.get("concepts"), fragments, problems)
    phrases = _named_lists(raw.get("phrases"), "phrases", PHRASES, problems)
    compiled = {name: _phrase(name, items, fragments, problems) for name, items in phrases.items()}
    words = _named_lists(raw.get("words"), "words", WORD_SETS + WORD_LISTS, problems)
    checked = {name: _words(name, items, problems) for name, items in words.items()}
    number_words = _number_words(raw.get("number_words"), problems)
    if problems:
        raise LexiconError(source, problems)
    lists: dict[str, Any] = {**compiled, **{name: frozenset(checked[name]) for name in WORD_SETS}}
    return Lexicon(
        source=source,
        concepts=tuple(concepts),
        concept_by_name={c.name: c for c in concepts},
        recheck_if_resolved=frozenset(c.name for c in concepts if c.recheck_if_resolved),
        number_words=number_words,
        fuzzy_terms=tuple(checked["fuzzy_terms"]),
        **lists,
    )


Problems = list[str]
Problem = Callable[[str, str], None]


def _fragments(raw: object, problems: Problems) -> dict[str, str]:
    """Each fragment as regex text: a list becomes `(?:a|b|c)`; a fragment may use the ones defined above it."""
    if not isinstance(raw, dict):
        problems.append("fragments: must be a mapping of NAME: pattern or NAME: [alternatives]")
        return {}
    fragments: dict[str, str] = {}
    for name, body in raw.items():
        where = f"fragments.{name}"
        if not isinstance(name, str) or not _FRAGMENT_NAME.match(name):
            problems.append(f"{where}: a fragment name is UPPER_CASE (gap is built in)")
            continue
        if isinstance(body, list) and body and all(isinstance(item, str) and item for item in body):
            text = "(?:" + "|".join(body) + ")"
        elif isinstance(body, str) and body:
            text = body
        else:
            problems.append(f"{where}: must be a pattern or a non-empty list of patterns")
            continue
        expanded = _expand(text, fragments, where, problems, hint="a fragment may use only the ones above it")
        if expanded is None or not _readable(text, expanded, where, problems):
            continue
        if _compiles(text, expanded, where, problems):
            fragments[name] = expanded
    return fragments


def _expand(pattern: str, fragments: Mapping[str, str], where: str, problems: Problems, hint: str = "") -> str | None:
    """The pattern with `{NAME}` and `{gap:N}` replaced; None (and a problem) for an unknown name or a bad gap."""
    bad: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2)
        if name == "gap":
            if arg is None or not arg.isdigit() or not 1 <= int(arg) <= _MAX_GAP:
                bad.append(f"{match.group(0)}: write {{gap:N}} with N words, 1 to {_MAX_GAP}")
                return ""
            return gap(int(arg))
        if arg is not None or name not in fragments:
            known = ", ".join(f"{{{n}}}" for n in fragments) or "none"
            bad.append(f"unknown fragment {match.group(0)} (defined: {known}; built in: {{gap:N}})"
                       + (f"; {hint}" if hint else ""))
            return ""
        return fragments[name]

    expanded = _REFERENCE.sub(replace, pattern)
    for message in bad:
        problems.append(f"{where}: {message}")
    return None if bad else expanded


def _compiles(source: str, pattern: str, where: str, problems: Problems) -> bool:
    """The pattern (fragments expanded) compiles; the problem quotes it as written."""
    try:
        re.compile(pattern)
    except re.error as exc:
        position = f" at position {exc.pos}" if source == pattern and exc.pos is not None else ""
        problems.append(f"{where}: {source!r} does not compile: {exc.msg}{position}")
        return False
    return True


def _patterns(raw: object, where: str, fragments: Mapping[str, str], problems: Problems) -> list[str] | None:
    """A list of patterns, each expanded, read-checked and compiled; None when any is bad."""
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: must be a non-empty list of patterns")
        return None
    before = len(problems)
    expanded: list[str] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, str) or not item:
            problems.append(f"{at}: must be a pattern (text), got {item!r}")
            continue
        text = _expand(item, fragments, at, problems)
        if text is not None and _readable(item, text, at, problems) and _compiles(item, text, at, problems):
            expanded.append(text)
    return expanded if len(problems) == before else None


def _readable(source: str, pattern: str, where: str, problems: Problems) -> bool:
    """A pattern (fragments expanded) can match normalised text: no upper case or accents outside its escapes."""
    unreadable = _unreadable(re.sub(r"\\.", "", pattern))
    if unreadable:
        problems.append(f"{where}: {source!r} {unreadable}")
    return unreadable is None


def _unreadable(text: str) -> str | None:
    """Why text (a word, or a pattern without its escapes) can never match normalised text, or None."""
    if text != text.lower():
        return "never matches: messages are read in lower case"
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    if folded != text and folded.isascii():
        return f"never matches: messages are read without accents (write {folded!r})"
    if not text.isascii():
        return "never matches: messages are read as plain letters, digits and punctuation (no accents or symbols)"
    return None


def _concepts(raw: object, fragments: Mapping[str, str], problems: Problems) -> list[Concept]:
    if not isinstance(raw, list) or not raw:
        problems.append("concepts: must be a non-empty list of concepts")
        return []
    concepts: list[Concept] = []
    seen: set[str] = set()
    for index, body in enumerate(raw):
        concept = _concept(index, body, fragments, seen, problems)
        if concept is not None:
            concepts.append(concept)
    for index, body in enumerate(raw):  # names a concept yields to must exist (any order in the file)
        if isinstance(body, dict):
            label = _concept_label(index, body)
            for key in ("yields_to", "yields_in_segment"):
                names = body.get(key) or []
                unknown = [n for n in names if isinstance(n, str) and n not in seen] if isinstance(names, list) else []
                if unknown:
                    problems.append(f"{label}, {key}: unknown concept(s) {', '.join(map(repr, unknown))}")
    missing = [name for name in READER_CONCEPTS if name not in seen]
    for name in missing:
        problems.append(f"concepts: {name!r} is missing; the reader uses it for {READER_CONCEPTS[name]}")
    return concepts


def _concept_label(index: int, body: Mapping[str, Any]) -> str:
    name = body.get("name")
    return f"concept {name}" if isinstance(name, str) and name else f"concepts[{index}] (no name)"


def _concept(index: int, body: object, fragments: Mapping[str, str], seen: set[str],
             problems: Problems) -> Concept | None:
    if not isinstance(body, dict):
        problems.append(f"concepts[{index}]: each concept is a mapping with name, field, value and patterns")
        return None
    label = _concept_label(index, body)
    before = len(problems)

    def problem(key: str, message: str) -> None:
        problems.append(f"{label}, {key}: {message}")

    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problem("name", "required: lower_case_with_underscores")
    elif name in seen:
        problem("name", f"{name!r} is used by another concept")
    elif name in READER_FINDINGS:
        problem("name", f"{name!r} is reserved for the reader's own findings")
    else:
        seen.add(name)
    for key in sorted(set(body) - _CONCEPT_KEYS, key=str):
        problem(str(key), f"unknown key (expected {', '.join(sorted(_CONCEPT_KEYS))})")
    field, value = _field_and_value(body, problem)
    flags = {key: body.get(key, key == "span_negation") for key in _FLAGS}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            problem(key, f"must be true or false, got {flag!r}")
    yields = {key: _names(body.get(key), key, problem) for key in ("yields_to", "yields_in_segment")}
    patterns = _patterns(body.get("patterns"), f"{label}, patterns", fragments, problems)
    if len(problems) > before or patterns is None:
        return None
    return Concept(str(name), field, value, rx(*patterns), yields_to=yields["yields_to"],
                   yields_in_segment=yields["yields_in_segment"], **flags)


def _field_and_value(body: Mapping[str, Any], problem: Problem) -> tuple[str | None, object]:
    if "field" not in body:
        problem("field", "required: the field it sets (null for a context-only concept)")
        return None, None
    field, value = body["field"], body.get("value")
    if field is None:
        if value is not None:
            problem("value", "a context-only concept (field: null) has no value")
        return None, None
    readable = {**ANSWER_FIELDS, **TEXT_FIELDS}
    spec = readable.get(field) if isinstance(field, str) else None
    if spec is None and field in FIELDS:
        problem("field", f"{field!r} is a {FIELDS[field].source} field; a concept sets an answer or free-text field")
        return None, None
    if spec is None:
        close = difflib.get_close_matches(str(field), readable, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}?" if close else "an answer or free-text field of fields.py"
        problem("field", f"unknown field {field!r} ({hint})")
        return None, None
    if "value" not in body:
        problem("value", f"required: the value of {field} it stands for")
        return None, None
    try:
        return field, check_value(spec, value)
    except ValueError as exc:
        problem("value", f"{field} {exc}")
        return None, None


def _names(raw: object, key: str, problem: Problem) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        problem(key, "must be a list of concept names")
        return ()
    return tuple(raw)


def _named_lists(raw: object, section: str, names: tuple[str, ...], problems: Problems) -> dict[str, object]:
    if not isinstance(raw, dict):
        problems.append(f"{section}: must be a mapping with {', '.join(names)}")
        return {}
    for key in sorted(set(raw) - set(names), key=str):
        problems.append(f"{section}.{key}: unknown list (expected one of {', '.join(names)})")
    for key in names:
        if key not in raw:
            problems.append(f"{section}.{key}: required")
    return {key: raw[key] for key in names if key in raw}


def _phrase(name: str, raw: object, fragments: Mapping[str, str], problems: Problems) -> re.Pattern[str] | None:
    patterns = _patterns(raw, f"phrases.{name}", fragments, problems)
    return None if patterns is None else rx(*patterns)


def _words(name: str, raw: object, problems: Problems) -> list[str]:
    where = f"words.{name}"
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: must be a non-empty list of words")
        return []
    words: list[str] = []
    for index, word in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(word, str) or not word.strip():
            hint = " (quote words YAML reads as true/false or numbers: 'no', 'yes', 'on', 'off')"
            problems.append(f"{at}: must be a word, got {word!r}" + (hint if not isinstance(word, str) else ""))
        elif word != word.strip() or (" " in word and name != "keywords"):
            problems.append(f"{at}: {word!r} is not one word (only keywords may be several)")
        elif (unreadable := _unreadable(word)) is not None:
            problems.append(f"{at}: {word!r} {unreadable}")
        else:
            words.append(word)
    return words


def _number_words(raw: object, problems: Problems) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        problems.append("number_words: must be a mapping of word: number (pain scores written in words)")
        return {}
    numbers: dict[str, int] = {}
    for word, number in raw.items():
        at = f"number_words.{word}"
        if not isinstance(word, str) or _unreadable(word) or " " in word:
            problems.append(f"{at}: must be one lower-case word without accents")
        elif isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 10:
            problems.append(f"{at}: must be a whole number from 0 to 10, got {number!r}")
        else:
            numbers[word] = number
    return numbers
