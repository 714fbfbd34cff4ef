"""The conversation router: a patient's text (not a keyword, not an opt-out) goes to the conversation the
patient was last asked a question in, else to a person.

Called by the inbound SMS webhook in its transaction (database work only). First any check-in/survey
invitation that went out since the last look is opened (so a reply seconds after an invitation finds
it), then the patient's conversation pointer (`surveys.state`) picks the handler by kind. Other
conversations (booking, issue 6) register a handler with `register(kind, handler)` and move the pointer
with `surveys.state.point(...)` whenever they text the patient a question.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlmodel import Session

from aftercare.bookings.conversation import on_booking_text
from aftercare.models import Conversation, InboundMessage, Patient
from aftercare.settings import Settings
from aftercare.surveys import state
from aftercare.surveys.conversation import handle_free_text, on_survey_reply, reopen_pointer
from aftercare.surveys.responses import activate_sent
from aftercare.timeutil import utcnow

Handler = Callable[[Session, Conversation, InboundMessage, Patient, Settings], int | None]
HANDLERS: dict[str, Handler] = {state.SURVEY: on_survey_reply, state.BOOKING: on_booking_text}


def register(kind: str, handler: Handler) -> None:
    """Route texts of conversations of `kind` to `handler` (it returns the id of a queued reply, or None)."""
    HANDLERS[kind] = handler


def on_patient_text(
    session: Session, *, inbound: InboundMessage, patients: Sequence[Patient], settings: Settings
) -> int | None:
    """Handle one text from a known patient (several patients may share the number). Returns the queued
    reply's id, or None (nothing to say back; a person has a task)."""
    ids = [p.id for p in patients if p.id is not None]
    activate_sent(session, settings=settings, now=utcnow(), patient_ids=ids)
    pointer = state.current(session, ids) or reopen_pointer(session, ids, now=utcnow())
    handler = HANDLERS.get(pointer.kind) if pointer is not None else None
    if pointer is None or handler is None:
        handle_free_text(session, inbound=inbound, patient=patients[0] if patients else None)
        return None
    patient = next(p for p in patients if p.id == pointer.patient_id)
    inbound.patient_id, inbound.clinic_id = patient.id, patient.clinic_id
    return handler(session, pointer, inbound, patient, settings)
