"""Replies that are plainly something other than an answer: opt-out and carrier keywords, questions,
booking talk, complaints and small talk. Patterns run on normalised text (see text.normalize)."""

from __future__ import annotations

import re

# Whole-message carrier keywords (Twilio's defaults plus their Spanish equivalents).
OPT_OUT_KEYWORDS = frozenset(
    "stop stopall unsubscribe cancel end quit revoke optout alto parar para baja cancelar detener fin".split()
) | {"stop all", "opt out", "stop please", "please stop", "darme de baja", "dar de baja"}
OTHER_KEYWORDS = frozenset("start unstop help info ayuda inicio comenzar".split())

_OPT_OUT = re.compile(
    r"\b(?:stop (?:texting|messaging|sending|contacting|the (?:texts|messages))"
    r"|(?:dont|do not|please dont|please do not) (?:text|message|contact|send)"
    r"|no more (?:texts|messages|sms)|unsubscribe|opt (?:me )?out|remove me|take me off|leave me alone"
    r"|dej(?:a|e|en) de (?:enviar|mandar|escribir)"
    r"|no (?:me )?(?:envien|manden|escriban|mande|envie|mandes|envies|escribas) mas"
    r"|ya no (?:quiero|me) (?:mensajes|envien|manden|escriban)"
    r"|(?:darme|dar|me doy|doy) de baja|no quiero (?:mas )?mensajes)\b"
)
_QUESTION_START = re.compile(
    r"^(?:can|could|should|shall|may|must|will|would) (?:i|we|you|my|it|this|that|someone|somebody)\b"
    r"|^(?:is|are|was|does|do|did|am) (?:it|this|that|there|i|you|my|the)\b"
    r"|^(?:how|what|whats|when|why|where|who|whom|which)\b"
    r"|^(?:puedo|podemos|puede|pueden|podria|podrian|debo|deberia|tengo que|hay que|es normal|esta bien que"
    r"|cuando|cuanto tiempo|por que|porque|donde|quien|cual|que hago|que debo|que puedo|como puedo|como debo"
    r"|como hago|es posible|se puede)\b"
)
_BOOKING = re.compile(
    r"\b(?:appointment|appointments|appt|reschedule|rescheduled|rescheduling|booking|book|calendar"
    r"|cita|citas|reprogramar|reagendar|agendar|reservar)\b"
    r"|\b(?:move|change|cancel|postpone|push back|moving|changing) (?:my|the|our|this) (?:visit|time|session|slot)\b"
    r"|\b(?:cambiar|mover|cancelar|posponer) (?:la|mi) (?:visita|consulta|hora)\b"
)
_COMPLAINT = re.compile(
    r"\b(?:no ?one|nobody) (?:has )?(?:called|answered|replied|responded|got back|calls|answers)"
    r"|\btoo many (?:texts|messages)|\b(?:annoying|spam|spamming|harassing)\b|\bwrong number\b|\bwho is this\b"
    r"|\b(?:unhappy|not happy|disappointed|frustrated|furious|angry)\b"
    r"|\b(?:terrible|horrible|awful|bad|poor) (?:service|clinic|care|experience)\b|\bcomplain"
    r"|\bnadie (?:me )?(?:ha )?(?:llamo|llamado|contesto|contestado|respondio|respondido)"
    r"|\bdemasiados mensajes|\bnumero equivocado|\bquien es\b|\b(?:molesto|molesta|enojado|enojada|decepcionado"
    r"|decepcionada|harto|harta|furioso|furiosa)\b|\bqueja|\b(?:pesimo|mal) servicio\b"
)
SMALL_TALK = frozenset(
    {
        "hi", "hello", "hey", "hola", "thanks", "thank you", "thank you so much", "thanks so much", "thx", "ty",
        "gracias", "muchas gracias", "mil gracias", "ok", "okay", "k", "kk", "ok thanks", "ok thank you",
        "okay thanks", "got it", "received", "recibido", "entendido", "vale", "buenos dias", "buenas",
        "buenas tardes", "buenas noches", "good morning", "good afternoon", "good evening", "lol", "cool",
        "great thanks", "ok gracias", "perfecto gracias", "sounds good", "will do",
    }
)  # fmt: skip


def bare(norm: str) -> str:
    """The text without punctuation: what keyword lists are compared with."""
    return " ".join(re.findall(r"[a-z0-9]+", norm))


def opt_out(norm: str) -> bool:
    return bare(norm) in OPT_OUT_KEYWORDS or bool(_OPT_OUT.search(norm))


def keyword(norm: str) -> bool:
    return bare(norm) in OTHER_KEYWORDS


def question(norm: str) -> bool:
    return "?" in norm or bool(_QUESTION_START.search(bare(norm)))


def booking(norm: str) -> bool:
    return bool(_BOOKING.search(norm))


def complaint(norm: str) -> bool:
    return bool(_COMPLAINT.search(norm))


def small_talk(norm: str) -> bool:
    return bare(norm) in SMALL_TALK
