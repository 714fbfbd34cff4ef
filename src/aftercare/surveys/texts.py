"""The SMS texts of a survey conversation, written when queued (`outbound_reply.body`).

Questions and clarifying questions come from the instrument files (config/instruments); the short
framing texts are templates (templates/sms/survey_thanks, survey_handoff, survey_free_text,
survey_closed). Everything is folded to GSM-7 like every other SMS. A reply goes out only while the
patient may be texted (SMS consent, number not suppressed).
"""

from __future__ import annotations

from sqlmodel import Session

from aftercare.consent import active_suppressions, blocking
from aftercare.instruments import SurveyItem, clarify_prompt, sms_prompt
from aftercare.messaging.context import patient_context
from aftercare.messaging.render import render, sms_text
from aftercare.models import Channel, Clinic, OutboundReply, Patient
from aftercare.patients import consent_state
from aftercare.settings import Settings


def framing(name: str, *, clinic: Clinic, patient: Patient, settings: Settings) -> str:
    context = patient_context(clinic=clinic, patient=patient)
    return render(name, Channel.sms, patient.language, context, templates_dir=settings.templates_dir).text


def emergency_number(clinic: Clinic, patient: Patient) -> str:
    return str(patient_context(clinic=clinic, patient=patient)["emergency_number"])


def question(si: SurveyItem, *, clinic: Clinic, patient: Patient) -> str:
    """The item's SMS question, after its instrument's introduction when it is the instrument's first item."""
    emergency = emergency_number(clinic, patient)
    text = sms_prompt(si.item, patient.language.value, emergency_number=emergency)
    intro = si.instrument.intro
    if intro is not None and si.instrument.items[0].id == si.item.id:
        text = f"{intro.get(patient.language.value)} {text}"
    return sms_text(text)


def clarify(si: SurveyItem, *, clinic: Clinic, patient: Patient) -> str:
    return sms_text(clarify_prompt(si.item, patient.language.value, emergency_number=emergency_number(clinic, patient)))


def may_text(session: Session, patient: Patient) -> bool:
    """SMS consent given and the number not suppressed."""
    assert patient.id is not None
    if not patient.phone_e164 or not consent_state(session, patient.id)[Channel.sms]:
        return False
    return blocking(active_suppressions(session, [patient.id])[patient.id], Channel.sms, patient.phone_e164) is None


def queue(
    session: Session, *, patient: Patient, template: str, body: str, inbound_id: int | None = None,
    to: str | None = None,
) -> int | None:
    """Queue one text for the reply sender (`dispatch.replies`); None when the patient may not be texted."""
    if not may_text(session, patient):
        return None
    reply = OutboundReply(
        inbound_id=inbound_id, patient_id=patient.id, clinic_id=patient.clinic_id, channel=Channel.sms,
        to_address=to or patient.phone_e164 or "", template=template, body=body, language=patient.language,
    )
    session.add(reply)
    session.flush()
    return reply.id
