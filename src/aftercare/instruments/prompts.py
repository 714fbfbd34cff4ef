"""SMS texts for one item: the question, and the one clarifying question sent after an unclear or
out-of-range reply (the item's own `clarify` text, else a default for its answer type)."""

from __future__ import annotations

import unicodedata

from aftercare.instruments.schema import (
    ChoiceItem,
    FreeTextItem,
    IntegerItem,
    ItemType,
    TemperatureItem,
    YesNoItem,
    fill,
    is_gsm7,
    sms_units,
)

_SORRY = {"en": "Sorry, we did not get that. ", "es": "Perdone, no entendimos. "}


def sms_prompt(item: ItemType, language: str, *, emergency_number: str) -> str:
    """The question for `item` in `language` ("en" or "es"; anything else reads as "en")."""
    return fill(item.sms.get(language), emergency_number)


def clarify_prompt(item: ItemType, language: str, *, emergency_number: str) -> str:
    """The clarifying question for `item` in `language` ("en" or "es"; anything else reads as "en")."""
    language = "es" if language == "es" else "en"
    if item.clarify is not None:
        return fill(item.clarify.get(language), emergency_number)
    es = language == "es"
    if isinstance(item, YesNoItem):
        ask = "Responda SI o NO." if es else "Please reply YES or NO."
    elif isinstance(item, IntegerItem):
        ask = (
            f"Responda con un solo numero del {item.min} al {item.max}."
            if es
            else f"Please reply with one number from {item.min} to {item.max}."
        )
    elif isinstance(item, TemperatureItem):
        ask = (
            "Responda con la temperatura, ej. 37,8 o 100,1 F."
            if es
            else "Please reply with the temperature, e.g. 37.8 or 100.1 F."
        )
    elif isinstance(item, ChoiceItem):
        ask = _choice_list(item, language)
    else:
        assert isinstance(item, FreeTextItem)
        ask = "Responda con sus palabras." if es else "Please reply in your own words."
    text = _SORRY[language] + ask
    return text if sms_units(text)[0] <= sms_units(text)[1] else ask


def gsm_fold(text: str) -> str:
    """Accented letters GSM-7 lacks (á í ó ú ...) written without the accent, so an SMS stays 160 characters
    long; letters GSM-7 has (é ñ ü ¿ ¡) are kept."""
    out = []
    for ch in text:
        if not is_gsm7(ch):
            base = unicodedata.normalize("NFKD", ch)[0]
            ch = base if is_gsm7(base) else ch
        out.append(ch)
    return "".join(out)


def _choice_list(item: ChoiceItem, language: str) -> str:
    options = ", ".join(f"{c.key} {gsm_fold(c.label.get(language)).lower()}" for c in item.choices)
    candidate = ("Responda " if language == "es" else "Please reply ") + options
    units, limit = sms_units(candidate)
    if units <= limit - len(_SORRY[language]):
        return candidate
    keys = [c.key for c in item.choices]
    joined = ", ".join(keys[:-1]) + (" o " if language == "es" else " or ") + keys[-1]
    return ("Responda " if language == "es" else "Please reply ") + joined + "."
