"""Reading the console outbox for staff: what would have been sent to a clinic's patients, newest first.

A stored message belongs to a clinic when its address is the phone or email of one of the clinic's
patients (the outbox keeps only what a provider would get: address, subject, body). Replies to
numbers we could not match belong to no clinic and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from aftercare.messaging import gsm
from aftercare.models import Channel, OutboxMessage, Patient


@dataclass(frozen=True)
class OutboxRow:
    message: OutboxMessage
    patient: Patient | None
    segments: int | None  # SMS only
    encoding: str | None  # "GSM-7" or "UCS-2", SMS only


def _of_clinic(clinic_id: int, channel: Channel | None) -> ColumnElement[bool]:
    phones = select(Patient.phone_e164).where(Patient.clinic_id == clinic_id, col(Patient.phone_e164).is_not(None))
    emails = select(Patient.email).where(Patient.clinic_id == clinic_id, col(Patient.email).is_not(None))
    condition = or_(col(OutboxMessage.to).in_(phones), col(OutboxMessage.to).in_(emails))
    if channel is not None:
        condition = condition & (col(OutboxMessage.channel) == channel)
    return condition


def for_clinic(
    session: Session, *, clinic_id: int, channel: Channel | None = None, limit: int = 50, offset: int = 0
) -> list[OutboxRow]:
    messages = list(
        session.exec(
            select(OutboxMessage)
            .where(_of_clinic(clinic_id, channel))
            .order_by(col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    addresses = {m.to for m in messages}
    patients: dict[str, Patient] = {}
    if addresses:
        found = session.exec(
            select(Patient).where(
                Patient.clinic_id == clinic_id,
                or_(col(Patient.phone_e164).in_(addresses), col(Patient.email).in_(addresses)),
            ).order_by(col(Patient.id))
        )
        for patient in found:
            for address in (patient.phone_e164, patient.email):
                if address:
                    patients.setdefault(address, patient)
    return [_row(m, patients.get(m.to)) for m in messages]


def count_for_clinic(session: Session, *, clinic_id: int, channel: Channel | None = None) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(_of_clinic(clinic_id, channel))
    return int(session.exec(query).one())


def _row(message: OutboxMessage, patient: Patient | None) -> OutboxRow:
    if message.channel != Channel.sms:
        return OutboxRow(message, patient, None, None)
    encoding = "GSM-7" if gsm.is_gsm7(message.body) else "UCS-2"
    return OutboxRow(message, patient, gsm.segments(message.body), encoding)
