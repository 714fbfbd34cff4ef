"""The per-patient conversation pointer: which conversation (survey or booking) the patient was last asked in.

One row per patient (`conversation`). Whoever asks the patient something by SMS moves the pointer
(`point`); the router sends the patient's next text to that conversation's handler, so a "2" answers the
question the patient was last asked, never an older one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from aftercare.models import Conversation
from aftercare.timeutil import utcnow

SURVEY = "survey"
BOOKING = "booking"


def point(
    session: Session, *, patient_id: int, kind: str, ref_id: int, asked_at: datetime, only_if_newer: bool = False
) -> Conversation:
    """Make (kind, ref_id) the patient's current conversation, asked at `asked_at`. With `only_if_newer`, a
    pointer moved later than `asked_at` (someone asked something since) is left alone."""
    row = session.get(Conversation, patient_id)
    if row is None:
        row = Conversation(patient_id=patient_id, kind=kind, ref_id=ref_id, asked_at=asked_at)
    elif only_if_newer and row.asked_at > asked_at and (row.kind, row.ref_id) != (kind, ref_id):
        return row
    else:
        row.kind, row.ref_id, row.asked_at = kind, ref_id, asked_at
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def current(session: Session, patient_ids: Sequence[int]) -> Conversation | None:
    """The conversation most recently asked in among these patients (several may share one phone)."""
    if not patient_ids:
        return None
    return session.exec(
        select(Conversation)
        .where(col(Conversation.patient_id).in_(list(patient_ids)))
        .order_by(col(Conversation.asked_at).desc(), col(Conversation.patient_id))
    ).first()


def release(session: Session, *, patient_id: int, kind: str, ref_id: int) -> None:
    """Drop the pointer if it still points at (kind, ref_id) (a booking conversation that ended)."""
    row = session.get(Conversation, patient_id)
    if row is not None and (row.kind, row.ref_id) == (kind, ref_id):
        session.delete(row)
        session.flush()
