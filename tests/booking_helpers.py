"""Booking test data: a clinic calendar file for the test clinic, physicians, patients with a plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from aftercare import orchestration, procedures
from aftercare.models import Clinic, Patient, Procedure, Role, StaffUser, Touchpoint, TouchpointStatus
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings, get_settings
from tests.factories import make_clinic, make_staff, procedure_in

DR_A = "dr.a@example.org"
DR_B = "dr.b@example.org"


def calendar_body(**overrides: Any) -> dict[str, Any]:
    clinic: dict[str, Any] = {
        "booking_horizon_days": 400,
        "slot_minutes": {"in_person": 30, "video": 20, "phone": 15},
        "video_link_template": "https://meet.example.org/test-{room}",
        "location": "Blvd. Mijares 1, San José del Cabo",
        "hours": {day: ["09:00-13:00", "15:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2027-03-15"],
        "physicians": [
            {"email": DR_A, "modes": ["in_person", "video", "phone"]},
            {"email": DR_B, "modes": ["video", "phone"], "hours": {"tue": ["10:00-12:00"], "thu": ["10:00-12:00"]}},
        ],
        "offers": {"slots": 3, "expires_after_hours": 48, "min_notice_hours": 12},
    }
    clinic.update(overrides)
    return {"clinics": {"cabo": clinic}}


def write_calendar(path: Path, body: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(body or calendar_body(), allow_unicode=True), encoding="utf-8")
    return path


def use_calendar(monkeypatch: pytest.MonkeyPatch, path: Path) -> Settings:
    monkeypatch.setenv("AFTERCARE_CALENDAR_FILE", str(path))
    get_settings.cache_clear()
    return get_settings()


def physicians(session: Session, clinic: Clinic) -> tuple[StaffUser, StaffUser]:
    return (make_staff(session, clinic, Role.physician, email=DR_A, name="Dr. Ana Alba"),
            make_staff(session, clinic, Role.physician, email=DR_B, name="Dr. Beto Bravo"))


def at(text: str) -> datetime:
    """An aware UTC instant from 'YYYY-MM-DD HH:MM' (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def monday_after(days: int, now: datetime | None = None) -> datetime:
    """A Monday at least `days` days from now, 00:00 UTC."""
    start = (now or datetime.now(UTC)) + timedelta(days=days)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=(7 - start.weekday()) % 7)


def patient_of(session: Session, procedure: Procedure) -> Patient:
    patient = session.get(Patient, procedure.patient_id)
    assert patient is not None
    return patient


@dataclass
class World:
    """A clinic with a calendar, two physicians and one patient with a recorded procedure and its plan."""

    settings: Settings
    clinic: Clinic
    dr_a: StaffUser
    dr_b: StaffUser
    patient: Patient
    procedure: Procedure


def make_world(
    session: Session,
    settings: Settings,
    registry: ProtocolRegistry,
    *,
    zone: str = "America/Toronto",
    language: str = "en",
    performed_days_ago: int = 7,
    physician: str | None = DR_A,
    preferred: str = "sms",
    external_id: str = "PROC-1",
    phone: str = "+1 416 555 0199",
    email: str = "ana@example.org",
    clinic: Clinic | None = None,
    doctors: tuple[StaffUser, StaffUser] | None = None,
) -> World:
    clinic = clinic or make_clinic(session)
    dr_a, dr_b = doctors or physicians(session, clinic)
    data = procedure_in(
        external_id=external_id,
        patient={"timezone": zone, "language": language, "preferred_channel": preferred, "phone": phone,
                 "email": email, "last_name": f"López-{external_id}"},
        performed_at=datetime.now(UTC) - timedelta(days=performed_days_ago),
        physician_email=physician,
    )
    result = procedures.record(session, clinic=clinic, data=data, registry=registry, settings=settings,
                               actor="test", source="test")
    session.commit()
    orchestration.start_plan_flow([result.procedure.id or 0], settings)
    session.expire_all()
    procedure = session.get(Procedure, result.procedure.id)
    assert procedure is not None
    return World(settings, clinic, dr_a, dr_b, patient_of(session, procedure), procedure)


def only_due(session: Session, procedure: Procedure, key: str, now: datetime | None = None) -> Touchpoint:
    """Make touchpoint `key` due now and take every other open touchpoint of the plan out of the way."""
    now = now or datetime.now(UTC)
    target = None
    for tp in session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure.id)):
        if tp.key == key:
            tp.due_at, tp.status, target = now - timedelta(minutes=1), TouchpointStatus.scheduled, tp
        elif tp.status in (TouchpointStatus.scheduled, TouchpointStatus.held):
            tp.status, tp.cancel_reason = TouchpointStatus.cancelled, "test: out of the way"
        session.add(tp)
    session.commit()
    assert target is not None, key
    return target
