"""Texts to a patient about a triaged message, all through the reply outbox (`outbound_reply`), never sent from here.

- `triage_emergency`: call the local emergency number now (by the country of the patient's phone, else the
  clinic's; config/oncall.yaml `emergency_numbers`);
- `triage_urgent_ack`: the doctor on call will contact you; what to do if it gets worse;
- `education_<id>`: the education reply a routine rule names (e.g. `education_nsaid_hold`);
- a physician's own words from the flag page (SMS only).

Quiet hours do not apply: these answer a patient who has just written to us (the dispatcher's reply sender
sends at once, like HELP). SMS goes to the number the patient wrote from; when there is no inbound SMS (a web
form answer) or SMS may not be used, email. A reply to an inbound SMS is allowed unless the patient revoked SMS
or the number is suppressed; anything else needs consent on that channel.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlmodel import Session, col, select

from aftercare.consent import active_suppressions, address_of, blocking
from aftercare.flags.oncall import current as oncall
from aftercare.messaging.context import GUIDANCE_DEFAULTS, patient_context, phrases
from aftercare.messaging.render import render, sms_text
from aftercare.models import (
    Channel,
    Clinic,
    ConsentEvent,
    InboundMessage,
    OutboundReply,
    Patient,
    Procedure,
    ProtocolSnapshot,
)
from aftercare.settings import Settings

EMERGENCY = "triage_emergency"
URGENT_ACK = "triage_urgent_ack"
EDUCATION_PREFIX = "education_"
STAFF_MESSAGE_MAX = 300


def country_of(patient: Patient, clinic: Clinic) -> str:
    if patient.phone_e164:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(patient.phone_e164, None))
        except phonenumbers.NumberParseException:
            region = None
        if region:
            return str(region)
    return clinic.country


def _revoked(session: Session, patient_id: int, channel: Channel) -> bool:
    """The newest ledger entry for the channel is a revocation (an explicit no, not just no consent yet)."""
    latest = session.exec(
        select(ConsentEvent.granted)
        .where(ConsentEvent.patient_id == patient_id, ConsentEvent.channel == channel)
        .order_by(col(ConsentEvent.recorded_at).desc(), col(ConsentEvent.id).desc())
    ).first()
    return latest is False


def _granted(session: Session, patient_id: int, channel: Channel) -> bool:
    latest = session.exec(
        select(ConsentEvent.granted)
        .where(ConsentEvent.patient_id == patient_id, ConsentEvent.channel == channel)
        .order_by(col(ConsentEvent.recorded_at).desc(), col(ConsentEvent.id).desc())
    ).first()
    return latest is True


def may_use(session: Session, patient: Patient, channel: Channel, *, answering: InboundMessage | None) -> bool:
    """May this channel carry a text to the patient now (see the module docstring)?"""
    assert patient.id is not None
    address = answering.from_number if channel == Channel.sms and answering else address_of(patient, channel)
    if not address:
        return False
    if blocking(active_suppressions(session, [patient.id])[patient.id], channel, address) is not None:
        return False
    if channel == Channel.sms and answering is not None:
        return not _revoked(session, patient.id, channel)
    return _granted(session, patient.id, channel)


def _channels(patient: Patient, inbound: InboundMessage | None) -> list[Channel]:
    if inbound is not None:
        return [Channel.sms, Channel.email]
    first = patient.preferred_channel
    return [first, Channel.email if first == Channel.sms else Channel.sms]


def context(
    session: Session, *, patient: Patient, clinic: Clinic, procedure: Procedure | None, settings: Settings
) -> dict[str, Any]:
    """Template variables: the usual patient context, the emergency number from config, and the protocol's
    guidance settings with the allowed pain reliever named (education replies use it)."""
    values = patient_context(clinic=clinic, patient=patient)
    values["emergency_number"] = oncall(settings).emergency_number(country_of(patient, clinic))
    protocol_settings: dict[str, Any] = {}
    if procedure is not None:
        snapshot = session.exec(select(ProtocolSnapshot).where(
            ProtocolSnapshot.protocol_id == procedure.protocol_id,
            ProtocolSnapshot.version == procedure.protocol_version)).first()
        if snapshot is not None:
            protocol_settings = dict(snapshot.body.get("settings") or {})
    guidance = {**GUIDANCE_DEFAULTS, **protocol_settings}
    analgesic = str(guidance["allowed_analgesic"])
    label = phrases(settings.templates_dir)["analgesics"].get(analgesic, {}).get(patient.language.value) or {}
    guidance["analgesic"] = label.get("name", analgesic.replace("_", " "))
    guidance["analgesic_short"] = label.get("short", guidance["analgesic"])
    values["settings"] = guidance
    return values


def queue(
    session: Session,
    *,
    patient: Patient,
    clinic: Clinic,
    template: str,
    settings: Settings,
    procedure: Procedure | None = None,
    inbound: InboundMessage | None = None,
) -> Channel | None:
    """Queue one templated text to the patient; returns the channel used (None: no channel may be used)."""
    for channel in _channels(patient, inbound):
        if not may_use(session, patient, channel, answering=inbound if channel == Channel.sms else None):
            continue
        body: str | None = None
        if channel == Channel.sms:  # written now, with the patient's own context (emergency number by phone)
            values = context(session, patient=patient, clinic=clinic, procedure=procedure, settings=settings)
            body = render(template, Channel.sms, patient.language, values, templates_dir=settings.templates_dir).text
        to = inbound.from_number if channel == Channel.sms and inbound else address_of(patient, channel)
        assert to is not None
        session.add(OutboundReply(
            patient_id=patient.id, clinic_id=clinic.id, channel=channel, to_address=to, template=template,
            body=body, language=patient.language,
        ))
        session.flush()
        return channel
    return None


def queue_staff_words(session: Session, *, patient: Patient, clinic: Clinic, text: str) -> OutboundReply | None:
    """A physician's message from the flag page, by SMS (None when the patient may not be texted)."""
    if not may_use(session, patient, Channel.sms, answering=None) or not patient.phone_e164:
        return None
    reply = OutboundReply(
        patient_id=patient.id, clinic_id=clinic.id, channel=Channel.sms, to_address=patient.phone_e164,
        template="flag_staff_message", body=sms_text(f"{clinic.name}: {text}"), language=patient.language,
    )
    session.add(reply)
    session.flush()
    return reply
