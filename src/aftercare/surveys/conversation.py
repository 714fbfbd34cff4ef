"""The SMS survey conversation: one question at a time, its state in `survey_response` (survives restarts).

A patient's text that the router sends here is read against the question they were asked
(`current_item`), with the instrument parser:
- ok: stored; the next question is the reply (or, at the end, scores + a thank-you);
- unclear / out of range: ONE clarifying question; a second unclear reply is kept raw (value unknown)
  and the survey moves on;
- not an answer (a question, a complaint, booking talk, a long message, a photo): free text for a person
  (`handle_free_text`), the question stays open and is asked again after a short acknowledgement;
- quick status "1" (I need help): a `needs_help` task of high priority at once and a reply saying someone
  will call; the fuller questions are not pushed: the next one is only asked if the patient texts again;
- a text to a survey that has closed: one short "this survey has closed" reply, the text kept as free text.
Nothing is sent from here: replies are queued in `outbound_reply` (one per inbound SMS) and sent right
after the webhook has answered. All of it is database work in the webhook's own transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare import tasks
from aftercare.flags.intake import request_triage
from aftercare.instruments import InstrumentRegistry, Outcome, ParseResult, SurveyItem, parse_answer
from aftercare.models import (
    Channel,
    Clinic,
    Conversation,
    CoordinatorTask,
    InboundMessage,
    Patient,
    SurveyResponse,
    SurveyStatus,
    TaskPriority,
)
from aftercare.settings import Settings
from aftercare.surveys import items, state, store, texts
from aftercare.surveys.responses import locked
from aftercare.timeutil import utcnow
from aftercare.timing import in_send_window
from aftercare.web.timeline import label

log = logging.getLogger(__name__)
CLOSED_NOTICE_DAYS = 7  # "this survey has closed" is only worth saying shortly after it closed
SILENT_REASONS = ("opt_out", "keyword")  # a person reads these; no automatic text back

_FREE_TEXT_TITLES = {
    "question": "Patient asked a question",
    "complaint": "Patient reported a problem",
    "booking": "Patient wrote about an appointment",
    "media": "Patient sent a picture",
    "extra_text": "Patient added words to a survey answer",
    "survey_closed": "Reply to a survey that has closed",
    "after_handoff": "Patient wrote after asking for help",
}


def handle_free_text(
    session: Session,
    *,
    inbound: InboundMessage,
    patient: Patient | None,
    response: SurveyResponse | None = None,
    reason: str = "free_text",
) -> CoordinatorTask:
    """A patient's text that is not an answer goes to a person: a coordinator task (one per message).

    The single place free text leaves the conversation; triage of free text hooks in here.
    """
    assert inbound.id is not None
    where = f" during {label(response.touchpoint_key)}" if response is not None else ""
    task = tasks.open_task(
        session, kind="patient_reply", title=_FREE_TEXT_TITLES.get(reason, "Reply from a patient"),
        clinic_id=patient.clinic_id if patient else inbound.clinic_id, patient_id=patient.id if patient else None,
        inbound_id=inbound.id, detail=f"Text received{where} ({reason.replace('_', ' ')}).",
        dedupe_key=f"patient_reply:{inbound.id}",
    )
    if patient is not None:  # triaged for red flags too (a keyword-looking text: the triage reader decides)
        request_triage(session, source_kind="message", source_id=inbound.id, patient_id=patient.id,
                       text_kind=None if reason in SILENT_REASONS else "free_text")
    return task


@dataclass
class _Turn:
    """One inbound text being handled."""

    session: Session
    response: SurveyResponse
    patient: Patient
    clinic: Clinic
    settings: Settings
    registry: InstrumentRegistry
    protocol_settings: dict[str, Any]
    inbound: InboundMessage
    now: datetime

    def reply(self, template: str, body: str) -> int | None:
        return texts.queue(self.session, patient=self.patient, template=template, body=body,
                           inbound_id=self.inbound.id, to=self.inbound.from_number)

    def framing(self, name: str) -> str:
        return texts.framing(name, clinic=self.clinic, patient=self.patient, settings=self.settings)

    def question(self, si: SurveyItem) -> str:
        return texts.question(si, clinic=self.clinic, patient=self.patient)

    def answers(self) -> dict[str, Any]:
        return items.current_answers(self.session, self.response.id or 0)

    def next_item(self) -> SurveyItem | None:
        return items.next_item(self.registry, self.response, self.protocol_settings, self.answers())


def on_survey_reply(
    session: Session, conversation: Conversation, inbound: InboundMessage, patient: Patient, settings: Settings
) -> int | None:
    """The router's handler for kind `survey`. Returns the id of the queued reply (None: no reply)."""
    response = locked(session, conversation.ref_id)
    clinic = session.get(Clinic, patient.clinic_id)
    if response is None or clinic is None:
        handle_free_text(session, inbound=inbound, patient=patient)
        return None
    now = utcnow()
    turn = _Turn(session, response, patient, clinic, settings, items.instrument_registry(settings.config_dir),
                 items.protocol_settings(session, response), inbound, now)
    if response.status == SurveyStatus.open and now >= response.closes_at:
        store.end(session, response, now=now, settings=settings, reason="its window closed")
    if response.status != SurveyStatus.open:
        return _closed(turn)
    current = items.item_by_id(turn.registry, response, turn.protocol_settings, response.current_item)
    if inbound.num_media > 0 and not inbound.body.strip():  # a photo without words: for a person
        handle_free_text(session, inbound=inbound, patient=patient, response=response, reason="media")
        ask = current if current is not None and response.asked_at is not None else turn.next_item()
        return _acknowledge_and_ask(turn, ask)
    if current is None or response.asked_at is None:
        return _not_asked_yet(turn)
    return _answer(turn, current)


