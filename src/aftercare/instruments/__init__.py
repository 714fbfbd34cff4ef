"""Survey instruments as data (config/instruments/*.yaml): items, prompts, the reply parser and scoring."""

from aftercare.instruments.loader import (
    InstrumentError,
    InstrumentRegistry,
    SurveyItem,
    ThirdPartyTexts,
    load_instrument_file,
)
from aftercare.instruments.parse import REASONS, Outcome, ParseResult, parse_answer
from aftercare.instruments.prompts import clarify_prompt, sms_prompt
from aftercare.instruments.schema import (
    LANGUAGES,
    AnswerValue,
    ChoiceItem,
    FreeTextItem,
    Instrument,
    IntegerItem,
    ItemType,
    TemperatureItem,
    YesNoItem,
    sms_units,
)
from aftercare.instruments.scoring import NrsChange, Score, koos_jr_interval, nrs_change, nrs_change_for, score

__all__ = [
    "LANGUAGES",
    "REASONS",
    "AnswerValue",
    "ChoiceItem",
    "FreeTextItem",
    "Instrument",
    "InstrumentError",
    "InstrumentRegistry",
    "IntegerItem",
    "ItemType",
    "NrsChange",
    "Outcome",
    "ParseResult",
    "Score",
    "SurveyItem",
    "TemperatureItem",
    "ThirdPartyTexts",
    "YesNoItem",
    "clarify_prompt",
    "koos_jr_interval",
    "load_instrument_file",
    "nrs_change",
    "nrs_change_for",
    "parse_answer",
    "score",
    "sms_prompt",
    "sms_units",
]
