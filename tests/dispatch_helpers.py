"""Test data for the dispatcher and webhooks: patients with consent, procedures and due touchpoints."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from aftercare.models import (
    Channel,
    Clinic,
    ConsentEvent,
    KneeSide,
    Language,
    Patient,
    Procedure,
    ProcedureStatus,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.timeutil import utcnow

_numbers = itertools.count(1)


def zone_at(hour: int, now: datetime | None = None) -> str:
    """An IANA `Etc/GMT` zone whose local time is now `hour`:xx."""
    now = now or utcnow()
    offset = ((hour - now.hour + 11) % 24) - 11  # local = utc + offset, from -11 to +12 hours
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def midday_zone(now: datetime | None = None) -> str:
    """A zone where it is now 12:xx, so quiet hours never interfere with a test."""
    return zone_at(12, now)


def phone(n: int) -> str:
    return f"+1416555{n % 10000:04d}" if n < 10000 else f"+1647{n:07d}"[:12]


def make_patient(
    session: Session, clinic: Clinic, *, sms: bool = True, email: bool = True, **overrides: Any
) -> Patient:
    n = next(_numbers)
    values: dict[str, Any] = {
        "clinic_id": clinic.id,
        "first_name": "Ana",
        "last_name": f"Test{n}",
        "phone_e164": phone(n),
        "email": f"patient{n}@example.org",
        "language": Language.es,
        "timezone": midday_zone(),
        "preferred_channel": Channel.sms,
    }
    values.update(overrides)
    patient = Patient(**values)
    session.add(patient)
    session.flush()
    for channel, granted in ((Channel.sms, sms), (Channel.email, email)):
        if granted:
            session.add(ConsentEvent(patient_id=patient.id, channel=channel, granted=True, source="form",
                                     recorded_by="test"))
    session.commit()
    return patient


def make_procedure(session: Session, clinic: Clinic, patient: Patient, **overrides: Any) -> Procedure:
    values: dict[str, Any] = {
        "clinic_id": clinic.id,
        "patient_id": patient.id,
        "external_id": f"P-{next(_numbers)}",
        "protocol_id": "msc-knee-injection",
        "protocol_version": "1.0.0",
        "knee_side": KneeSide.left,
        "performed_at": utcnow() - timedelta(days=1),
        "baseline_nrs": 6,
        "status": ProcedureStatus.active,
    }
    values.update(overrides)
    procedure = Procedure(**values)
    session.add(procedure)
    session.commit()
    return procedure


def make_touchpoint(session: Session, procedure: Procedure, **overrides: Any) -> Touchpoint:
    now = utcnow()
    values: dict[str, Any] = {
        "procedure_id": procedure.id,
        "patient_id": procedure.patient_id,
        "key": f"msg_{next(_numbers)}",
        "kind": TouchpointKind.message,
        "template": "rest_guidance_d1",
        "channel": Channel.sms,
        "clinical": True,
        "planned_at": now - timedelta(minutes=1),
        "due_at": now - timedelta(minutes=1),
        "window_end": now + timedelta(hours=4),
        "status": TouchpointStatus.scheduled,
    }
    values.update(overrides)
    tp = Touchpoint(**values)
    session.add(tp)
    session.commit()
    return tp


def bulk_due(engine: Engine, clinic_id: int, count: int, *, channel: Channel = Channel.sms,
             per_patient: int = 1) -> list[int]:
    """`count` due clinical touchpoints over count/per_patient consenting patients, inserted in bulk."""
    now = utcnow()
    zone = midday_zone(now)
    patients = max(1, count // per_patient)
    base = next(_numbers) * 100_000
    with engine.begin() as conn:
        patient_ids = [
            row[0]
            for row in conn.execute(
                insert(Patient).returning(Patient.id),  # type: ignore[arg-type]
                [
                    {
                        "clinic_id": clinic_id, "first_name": "Ana", "last_name": f"Bulk{base + i}",
                        "phone_e164": f"+1{2000000000 + base + i}", "email": f"bulk{base + i}@example.org",
                        "language": Language.en, "timezone": zone, "preferred_channel": channel,
                        "created_at": now, "updated_at": now,
                    }
                    for i in range(patients)
                ],
            )
        ]
        conn.execute(
            insert(ConsentEvent),
            [
                {"patient_id": pid, "channel": ch, "granted": True, "source": "form", "recorded_by": "test",
                 "recorded_at": now}
                for pid in patient_ids
                for ch in Channel
            ],
        )
        procedure_ids = [
            row[0]
            for row in conn.execute(
                insert(Procedure).returning(Procedure.id),  # type: ignore[arg-type]
                [
                    {
                        "clinic_id": clinic_id, "patient_id": pid, "external_id": f"B-{base + i}",
                        "protocol_id": "msc-knee-injection", "protocol_version": "1.0.0", "knee_side": KneeSide.left,
                        "performed_at": now - timedelta(days=1), "baseline_nrs": 5, "status": ProcedureStatus.active,
                        "created_at": now, "updated_at": now,
                    }
                    for i, pid in enumerate(patient_ids)
                ],
            )
        ]
        rows = [
            {
                "procedure_id": procedure_ids[i % patients], "patient_id": patient_ids[i % patients],
                "key": f"bulk_{i}", "kind": TouchpointKind.message, "template": "rest_guidance_d1",
                "channel": channel, "clinical": True, "planned_at": now - timedelta(minutes=1),
                "due_at": now - timedelta(minutes=1), "window_end": now + timedelta(hours=4),
                "status": TouchpointStatus.scheduled, "attempts": 0, "payload": {},
                "created_at": now, "updated_at": now,
            }
            for i in range(count)
        ]
        return [row[0] for row in conn.execute(insert(Touchpoint).returning(Touchpoint.id), rows)]  # type: ignore[arg-type]

