"""What the free-text reader found, and how it was meant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["present", "negated", "resolved", "other_person", "hypothetical"]


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

