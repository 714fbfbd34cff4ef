"""What an inbound SMS asks for: opt out, opt back in, help, or nothing (free text). Pure: no database.

Keywords follow Twilio's single-word handling (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
OPTOUT; START, UNSTOP; HELP, INFO) plus Spanish ones. Plain-language opt-outs ("please stop texting
me", "no más mensajes", "ya no me escriban") are recognised too, because consent may be revoked "in any
reasonable manner"; Twilio ignores those, so the app confirms them once. Sentences that only mention
stopping something else ("I stopped the ibuprofen") are not opt-outs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aftercare.models import InboundIntent

# Twilio's own single-word keywords: Twilio blocks/unblocks the sender and replies itself.
TWILIO_OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
TWILIO_OPT_IN = frozenset({"start", "unstop"})
TWILIO_HELP = frozenset({"help", "info"})
# Ours on top (Twilio ignores them, so nothing is confirmed or blocked on Twilio's side).
OPT_OUT_WORDS = TWILIO_OPT_OUT | {
    "opt out", "opt-out", "baja", "alto", "parar", "para", "detener", "cancelar", "basta", "no mas"
}
OPT_IN_WORDS = TWILIO_OPT_IN | {"subscribe", "alta", "reanudar"}
HELP_WORDS = TWILIO_HELP | {"ayuda", "informacion"}

_CONTACT_EN = r"(text|texts|texting|message|messages|messaging|msg|msgs|sms|contact|contacting|email|emails|emailing)"
_CONTACT_ES = (  # requests and infinitives only: "no me mandaron el enlace" is not an opt-out
    r"(escriban|escribas|escriba|manden|mandes|mande|envien|envies|envie|contacten|contactes|contacte"
    r"|molesten|molestes|moleste|llamen|(escribir|mandar|enviar|contactar|molestar|textear)(me|nos)?)\b"
)
_SENTENCES = [
    # English
    rf"\bstop\s+(\w+\s+){{0,2}}{_CONTACT_EN}\b",  # stop texting me, stop sending me messages, stop the texts
    rf"\b(do\s*n[o']?t|do not|never)\s+{_CONTACT_EN}\s+(me|us)\b",  # don't text me
    rf"\bno\s+more\s+{_CONTACT_EN}\b",  # no more texts
    r"\b(unsubscribe|opt\s*-?\s*out|take me off|remove me from)\b",
    r"^(please|pls|plz)\s+stop\b",  # please stop
    r"^stop\s+(please|pls|plz|now|it)\b",  # stop please
    r"\bleave me alone\b",
    # Spanish
    r"\bno\s+mas\s+(mensajes|textos|correos|sms)\b",  # no más mensajes
    rf"\bya\s+no\s+(me\s+)?{_CONTACT_ES}",  # ya no me escriban
    rf"\bno\s+me\s+{_CONTACT_ES}",  # no me manden mensajes
    rf"\bdej\w*\s+de\s+{_CONTACT_ES}",  # dejen de escribirme
    r"\b(dar(me)?|darse|doy)\s+de\s+baja\b",  # darme de baja
    r"^(por\s+favor\s+)?(baja|alto|basta)\b",  # baja por favor
]
_SENTENCE_RE = [re.compile(p) for p in _SENTENCES]


@dataclass(frozen=True)
class Classified:
    intent: InboundIntent
    twilio_keyword: bool  # one of Twilio's own keywords: Twilio already blocked/confirmed it
    matched: str | None = None
    sentence: bool = False  # recognised in a sentence, not as a keyword: worth a person's look


def normalise(body: str) -> str:
    """Lower case, no accents, words separated by single spaces, punctuation dropped (apostrophes kept)."""
    text = unicodedata.normalize("NFKD", body).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' -]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def classify(body: str, *, opted_out: bool = False) -> Classified:
    """The intent of one message. Opt-out is checked first and wins over everything else.

    `opted_out`: the sender is currently opted out of SMS; then YES/SI also opt back in (Twilio does
    the same), while for everyone else "yes" is an ordinary answer.
    """
    text = normalise(body)
    bare = text.strip(" '-")
    if bare in OPT_OUT_WORDS:
        return Classified(InboundIntent.opt_out, twilio_keyword=bare in TWILIO_OPT_OUT, matched=bare)
    for pattern in _SENTENCE_RE:
        found = pattern.search(text)
        if found:
            return Classified(InboundIntent.opt_out, twilio_keyword=False, matched=found.group(0), sentence=True)
    if bare in OPT_IN_WORDS or (opted_out and bare in {"yes", "si"}):
        return Classified(InboundIntent.opt_in, twilio_keyword=bare in TWILIO_OPT_IN | {"yes"}, matched=bare)
    if bare in HELP_WORDS:
        return Classified(InboundIntent.help, twilio_keyword=bare in TWILIO_HELP, matched=bare)
    return Classified(InboundIntent.text, twilio_keyword=False)


def from_twilio_opt_out_type(value: str | None) -> InboundIntent | None:
    """Twilio Advanced Opt-Out's own verdict (`OptOutType`), when the Messaging Service sends one."""
    mapping = {"STOP": InboundIntent.opt_out, "START": InboundIntent.opt_in, "HELP": InboundIntent.help}
    return mapping.get((value or "").strip().upper())
