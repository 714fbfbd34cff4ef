"""Flag test helpers: a clinic with its on-call staff and rota, patients with a procedure, triaged messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, col, select

from aftercare.flags import intake, service
from aftercare.flags.service import TriageReport
from aftercare.models import (
    Clinic,
    Flag,
    FlagPage,
    InboundMessage,
    Patient,
    Procedure,
    Role,
    StaffUser,
    TriageRequest,
)
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import make_patient, make_procedure
from tests.factories import make_clinic, make_staff

SLUG = "cabo"
PRIMARY, BACKUP, NIGHT, ADMIN = (
    "dr.primary@example.org", "dr.backup@example.org", "dr.night@example.org", "admin@example.org")
COORDINATOR = "coordinator@example.org"
PHONES = {PRIMARY: "+16195550111", BACKUP: "+16195550112", NIGHT: "+16195550113", ADMIN: "+16195550100"}


def rota(**overrides: Any) -> dict[str, Any]:
    """The on-call entry of the test clinic: days 08:00-20:00 primary/backup, nights the night doctor."""
    entry: dict[str, Any] = {
        "admin": ADMIN,
        "escalation": {"backup_after_minutes": 15, "admin_after_minutes": 10},
        "channels": ["sms", "email"],
        "language": "en",
        "review_business_days": 2,
        "rota": [
            {"hours": "08:00-20:00", "primary": PRIMARY, "backup": BACKUP},
            {"hours": "20:00-08:00", "primary": NIGHT, "backup": PRIMARY},
        ],
    }
    entry.update(overrides)
    return entry


def write_oncall(path: Path, clinics: dict[str, Any] | None = None, **extra: Any) -> Path:
    body = {"version": 1, "emergency_numbers": {"US": "911", "CA": "911", "MX": "911", "GB": "999"},
            "clinics": {SLUG: rota()} if clinics is None else clinics, **extra}
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def use_oncall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clinics: dict[str, Any] | None = None) -> Settings:
    """Point AFTERCARE_ONCALL_FILE at a fresh rota file; returns the settings that read it."""
    monkeypatch.setenv("AFTERCARE_ONCALL_FILE", str(write_oncall(tmp_path / "oncall.yaml", clinics)))
    get_settings.cache_clear()
    return get_settings()


@dataclass
class Team:
    clinic: Clinic
    primary: StaffUser
    backup: StaffUser
    night: StaffUser
    admin: StaffUser
    coordinator: StaffUser

    def by_email(self, email: str) -> StaffUser:
        return next(s for s in (self.primary, self.backup, self.night, self.admin, self.coordinator)
                    if s.email == email)


def make_team(session: Session, **clinic: Any) -> Team:
    """A clinic (zone UTC, so the rota's hours are UTC hours) with its physicians, admin and coordinator."""
    clinic = {"name": "Northside Clinic", **clinic}
    place = make_clinic(session, slug=SLUG, timezone="Etc/UTC", **clinic)
    people = [make_staff(session, place, role, email=email, name=name, phone=PHONES.get(email))
              for email, role, name in (
                  (PRIMARY, Role.physician, "Dr. Primary"), (BACKUP, Role.physician, "Dr. Backup"),
                  (NIGHT, Role.physician, "Dr. Night"), (ADMIN, Role.admin, "Ada Admin"),
                  (COORDINATOR, Role.coordinator, "Cora Coordinator"))]
    return Team(place, *people)


def patient_with_procedure(
    session: Session, clinic: Clinic, *, days_ago: float = 4, **patient: Any
) -> tuple[Patient, Procedure]:
    person = make_patient(session, clinic, **patient)
    procedure = make_procedure(session, clinic, person, performed_at=utcnow() - timedelta(days=days_ago),
                               baseline_koos_jr=52.5)
    return person, procedure


def stored_text(session: Session, patient: Patient, body: str, *, at: datetime | None = None) -> InboundMessage:
    """An inbound SMS as the webhook stores it (no triage asked for yet)."""
    inbound = InboundMessage(message_sid=f"SM{utcnow().timestamp():.6f}{patient.id}{len(body)}".replace(".", ""),
                             from_number=patient.phone_e164 or "", to_number="+15005550006", body=body,
                             patient_id=patient.id, clinic_id=patient.clinic_id, received_at=at or utcnow())
    session.add(inbound)
    session.commit()
    return inbound


def triage_text(session: Session, settings: Settings, patient: Patient, body: str) -> None:
    """Store a free-text SMS and triage it the way the hook does (AFTERCARE_FLOW_MODE=off: at commit)."""
    inbound = stored_text(session, patient, body)
    assert inbound.id is not None
    intake.request_triage(session, source_kind="message", source_id=inbound.id, patient_id=patient.id,
                          text_kind="free_text")
    session.commit()  # flow_mode off: triaged, paged and answered in this commit


def flags_of(session: Session, patient: Patient | None = None) -> list[Flag]:
    session.expire_all()
    query = select(Flag).order_by(col(Flag.id))
    if patient is not None:
        query = query.where(Flag.patient_id == patient.id)
    return list(session.exec(query))


def pages_of(session: Session, flag: Flag) -> list[FlagPage]:
    session.expire_all()
    return list(session.exec(select(FlagPage).where(FlagPage.flag_id == flag.id).order_by(col(FlagPage.id))))


def requests(session: Session) -> list[TriageRequest]:
    session.expire_all()
    return list(session.exec(select(TriageRequest).order_by(col(TriageRequest.id))))


def run_pending(settings: Settings) -> TriageReport:
    return service.triage_requests(settings)


def make_flag(session: Session, patient: Patient, *, tier: Any = None, **overrides: Any) -> Flag:
    """A flag row as triage writes it (for tests of what staff do with flags, not of triage itself)."""
    from aftercare.models import FlagTier

    now = utcnow()
    values: dict[str, Any] = {
        "clinic_id": patient.clinic_id, "patient_id": patient.id, "source_kind": "message",
        "tier": tier or FlagTier.urgent, "rules": ["U2-fever-reported"],
        "reasons": ["Fever or chills reported in the first 3 weeks (day 4) - possible joint infection"],
        "routes": ["page_on_call", "acknowledge_patient"], "day": 4.0, "sla_due_at": now + timedelta(minutes=15),
        "escalation_level": 0, "next_escalation_at": now + timedelta(minutes=15), "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    flag = Flag(**values)
    session.add(flag)
    session.commit()
    return flag


def write_calendar(path: Path, *physicians: str, slug: str = SLUG) -> Path:
    """A clinic calendar (config/clinic.yaml format) open every day, so an urgent visit always finds a time."""
    every_day = {day: ["00:00-23:55"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    body = {"clinics": {slug: {
        "slot_minutes": {"in_person": 30, "video": 20, "phone": 15}, "hours": every_day,
        "video_link_template": "https://meet.example.org/t-{room}",
        "physicians": [{"email": email} for email in physicians],
        "urgent": {"mode": "in_person", "min_notice_minutes": 60, "within_days": 7},
    }}}
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path