def _answer(turn: _Turn, current: SurveyItem) -> int | None:
    response, inbound = turn.response, turn.inbound
    result = parse_answer(current.item, inbound.body, turn.patient.language.value)
    if result.outcome is Outcome.NOT_AN_ANSWER:
        _record(turn, current, result, counts=False)
        handle_free_text(turn.session, inbound=inbound, patient=turn.patient, response=response, reason=result.reason)
        if result.reason in SILENT_REASONS:
            return None
        return _acknowledge_and_ask(turn, current)
    inbound.handled = True
    if not result.ok and response.clarifications == 0:
        _record(turn, current, result, counts=False)
        response.clarifications += 1
        turn.session.add(response)
        return turn.reply("survey_clarify", texts.clarify(current, clinic=turn.clinic, patient=turn.patient))
    # An answer, or a second unclear one: kept as typed (value unknown) and the survey moves on.
    _record(turn, current, result, counts=True)
    if result.extra_text:
        handle_free_text(turn.session, inbound=inbound, patient=turn.patient, response=response, reason="extra_text")
    if result.handoff:
        return _handoff(turn)
    return _advance(turn)


def _record(turn: _Turn, current: SurveyItem, result: ParseResult, *, counts: bool) -> None:
    store.record_answer(
        turn.session, turn.response, current, raw=turn.inbound.body,
        value=result.value if result.ok or not counts else None,  # a number out of range is kept as read
        outcome=result.outcome.value, reason=result.reason, counts=counts, source="sms", now=turn.now,
        inbound_id=turn.inbound.id,
    )


def _advance(turn: _Turn) -> int | None:
    following = turn.next_item()
    if following is None:
        store.complete(turn.session, turn.response, settings=turn.settings, now=turn.now, via="sms")
        return turn.reply("survey_thanks", turn.framing("survey_thanks"))
    _mark_asked(turn.session, turn.response, following, turn.now)
    return turn.reply("survey_question", turn.question(following))


def needs_help(
    session: Session, *, response: SurveyResponse, patient: Patient, via: str, now: datetime,
    inbound_id: int | None = None,
) -> CoordinatorTask:
    """Quick status "I need help": a high-priority task for a person at once (one per response)."""
    how = "by SMS" if via == "sms" else "on the web form"
    task = tasks.open_task(
        session, kind="needs_help", title=f"Patient asked for help ({label(response.touchpoint_key)}): call now",
        clinic_id=patient.clinic_id, patient_id=patient.id, touchpoint_id=response.touchpoint_id,
        inbound_id=inbound_id, dedupe_key=f"needs_help:{response.id}",
        detail=f"The patient answered \"I need help\" to the check-in {how}. Call them now.",
    )
    task.priority = TaskPriority.high
    session.add(task)
    response.handoff_at = response.handoff_at or now
    response.updated_at = now
    session.add(response)
    return task


def _handoff(turn: _Turn) -> int | None:
    """Quick status "1": a person now. The next question waits until the patient texts again."""
    response = turn.response
    needs_help(turn.session, response=response, patient=turn.patient, via="sms", now=turn.now,
               inbound_id=turn.inbound.id)
    following = turn.next_item()
    if following is None:
        store.complete(turn.session, response, settings=turn.settings, now=turn.now, via="sms")
    else:
        response.current_item, response.asked_at, response.clarifications = following.item.id, None, 0
    turn.session.add(response)
    return turn.reply("survey_handoff", turn.framing("survey_handoff"))


def _not_asked_yet(turn: _Turn) -> int | None:
    """A text before the pending question was sent (after a handoff, or right after a survey invitation):
    the patient gets the question; words that are plainly not an answer also go to a person."""
    following = turn.next_item()
    if following is None:
        store.complete(turn.session, turn.response, settings=turn.settings, now=turn.now, via="sms")
        return turn.reply("survey_thanks", turn.framing("survey_thanks"))
    if turn.response.handoff_at is not None:
        handle_free_text(turn.session, inbound=turn.inbound, patient=turn.patient, response=turn.response,
                         reason="after_handoff")
    else:
        verdict = parse_answer(following.item, turn.inbound.body, turn.patient.language.value)
        if verdict.outcome is Outcome.NOT_AN_ANSWER:
            handle_free_text(turn.session, inbound=turn.inbound, patient=turn.patient, response=turn.response,
                             reason=verdict.reason)
            if verdict.reason in SILENT_REASONS:
                return None
    _mark_asked(turn.session, turn.response, following, turn.now)
    return turn.reply("survey_question", turn.question(following))


