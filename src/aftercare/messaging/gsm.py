"""GSM-7 and SMS segments: what fits one 160-character segment, and folding text into GSM-7.

One character outside the GSM 03.38 alphabet turns the whole message into UCS-2 (70 characters a
segment instead of 160), so SMS text is folded before sending: Spanish á/í/ó/ú lose their accent
(é, ñ, ü, ¿ and ¡ are GSM-7 and stay), typographic quotes and dashes become plain ones.
"""

from __future__ import annotations

import math
import unicodedata

# GSM 03.38 basic character set (without ESC) and the extension table (each costs two septets).
BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = frozenset("^{}\\[~]|€\f")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# Characters with a natural GSM-7 stand-in (checked before the generic accent stripping).
_FOLD = {
    "\u00a0": " ",  # no-break space
    "\u2009": " ",
    "\u202f": " ",
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
    "\u00b0": " degrees",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u00d7": "x",
    "ç": "c",
    "Á": "A",
    "Í": "I",
    "Ó": "O",
    "Ú": "U",
}


def is_gsm7(text: str) -> bool:
    return all(ch in BASIC or ch in EXTENSION for ch in text)


def non_gsm7(text: str) -> list[str]:
    """The distinct characters that would force UCS-2, in order of appearance."""
    seen: list[str] = []
    for ch in text:
        if ch not in BASIC and ch not in EXTENSION and ch not in seen:
            seen.append(ch)
    return seen


def septets(text: str) -> int:
    """Length in GSM-7 septets (extension characters count twice)."""
    return sum(2 if ch in EXTENSION else 1 for ch in text)


def segments(text: str) -> int:
    """How many SMS segments (billed parts) the text takes, GSM-7 or UCS-2."""
    if is_gsm7(text):
        length, single, part = septets(text), GSM_SINGLE, GSM_PART
    else:
        length = len(text.encode("utf-16-le")) // 2
        single, part = UCS2_SINGLE, UCS2_PART
    if length <= single:
        return 1
    return math.ceil(length / part)


def fold(text: str) -> str:
    """Replace characters outside GSM-7 by the nearest GSM-7 text; leave what has none (then it goes as UCS-2)."""
    out: list[str] = []
    for ch in text:
        if ch in BASIC or ch in EXTENSION:
            out.append(ch)
        elif ch in _FOLD:
            out.append(_FOLD[ch])
        else:
            stripped = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(stripped if stripped and is_gsm7(stripped) else ch)
    return "".join(out)
