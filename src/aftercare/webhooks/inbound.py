"""An inbound SMS: stored first, then keywords applied; everything else waits for a person (or a parser).

Two steps, each in one short transaction:
1. `store_sms` (in the webhook's request): the message with every field, raw, once per MessageSid; a replay
   changes nothing. The webhook answers Twilio right after this (after step 2 too, for an opt-out).
2. `process_sms` (an opt-out: in the webhook's request, so it is honoured before we answer; everything else: the
   inbound reader, `aftercare.webhooks.worker`, right after the response):
   a. link it to the patient(s) with that phone number;
   b. opt-out first (keyword, Twilio's OptOutType, or a plain-language sentence in English or Spanish):
      every channel revoked and every queued touchpoint cancelled at once, before any survey or booking
      conversation sees the message; a plain-language opt-out also opens a task to confirm it and gets one
      confirmation (Twilio only confirms its own keywords);
   c. START/UNSTOP: SMS consent again (confirmed by us only for words Twilio does not know); HELP/AYUDA:
      a help reply (clinic phone, no PHI) through the reply outbox;
   d. anything else from a patient: the conversation router (`aftercare.surveys.router`): an answer to the
      survey question the patient was last asked (the next question as the reply), else free text for a
      coordinator; from an unknown number: a task and one polite reply.
`receive_sms` does both at once (tests, scripts). Nothing is ever sent from here: replies go to
`outbound_reply` and the dispatcher sends them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from aftercare import consent, tasks
from aftercare.flags.intake import request_triage
from aftercare.models import (
    Channel,
    Clinic,
    InboundIntent,
    InboundMessage,
    Language,
    OutboundReply,
    Patient,
)
from aftercare.optout import classify, from_twilio_opt_out_type
from aftercare.patients import consent_state
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
ACTOR = "patient-sms"
HELP_TEMPLATE = "help_reply"
UNKNOWN_TEMPLATE = "unknown_number_reply"
OPT_OUT_TEMPLATE = "opt_out_confirmation"
OPT_IN_TEMPLATE = "opt_in_confirmation"


class MissingField(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: required")
        self.field = field


@dataclass
class Received:
    inbound_id: int | None
    duplicate: bool
    intent: InboundIntent | None = None
    patients: int = 0
    touchpoints_cancelled: int = 0
    reply_id: int | None = None
    queued: bool = False  # stored for the inbound worker, not read yet


def store_sms(session: Session | Connection, params: dict[str, str], *, queued: bool = True) -> int | None:
    """Insert the raw message (for the inbound reader when `queued`); None when this MessageSid was stored before.
    Raises MissingField for a message without MessageSid or From. One statement (the webhook runs it alone, in
    autocommit)."""
    for field in ("MessageSid", "From"):
        if not params.get(field, "").strip():
            raise MissingField(field)
    # NUL cannot be stored in a PostgreSQL text column; the signature was checked on the raw form already.
    params = {key.replace("\x00", "\ufffd"): value.replace("\x00", "\ufffd") for key, value in params.items()}
    try:
        num_media = max(0, min(int(params.get("NumMedia") or 0), 100))  # Twilio sends at most 10
    except ValueError:
        num_media = 0
    values: dict[str, Any] = {
        "message_sid": params["MessageSid"].strip()[:64],
        "from_number": params["From"].strip()[:32],
        "to_number": params.get("To", "").strip()[:32],
        "body": params.get("Body", ""),
        "num_media": num_media,
        "params": params,
        "intent": InboundIntent.text,
        "handled": False,
        "received_at": utcnow(),
        "queued": queued,
        "process_attempts": 0,
    }
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    statement = insert(InboundMessage).values(**values).on_conflict_do_nothing().returning(col(InboundMessage.id))
    row = session.execute(statement).first()
    found = row[0] if row else None
    return None if found is None else int(found)


def is_opt_out(params: dict[str, str]) -> bool:
    """Whether this message asks to stop (STOP and the other keywords, Twilio's OptOutType, a sentence): applied in
    the webhook's own request, before Twilio gets its answer. Everything else waits for the reader."""
    twilio_verdict = from_twilio_opt_out_type(params.get("OptOutType"))
    if twilio_verdict is not None:
        return twilio_verdict == InboundIntent.opt_out
    return classify(params.get("Body", "")).intent == InboundIntent.opt_out


def _opted_out(session: Session, patients: list[Patient]) -> bool:
    return bool(patients) and all(not consent_state(session, p.id or 0)[Channel.sms] for p in patients)


def _single_clinic(session: Session) -> int | None:
    ids = list(session.exec(select(Clinic.id).limit(2)))
    return ids[0] if len(ids) == 1 else None


def receive_sms(session: Session, *, params: dict[str, str], settings: Settings) -> Received:
    """Store and act on one inbound SMS in the caller's transaction. Raises MissingField for bad input."""
    inbound_id = store_sms(session, params, queued=False)
    if inbound_id is None:
        return Received(inbound_id=None, duplicate=True)
    return process_sms(session, inbound_id=inbound_id, settings=settings)


def process_sms(session: Session, *, inbound_id: int, settings: Settings) -> Received:
    """Act on one stored inbound SMS in the caller's transaction (marks it processed)."""
    inbound = session.get(InboundMessage, inbound_id)
    assert inbound is not None
    params = {str(key): str(value) for key, value in (inbound.params or {}).items()}
    inbound.queued = False
    inbound.processed_at = inbound.processed_at or utcnow()  # the reader's claim sets it
    patients = list(
        session.exec(
            select(Patient).where(Patient.phone_e164 == inbound.from_number).order_by(col(Patient.updated_at).desc())
        )
    )
    first = patients[0] if patients else None
    inbound.patient_id = first.id if first else None
    inbound.clinic_id = first.clinic_id if first else _single_clinic(session)
    twilio_verdict = from_twilio_opt_out_type(params.get("OptOutType"))
    found = classify(inbound.body, opted_out=_opted_out(session, patients))
    intent = twilio_verdict or found.intent
    inbound.intent = intent
    result = Received(inbound_id=inbound_id, duplicate=False, intent=intent, patients=len(patients))
    language = first.language if first else Language(settings.default_language)
    if intent == InboundIntent.opt_out:
        inbound.handled = True
        sentence = found.sentence and twilio_verdict is None
        source = "natural_language" if sentence else "keyword"
        applied = consent.opt_out(session, patients=patients, source=source, actor=ACTOR,
                                  detail=f"inbound SMS {inbound_id}")
        result.touchpoints_cancelled = applied.touchpoints_cancelled
        twilio_confirmed = bool(twilio_verdict) or found.twilio_keyword
        if patients and sentence:
            tasks.open_task(
                session, kind="opt_out_review", title="Patient asked to stop messages (in their own words)",
                clinic_id=inbound.clinic_id, patient_id=inbound.patient_id, inbound_id=inbound_id,
                detail="All messages were stopped at once. Read the message and confirm with the patient if unclear.",
                dedupe_key=f"opt_out_review:{inbound_id}",
            )
            # Their own words may hold a red flag too ("stop texting, I'm in the ER"): triaged (pages, no texts).
            request_triage(session, source_kind="message", source_id=inbound_id, patient_id=inbound.patient_id,
                           text_kind="free_text")
        if patients and not twilio_confirmed and settings.sms_optout_confirmation:
            result.reply_id = _reply(session, inbound, OPT_OUT_TEMPLATE, language)
    elif intent == InboundIntent.opt_in:
        inbound.handled = True
        consent.opt_in_sms(session, patients=patients, source="keyword", actor=ACTOR)
        if patients and not (twilio_verdict or found.twilio_keyword):  # Twilio confirms START/UNSTOP itself
            result.reply_id = _reply(session, inbound, OPT_IN_TEMPLATE, language)
    elif intent == InboundIntent.help:
        inbound.handled = True
        if settings.sms_help_reply and twilio_verdict is None:
            result.reply_id = _reply(session, inbound, HELP_TEMPLATE, language)
    elif patients:  # (read after a later STOP that was applied first: the conversations text nobody opted out)
        from aftercare.surveys.router import on_patient_text

        result.reply_id = on_patient_text(session, inbound=inbound, patients=patients, settings=settings)
    else:
        tasks.open_task(
            session, kind="unknown_sender", title="SMS from a number that matches no patient",
            clinic_id=inbound.clinic_id, inbound_id=inbound_id, dedupe_key=f"unknown_sender:{inbound_id}",
        )
        result.reply_id = _reply(session, inbound, UNKNOWN_TEMPLATE, language)
    session.add(inbound)
    session.flush()
    log.info("inbound SMS %s: %s, %d patient(s), %d touchpoint(s) cancelled", inbound_id, intent.value,
             len(patients), result.touchpoints_cancelled)
    return result


def _reply(session: Session, inbound: InboundMessage, template: str, language: Language) -> int | None:
    """Queue one reply to this message (none when we cannot tell which clinic is answering)."""
    assert inbound.id is not None
    if inbound.clinic_id is None:
        return None
    reply = OutboundReply(
        inbound_id=inbound.id, patient_id=inbound.patient_id, clinic_id=inbound.clinic_id, channel=Channel.sms,
        to_address=inbound.from_number, template=template, language=language,
    )
    session.add(reply)
    session.flush()
    assert reply.id is not None
    return reply.id
