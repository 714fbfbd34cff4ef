"""bulk.insert_rows stores exactly what an ORM insert stores; allocate_ids never collides with later inserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from aftercare import bulk
from aftercare.models import AuditEvent, Channel, ConsentEvent, Patient
from aftercare.timeutil import utcnow
from tests.factories import make_clinic

AWKWARD = "tab\there, new\nline, cr\rback\\slash, quote ' \" , \\N, ñ 日本"


def _audit(i: int, at: datetime) -> dict[str, Any]:
    return {
        "at": at,
        "actor": AWKWARD if i == 0 else f"actor {i}",
        "action": "test.bulk",
        "entity_type": "patient",
        "entity_id": None if i % 2 else i,
        "detail": {"text": AWKWARD, "nested": {"list": [1, 2.5, None, True]}, "i": i % 3},
    }


def test_insert_rows_stores_what_the_orm_stores(session: Session) -> None:
    now = datetime(2026, 3, 8, 2, 30, tzinfo=ZoneInfo("America/New_York"))  # any zone in, UTC out
    rows = [_audit(i, now + timedelta(minutes=i % 4)) for i in range(50)]

    assert bulk.insert_rows(session, AuditEvent, rows) == 50
    session.add_all(AuditEvent(**{**row, "action": "test.orm"}) for row in rows)
    session.commit()
    session.expire_all()

    stored = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    by_bulk = [e for e in stored if e.action == "test.bulk"]
    by_orm = [e for e in stored if e.action == "test.orm"]
    assert len(by_bulk) == len(by_orm) == 50
    for a, b in zip(by_bulk, by_orm, strict=True):
        assert (a.at, a.actor, a.entity_id, a.detail) == (b.at, b.actor, b.entity_id, b.detail)
    assert by_bulk[0].actor == AWKWARD and by_bulk[0].detail["text"] == AWKWARD
    assert by_bulk[0].at == now.astimezone(UTC)
    assert by_bulk[1].detail == {"text": AWKWARD, "nested": {"list": [1, 2.5, None, True]}, "i": 1}


def test_allocated_ids_are_used_and_later_inserts_follow(session: Session) -> None:
    clinic = make_clinic(session)
    now = utcnow()
    ids = bulk.allocate_ids(session, Patient, 3)
    assert len(set(ids)) == 3
    rows = [
        {"id": i, "clinic_id": clinic.id, "mrn": None, "first_name": "A", "last_name": f"B{i}", "phone_e164": None,
         "email": f"{i}@example.org", "language": "es", "timezone": "Europe/Madrid", "preferred_channel": Channel.email,
         "created_at": now, "updated_at": now}
        for i in ids
    ]
    bulk.insert_rows(session, Patient, rows)
    bulk.insert_rows(session, ConsentEvent, [
        {"patient_id": ids[0], "channel": Channel.email, "granted": True, "source": "import", "note": None,
         "recorded_by": "test", "recorded_at": now}
    ])
    later = Patient(clinic_id=clinic.id or 0, first_name="C", last_name="D", timezone="UTC", email="c@example.org")
    session.add(later)
    session.commit()

    assert later.id is not None and later.id > max(ids)
    stored = session.get(Patient, ids[0])
    assert stored is not None and stored.preferred_channel == Channel.email and stored.created_at == now
    consent = session.exec(select(ConsentEvent)).one()
    assert consent.granted is True and consent.patient_id == ids[0]
