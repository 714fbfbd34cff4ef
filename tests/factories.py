"""Test data: plain functions that store real rows (no mocks of our own code)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlmodel import Session

from aftercare.models import ApiToken, Clinic, Role, StaffUser
from aftercare.procedures import ProcedureIn
from aftercare.security import hash_password, hash_token, new_api_token
from aftercare.timeutil import utcnow


def make_clinic(session: Session, **overrides: Any) -> Clinic:
    values: dict[str, Any] = {
        "slug": "cabo",
        "name": "Clínica Demo Los Cabos",
        "timezone": "America/Mazatlan",
        "phone": "+526241234567",
        "country": "MX",
    }
    values.update(overrides)
    clinic = Clinic(**values)
    session.add(clinic)
    session.commit()
    return clinic


@lru_cache
def _password_hash(password: str) -> str:
    return hash_password(password)  # argon2 is slow on purpose; tests reuse one hash per password


def make_staff(session: Session, clinic: Clinic, role: Role = Role.coordinator, **overrides: Any) -> StaffUser:
    assert clinic.id is not None
    values: dict[str, Any] = {
        "clinic_id": clinic.id,
        "email": f"{role.value}@example.org",
        "name": f"Test {role.value.title()}",
        "role": role,
        "password_hash": _password_hash(overrides.pop("password", "correct horse battery")),
    }
    values.update(overrides)
    staff = StaffUser(**values)
    session.add(staff)
    session.commit()
    return staff


def procedure_in(**overrides: Any) -> ProcedureIn:
    patient: dict[str, Any] = {
        "first_name": "Ana",
        "last_name": "López",
        "phone": "+1 416 555 0199",
        "email": "ana@example.org",
        "language": "es",
        "timezone": "America/Toronto",
        "consent_sms": True,
        "consent_email": True,
    }
    patient.update(overrides.pop("patient", {}))
    performed: datetime = overrides.pop("performed_at", utcnow() + timedelta(days=10))
    values: dict[str, Any] = {
        "external_id": "PROC-1",
        "patient": patient,
        "protocol_id": "msc-knee-injection",
        "knee_side": "left",
        "performed_at": performed,
        "baseline_nrs": 6,
        "baseline_koos_jr": 52.465,
    }
    values.update(overrides)
    return ProcedureIn.model_validate(values)


def make_api_token(session: Session, staff: StaffUser, name: str = "test") -> str:
    """A stored API token for `staff`; returns the secret (only its hash is stored)."""
    assert staff.id is not None
    token = new_api_token()
    session.add(ApiToken(staff_id=staff.id, name=name, token_hash=hash_token(token)))
    session.commit()
    return token
