"""The booking conversation by SMS: "2" books the second time offered, "R" asks for other times, "C" cancels.

The router (`aftercare.surveys.router`) sends a patient's text here when the last thing the patient was
asked by SMS was a booking question (an offer, new times, a reminder): the conversation pointer names
the offer. What the text says is read first (`read`):
  choice      "2", "2)", "option 2", "the second one", "dos", "la segunda"       -> book that time
  reschedule  "R", "can we move it", "another day", "cambiar la cita", "otro día" -> new times
  cancel      "C", "cancel it", "please cancel my visit", "cancelar la cita"     -> cancel the visit
  unclear     a short text that is none of these ("4", "ok", "maybe")           -> one "reply 1, 2 or 3"
  other       anything longer (a question, symptoms)                             -> a person (free text)
A bare "cancel"/"cancelar" never gets here: it is an opt-out keyword (Twilio's own, and ours) and is
applied as one before any conversation. Then, with nothing booked by mistake:
- a time taken since the offer (or already past) gets new times, not an error;
- an expired or replaced offer gets new times while the visit can still be booked, else "please call";
- a cancelled procedure, no calendar or no times: "please call" and a task for the coordinator;
- a patient who may no longer be texted (opted out, number suppressed): nothing sent, a task.
Every answer is one SMS queued in `outbound_reply`, sent right after the webhook answers Twilio.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from aftercare import audit, tasks
from aftercare.bookings import notify, offers, service
from aftercare.bookings import scope as scopes
from aftercare.bookings.scope import Scope
from aftercare.instruments.text import normalize
from aftercare.models import (
    Appointment,
    AppointmentStatus,
    BookingOffer,
    Conversation,
    InboundMessage,
    OfferStatus,
    Patient,
    Procedure,
    ProcedureStatus,
)
from aftercare.settings import Settings
from aftercare.surveys import state
from aftercare.surveys.conversation import handle_free_text
from aftercare.surveys.texts import may_text
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
ACTOR = "patient-sms"

_CHOICES = {
    "1": 1, "2": 2, "3": 3, "one": 1, "two": 2, "three": 3, "first": 1, "second": 2, "third": 3, "1st": 1,
    "2nd": 2, "3rd": 3, "uno": 1, "una": 1, "dos": 2, "tres": 3, "primera": 1, "primero": 1, "segunda": 2,
    "segundo": 2, "tercera": 3, "tercero": 3,
}
_ORDINALS = frozenset("first second third 1st 2nd 3rd primera primero segunda segundo tercera tercero".split())
_FILLER = frozenset(
    "option opcion opt number numero num nr nro the el la lo one uno please pls plz por favor thanks thank you ty "
    "thx gracias ok okay oki vale yes yeah yep si i ill id take want pick choose would like prefer quiero "
    "prefiero elijo escojo me tomo is es works sirve good great bien fine perfect perfecto that esa ese "
    "a an de del sounds let lets go with con".split()
)
_RESCHEDULE = re.compile(
    r"\b(?:reschedule|rescheduling|rebook|move|moving|change|changing|postpone|another (?:time|day|date|slot)"
    r"|other (?:time|times|day|days|date)|different (?:time|day|date)|(?:cant|cannot|can not|wont|will not) "
    r"(?:make|come|go|attend)|not (?:a )?good (?:time|day)|later|earlier"
    r"|cambiar|cambio|cambia|mover|muevan|mueva|reprogramar|reagendar|posponer|otra (?:hora|fecha|cita)"
    r"|otro (?:dia|horario|momento)|otros horarios|no puedo (?:ir|asistir|venir|llegar)|mas tarde|mas temprano)\b"
)
_CANCEL = re.compile(r"\b(?:cancel|cancell?ed|cancelling|canceling|cancelar|cancela|cancelen|cancele|anular|anula)\b")
_SHORT_WORDS = 4


@dataclass(frozen=True)
class Reading:
    kind: str  # choice, reschedule, cancel, unclear, other
    number: int | None = None


def read(text: str) -> Reading:
    """What a reply to a booking text says (see the module docstring)."""
    norm = normalize(text or "")
    words = re.findall(r"[a-z]+|[0-9]+(?:st|nd|rd|th)?", norm)
    if not words:
        return Reading("unclear")
    if words == ["r"]:
        return Reading("reschedule")
    if words == ["c"]:
        return Reading("cancel")
    cancel, move = bool(_CANCEL.search(norm)), bool(_RESCHEDULE.search(norm))
    if move:
        return Reading("reschedule")  # "cancel and find another day": keep the visit until a new one is booked
    if cancel:
        return Reading("cancel")
    ordinal = any(w in _ORDINALS for w in words)  # "the second one": "one" is not a choice then
    numbers = {_CHOICES[w] for w in words if w in _CHOICES and not (ordinal and w in ("one", "uno", "una"))}
    digits = [w for w in words if w.isdigit()]
    if len(numbers) == 1 and all(w in _CHOICES or w in _FILLER for w in words) and len(digits) <= 1:
        return Reading("choice", numbers.pop())
    if "?" in norm or len(words) > _SHORT_WORDS:
        return Reading("other")
    return Reading("unclear")


# -- the handler the router calls -------------------------------------------------------------------


@dataclass
class _Turn:
    session: Session
    scope: Scope
    offer: BookingOffer
    inbound: InboundMessage
    pointer: Conversation
    now: datetime

    def say(self, template: str, **extra: Any) -> int | None:
        return notify.reply(self.session, inbound=self.inbound, scope=self.scope, template=template, extra=extra)

    def point(self, offer: BookingOffer) -> None:
        state.point(self.session, patient_id=self.scope.patient_id, kind=state.BOOKING, ref_id=offer.id or 0,
                    asked_at=self.now)

    def done(self) -> None:
        state.release(self.session, patient_id=self.scope.patient_id, kind=state.BOOKING,
                      ref_id=self.pointer.ref_id)

    def task(self, kind: str, title: str, detail: str) -> None:
        tasks.open_task(self.session, kind=kind, title=title, clinic_id=self.scope.clinic_id,
                        patient_id=self.scope.patient_id, inbound_id=self.inbound.id, detail=detail,
                        dedupe_key=f"{kind}:{self.inbound.id}")


def on_booking_text(
    session: Session, pointer: Conversation, inbound: InboundMessage, patient: Patient, settings: Settings
) -> int | None:
    """Answer a patient's text in a booking conversation. Returns the queued reply's id (None: no reply)."""
    now = utcnow()
    offer = session.get(BookingOffer, pointer.ref_id)
    if offer is None or offer.patient_id != patient.id:
        state.release(session, patient_id=patient.id or 0, kind=state.BOOKING, ref_id=pointer.ref_id)
        handle_free_text(session, inbound=inbound, patient=patient, reason="booking")
        return None
    reading = read(inbound.body)
    if reading.kind == "other":
        handle_free_text(session, inbound=inbound, patient=patient, reason="booking")
        return None
    procedure = session.get(Procedure, offer.procedure_id) if offer.procedure_id else None
    turn = _Turn(session, scopes.load(session, settings, patient=patient, procedure=procedure), offer, inbound,
                 pointer, now)
    inbound.handled = True
    session.add(inbound)
    audit.record(session, actor=ACTOR, action=f"booking.reply_{reading.kind}", entity_type="booking_offer",
                 entity_id=offer.id, inbound_id=inbound.id, number=reading.number)
    if not may_text(session, patient):
        turn.task("booking_reply_not_textable", "Booking reply from a patient we may not text",
                  f"The patient replied {inbound.body[:40]!r} to a booking text but has opted out of texts (or the "
                  "number is blocked). Nothing was booked or changed: call the patient.")
        turn.done()
        return None
    if procedure is not None and procedure.status == ProcedureStatus.cancelled:
        _close(turn.session, offer, now)
        turn.task("booking_reply_cancelled_procedure", "Booking reply for a cancelled procedure",
                  f"The patient replied {inbound.body[:40]!r} to a booking text, but the procedure was cancelled. "
                  "Nothing was booked.")
        turn.done()
        return turn.say(notify.CLOSED, reason="unavailable")
    if reading.kind == "choice":
        return _choose(turn, reading.number or 0)
    if reading.kind == "reschedule":
        return _reschedule(turn)
    if reading.kind == "cancel":
        return _cancel(turn)
    return _unclear(turn)


def _close(session: Session, offer: BookingOffer, now: datetime) -> None:
    if offer.status == OfferStatus.open:
        offer.status, offer.answered_at = OfferStatus.closed, now
        session.add(offer)


def _active(turn: _Turn) -> Appointment | None:
    """The booked visit this conversation is about (the offer's booking, or the visit's current one)."""
    offer = turn.offer
    for candidate in (offer.appointment_id, offer.reschedules_id):
        found = turn.session.get(Appointment, candidate) if candidate else None
        if found is not None and found.status == AppointmentStatus.booked and found.starts_at > turn.now:
            return found
    if offer.visit in (service.URGENT, service.OTHER):
        return None
    found = service.active_for_visit(turn.session, patient_id=turn.scope.patient_id, procedure_id=offer.procedure_id,
                                     visit=offer.visit)
    return found if found is not None and found.starts_at > turn.now else None


def _confirmed(turn: _Turn, appointment: Appointment, *, moved: bool = False) -> int | None:
    turn.done()
    return turn.say(notify.CONFIRMATION, moved=moved, **notify.visit_context(appointment, turn.scope.patient,
                                                                        turn.scope.calendar))


def _new_times(turn: _Turn, offer: BookingOffer, reason: str) -> int | None:
    slots = offers.slots_of(offer)
    if not slots:
        turn.done()
        return turn.say(notify.CLOSED, reason="no_times")
    turn.point(offer)
    return turn.say(notify.NEW_TIMES, reason=reason, slots=notify.slot_labels(slots, turn.scope.patient))


def _still_bookable(turn: _Turn) -> bool:
    procedure = turn.scope.procedure
    return turn.scope.calendar is not None and (procedure is None or procedure.status == ProcedureStatus.active)


def _choose(turn: _Turn, number: int) -> int | None:
    offer = turn.offer
    if offer.status == OfferStatus.accepted:
        booked = _active(turn)
        if booked is not None:
            return _confirmed(turn, booked)
    slots = offers.slots_of(offer)
    if offer.status == OfferStatus.open and not 1 <= number <= len(slots):
        return _unclear(turn)
    if offer.status != OfferStatus.open or offer.expires_at < turn.now:
        return _late(turn)
    answer = offers.accept(turn.session, turn.scope, offer, slots[number - 1], source="sms", now=turn.now)
    if answer.outcome == "booked" and answer.appointment is not None:
        return _confirmed(turn, answer.appointment, moved=answer.appointment.replaces_id is not None)
    if answer.outcome == "taken" and answer.new_offer is not None:
        return _new_times(turn, answer.new_offer, "taken")
    if answer.outcome == "already_booked" and answer.appointment is not None:
        return _confirmed(turn, answer.appointment)
    if answer.outcome == "expired":
        return _late(turn)
    turn.task("booking_reply_unbookable", "A booking reply could not be booked",
              f"The patient chose time {number}, but it cannot be booked ({answer.detail}). Call the patient.")
    turn.done()
    return turn.say(notify.CLOSED, reason="unavailable")


def _late(turn: _Turn) -> int | None:
    """An answer to an offer that has expired or was replaced: new times while the visit can be booked."""
    booked = _active(turn)
    if booked is not None and turn.offer.reschedules_id is None:
        return _confirmed(turn, booked)
    if not _still_bookable(turn):
        turn.done()
        return turn.say(notify.CLOSED, reason="unavailable")
    fresh = offers.renew(turn.session, turn.scope, turn.offer, turn.now)
    return _new_times(turn, fresh, "expired")


def _reschedule(turn: _Turn) -> int | None:
    booked = _active(turn)
    if not _still_bookable(turn):
        turn.done()
        return turn.say(notify.CLOSED, reason="unavailable")
    if booked is not None:
        target = max(turn.offer.target_at, turn.now + timedelta(days=1))
        fresh = offers.make_offer(
            turn.session, turn.scope, visit=booked.visit, mode=booked.mode, target=target,
            channel=turn.offer.channel, now=turn.now, round=turn.offer.round, reschedules=booked,
            avoid={booked.starts_at},
        )
        return _new_times(turn, fresh, "reschedule")
    if turn.offer.status in (OfferStatus.open, OfferStatus.expired, OfferStatus.superseded):
        avoid = {s.starts_at for s in offers.slots_of(turn.offer)}
        return _new_times(turn, offers.renew(turn.session, turn.scope, turn.offer, turn.now, avoid=avoid),
                          "reschedule")
    turn.done()
    return turn.say(notify.CLOSED, reason="unavailable")


def _cancel(turn: _Turn) -> int | None:
    booked = _active(turn)
    if booked is not None:
        service.cancel(turn.session, turn.scope.settings, appointment=booked, actor=ACTOR,
                       reason="cancelled by the patient (SMS)", notify_patient=False, now=turn.now)
        _close(turn.session, turn.offer, turn.now)
        turn.task("visit_cancelled_by_patient", "Patient cancelled a follow-up visit by text",
                  f"Visit {booked.visit} on {booked.starts_at:%Y-%m-%d %H:%M} UTC was cancelled; its time is free "
                  "again. Follow up if the visit is still needed.")
        turn.done()
        return turn.say(notify.CANCELLED, **notify.visit_context(booked, turn.scope.patient, turn.scope.calendar))
    _close(turn.session, turn.offer, turn.now)
    turn.task("visit_declined", "Patient declined a follow-up visit by text",
              f"The patient answered the offer for visit {turn.offer.visit} with {turn.inbound.body[:40]!r}; "
              "nothing was booked.")
    turn.done()
    return turn.say(notify.CLOSED, reason="declined")


def _unclear(turn: _Turn) -> int | None:
    offer = turn.offer
    if offer.clarified >= 1:
        handle_free_text(turn.session, inbound=turn.inbound, patient=turn.scope.patient, reason="booking")
        return None
    offer.clarified += 1
    turn.session.add(offer)
    slots = offers.slots_of(offer) if offer.status == OfferStatus.open and offer.expires_at >= turn.now else []
    booked = None if slots else _active(turn)
    if not slots and booked is None:
        return _late(turn)
    return turn.say(notify.UNCLEAR, slots=notify.slot_labels(slots, turn.scope.patient), booked=booked is not None)

