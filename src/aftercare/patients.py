"""Patients: contact validation (E.164, IANA zone), lookup and the consent ledger."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.errors import InputError
from aftercare.models import Channel, ConsentEvent, Language, Patient
from aftercare.timeutil import utcnow


class PatientIn(BaseModel):
    """A patient as given by a coordinator (form, API, CLI or CSV row)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    mrn: str | None = Field(None, max_length=64, description="the clinic's own patient id")
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(None, max_length=40, description="any common format; stored as E.164")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    language: Language | None = None
    timezone: str | None = Field(None, max_length=64, description="IANA zone, e.g. America/Toronto")
    preferred_channel: Channel | None = None
    consent_sms: bool = False
    consent_email: bool = False


def normalise_phone(raw: str, default_region: str, field: str = "patient.phone") -> str:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InputError(field, f"not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise InputError(field, f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_timezone(name: str, field: str = "patient.timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(field, f"unknown time zone {name!r} (use an IANA name such as America/Toronto)") from None
    return name


def choose_channel(preferred: Channel | None, *, phone_e164: str | None, email: str | None) -> Channel:
    """The preferred channel, else the one the patient can be reached on. Raises InputError."""
    channel = preferred or (Channel.sms if phone_e164 else Channel.email)
    if channel == Channel.sms and not phone_e164:
        raise InputError("patient.preferred_channel", "sms needs a phone number")
    if channel == Channel.email and not email:
        raise InputError("patient.preferred_channel", "email needs an email address")
    return channel


def find_patient(session: Session, clinic_id: int, data: PatientIn, phone_e164: str | None) -> Patient | None:
    query = select(Patient).where(Patient.clinic_id == clinic_id)
    if data.mrn:
        return session.exec(query.where(Patient.mrn == data.mrn)).first()
    if phone_e164:
        query = query.where(Patient.phone_e164 == phone_e164, Patient.last_name == data.last_name)
        return session.exec(query.where(col(Patient.mrn).is_(None))).first()
    return None


def consent_state(session: Session, patient_id: int) -> dict[Channel, bool]:
    """The newest ledger entry per channel; no entry means no consent."""
    state = {Channel.sms: False, Channel.email: False}
    rows = session.exec(
        select(ConsentEvent)
        .where(ConsentEvent.patient_id == patient_id)
        .order_by(col(ConsentEvent.recorded_at), col(ConsentEvent.id))
    )
    for event in rows:
        state[event.channel] = event.granted
    return state


def set_consent(
    session: Session, patient: Patient, channel: Channel, granted: bool, *, source: str, actor: str
) -> bool:
    """Append a ledger entry when the state changes. Returns True when it did."""
    assert patient.id is not None
    if consent_state(session, patient.id)[channel] == granted:
        return False
    session.add(
        ConsentEvent(patient_id=patient.id, channel=channel, granted=granted, source=source, recorded_by=actor)
    )
    audit.record(
        session,
        actor=actor,
        action="consent.granted" if granted else "consent.revoked",
        entity_type="patient",
        entity_id=patient.id,
        channel=channel.value,
        source=source,
    )
    return True


def upsert_patient(
    session: Session,
    *,
    clinic_id: int,
    data: PatientIn,
    default_region: str,
    default_timezone: str,
    default_language: Language,
    actor: str,
    source: str,
) -> Patient:
    """Validate and store a patient (new, or the known one updated). Raises InputError."""
    phone = normalise_phone(data.phone, default_region) if data.phone else None
    if not phone and not data.email:
        raise InputError("patient.phone", "a phone number or an email address is required")
    zone = check_timezone(data.timezone or default_timezone)
    channel = choose_channel(data.preferred_channel, phone_e164=phone, email=data.email)
    patient = find_patient(session, clinic_id, data, phone)
    if patient is None:
        patient = Patient(
            clinic_id=clinic_id,
            first_name=data.first_name,
            last_name=data.last_name,
            timezone=zone,
            language=data.language or default_language,
        )
        session.add(patient)
    patient.mrn = data.mrn
    patient.first_name, patient.last_name = data.first_name, data.last_name
    patient.phone_e164, patient.email = phone, data.email
    patient.language = data.language or patient.language
    patient.timezone, patient.preferred_channel = zone, channel
    patient.updated_at = utcnow()
    session.flush()
    if data.consent_sms and phone:
        set_consent(session, patient, Channel.sms, True, source=source, actor=actor)
    if data.consent_email and data.email:
        set_consent(session, patient, Channel.email, True, source=source, actor=actor)
    return patient