def _acknowledge_and_ask(turn: _Turn, ask: SurveyItem | None) -> int | None:
    body = turn.framing("survey_free_text")
    if ask is not None:
        _mark_asked(turn.session, turn.response, ask, turn.now)
        body = f"{body} {turn.question(ask)}"
    return turn.reply("survey_free_text", body)


def _closed(turn: _Turn) -> int | None:
    response = turn.response
    handle_free_text(turn.session, inbound=turn.inbound, patient=turn.patient, response=response,
                     reason="survey_closed")
    recently = response.ended_at is not None and turn.now - response.ended_at < timedelta(days=CLOSED_NOTICE_DAYS)
    if response.status == SurveyStatus.complete or response.closed_notice_at is not None or not recently:
        return None
    response.closed_notice_at = turn.now
    turn.session.add(response)
    return turn.reply("survey_closed", turn.framing("survey_closed"))


def _mark_asked(session: Session, response: SurveyResponse, si: SurveyItem, now: datetime) -> None:
    if response.current_item != si.item.id:
        response.clarifications = 0
    response.current_item, response.asked_at, response.updated_at = si.item.id, now, now
    session.add(response)
    assert response.id is not None
    state.point(session, patient_id=response.patient_id, kind=state.SURVEY, ref_id=response.id, asked_at=now)


def reopen_pointer(session: Session, patient_ids: list[int], *, now: datetime) -> Conversation | None:
    """No conversation pointer (another conversation ended and released it): the patient's newest open SMS
    survey becomes the conversation again, so a reply to its question still finds it."""
    if not patient_ids:
        return None
    newest = session.exec(
        select(SurveyResponse)
        .where(
            col(SurveyResponse.patient_id).in_(patient_ids),
            SurveyResponse.status == SurveyStatus.open,
            SurveyResponse.channel == Channel.sms,
            col(SurveyResponse.opened_at).is_not(None),
            col(SurveyResponse.closes_at) > now,
        )
        .order_by(col(SurveyResponse.opened_at).desc(), col(SurveyResponse.id).desc())
    ).first()
    if newest is None or newest.id is None or newest.opened_at is None:
        return None
    return state.point(session, patient_id=newest.patient_id, kind=state.SURVEY, ref_id=newest.id,
                       asked_at=newest.asked_at or newest.opened_at)


# -- the tick: first questions after an invitation, and resuming a paused survey ------------------------


def ask_pending(session: Session, *, settings: Settings, now: datetime) -> int:
    """Text the pending question of each patient's current SMS survey (the first question after a survey
    invitation; the next one of a survey paused behind another conversation). Inside the clinic's send
    hours only; never after a handoff. Returns the number of questions queued."""
    rows = session.exec(
        select(SurveyResponse)
        .where(
            SurveyResponse.status == SurveyStatus.open,
            SurveyResponse.channel == Channel.sms,
            col(SurveyResponse.opened_at).is_not(None),
            col(SurveyResponse.closes_at) > now,
        )
        .order_by(col(SurveyResponse.opened_at).desc(), col(SurveyResponse.id).desc())
    ).all()
    by_patient: dict[int, list[SurveyResponse]] = {}
    for row in rows:
        by_patient.setdefault(row.patient_id, []).append(row)
    registry = items.instrument_registry(settings.config_dir)
    queued = 0
    for patient_id, candidates in by_patient.items():
        pointer = session.get(Conversation, patient_id)
        if pointer is not None and pointer.kind != state.SURVEY:
            continue  # another conversation (a booking) holds the thread
        active = next((r for r in candidates if pointer is not None and r.id == pointer.ref_id), None)
        if active is None:  # the thread's survey has ended: resume the newest open one
            active = candidates[0]
            if active.handoff_at is None:
                active.asked_at = None
        if active.asked_at is not None or active.handoff_at is not None:
            if pointer is None or pointer.ref_id != active.id:
                state.point(session, patient_id=patient_id, kind=state.SURVEY, ref_id=active.id or 0,
                            asked_at=active.asked_at or now)
            continue
        queued += _ask_now(session, active, registry=registry, settings=settings, now=now)
    session.flush()
    return queued


def _ask_now(
    session: Session, response: SurveyResponse, *, registry: InstrumentRegistry, settings: Settings, now: datetime
) -> int:
    patient = session.get(Patient, response.patient_id)
    clinic = session.get(Clinic, patient.clinic_id) if patient else None
    if patient is None or clinic is None:
        return 0
    if not in_send_window(now, ZoneInfo(patient.timezone), clinic.send_window_start, clinic.send_window_end):
        return 0
    fresh = locked(session, response.id or 0)
    if fresh is None or fresh.status != SurveyStatus.open or fresh.handoff_at is not None:
        return 0
    answers = items.current_answers(session, fresh.id or 0)
    following = items.next_item(registry, fresh, items.protocol_settings(session, fresh), answers)
    if following is None:
        return 0
    _mark_asked(session, fresh, following, now)
    reply = texts.queue(session, patient=patient, template="survey_question",
                        body=texts.question(following, clinic=clinic, patient=patient))
    return 1 if reply is not None else 0
