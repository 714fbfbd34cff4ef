"""The demo clinic: staff, a dozen patients at different days after their injection, real care plans.

Development only. Every phone number is a fictional NANP 555-01xx number and every email is @example.org or
@example.com. Seeding is idempotent: what exists is kept, what is missing is added.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, SQLModel, col, select

from aftercare import plans, procedures
from aftercare.models import ApiToken, Clinic, Patient, Procedure, Role, StaffUser
from aftercare.patients import PatientIn
from aftercare.procedures import ProcedureIn
from aftercare.protocols import ProtocolRegistry
from aftercare.security import TOKEN_PREFIX, hash_password, hash_token
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

DEMO_SLUG = "demo-los-cabos"
DEMO_PASSWORD = "cabos-demo-2026"  # development only: printed by `aftercare serve`
DEMO_TOKEN_NAME = "demo"
ACTOR = "demo-seed"
RECORDED_DAYS_BEFORE = 10  # procedures are recorded this long before they are performed


class DemoRefused(RuntimeError):
    """Demo seeding is not allowed here (production, or a database holding a real clinic)."""


@dataclass(frozen=True)
class DemoStaff:
    email: str
    name: str
    role: Role
    on_call: bool = False
    phone: str | None = None


@dataclass(frozen=True)
class DemoPatient:
    mrn: str
    first_name: str
    last_name: str
    language: str
    timezone: str
    day: int  # days since the injection today (negative: before it)
    phone: str | None = None
    email: str | None = None
    preferred: str | None = None
    knees: tuple[str, ...] = ("right",)
    cancel_reason: str | None = None


CLINIC_NAME = "Clínica Demo Los Cabos"


def _new_clinic() -> Clinic:
    return Clinic(
        slug=DEMO_SLUG,
        name=CLINIC_NAME,
        timezone="America/Mazatlan",  # San José del Cabo, Baja California Sur
        phone="+526245550100",
        country="MX",
    )


STAFF: tuple[DemoStaff, ...] = (
    DemoStaff("admin.demo@example.org", "Lucía Ramírez", Role.admin),
    DemoStaff("coordinator.demo@example.org", "Sofía Castro", Role.coordinator),
    DemoStaff("coordinator2.demo@example.org", "Daniel Ortega", Role.coordinator),
    DemoStaff("physician.demo@example.org", "Dr. Mateo Herrera", Role.physician, on_call=True, phone="+16195550111"),
    DemoStaff("physician2.demo@example.org", "Dra. Elena Vargas", Role.physician, phone="+16195550112"),
    DemoStaff("physician3.demo@example.org", "Dr. Samuel Reyes", Role.physician, phone="+16195550113"),
)
TOKEN_OWNER = "coordinator.demo@example.org"

PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient("DEMO-001", "Emily", "Tremblay", "en", "America/Toronto", -7,
                phone="+14165550101", email="emily.tremblay@example.com"),
    DemoPatient("DEMO-002", "Carlos", "Mendoza", "es", "America/Mexico_City", 0,
                email="carlos.mendoza@example.com"),
    DemoPatient("DEMO-003", "Linda", "Chen", "en", "America/Vancouver", 1, phone="+16045550102"),
    DemoPatient("DEMO-004", "Robert", "Johnson", "en", "America/New_York", 2,
                phone="+12125550103", email="robert.johnson@example.org"),
    DemoPatient("DEMO-005", "María", "González", "es", "America/Los_Angeles", 3,
                phone="+12135550104", email="maria.gonzalez@example.com"),
    DemoPatient("DEMO-006", "James", "Wilson", "en", "America/Chicago", 5,
                phone="+13125550105", email="james.wilson@example.org", knees=("left", "right")),
    DemoPatient("DEMO-007", "Ana", "Ruiz", "es", "America/Phoenix", 10, phone="+16025550106"),
    DemoPatient("DEMO-008", "David", "Miller", "en", "America/Denver", 20, email="david.miller@example.org"),
    DemoPatient("DEMO-009", "Guadalupe", "Torres", "es", "America/Mazatlan", 45,
                email="guadalupe.torres@example.com"),
    DemoPatient("DEMO-010", "Sarah", "MacDonald", "en", "America/Halifax", 100,
                phone="+19025550107", email="sarah.macdonald@example.org", preferred="email"),
    DemoPatient("DEMO-011", "Jorge", "Hernández", "es", "America/Chicago", 200, phone="+13125550108"),
    DemoPatient("DEMO-012", "Patricia", "Brown", "en", "America/New_York", 400,
                phone="+16175550109", email="patricia.brown@example.org", preferred="email"),
    DemoPatient("DEMO-013", "Michael", "Davis", "en", "America/Toronto", -14,
                phone="+14165550110", email="michael.davis@example.com",
                cancel_reason="patient postponed the injection; will call to rebook"),
)


@dataclass
class Login:
    email: str
    password: str
    name: str
    role: Role
    on_call: bool


@dataclass
class Credentials:
    """What `aftercare serve` prints so a developer can log in and call the API."""

    clinic_name: str
    logins: list[Login]
    api_token: str | None
    token_owner: str


@dataclass
class SeedResult:
    clinic: Clinic
    staff_created: int = 0
    patients_created: int = 0
    procedures_created: int = 0
    touchpoints_written: int = 0
    procedure_ids: list[int] = field(default_factory=list)


def demo_token(settings: Settings) -> str:
    """The demo coordinator's API token, derived from the secret key (so it can be printed at every start)."""
    digest = hmac.new(
        settings.secret_key.get_secret_value().encode(), b"aftercare demo api token", hashlib.sha256
    ).hexdigest()
    return f"{TOKEN_PREFIX}demo_{digest[:40]}"


def _refuse_production(settings: Settings) -> None:
    if settings.environment == "production":
        raise DemoRefused("the demo clinic is for development only (AFTERCARE_ENVIRONMENT=production)")


def demo_clinic(session: Session) -> Clinic | None:
    return session.exec(select(Clinic).where(Clinic.slug == DEMO_SLUG)).first()


def has_any_clinic(session: Session) -> bool:
    return session.exec(select(Clinic.id).limit(1)).first() is not None


def seed(
    session: Session,
    *,
    settings: Settings,
    registry: ProtocolRegistry,
    now: datetime | None = None,
) -> SeedResult:
    """Create whatever of the demo clinic is missing, and commit. Refused in production."""
    _refuse_production(settings)
    now = now or utcnow()
    clinic = demo_clinic(session)
    if clinic is None:
        clinic = _new_clinic()
        session.add(clinic)
        session.flush()
    result = SeedResult(clinic=clinic)
    result.staff_created = _seed_staff(session, clinic)
    _seed_token(session, settings)
    physician = next(s.email for s in STAFF if s.on_call)
    for index, patient in enumerate(PATIENTS):
        if patient.day > settings.max_past_days - 1 or -patient.day > settings.max_future_days - 1:
            continue  # outside what this installation accepts (AFTERCARE_MAX_PAST_DAYS / _FUTURE_DAYS)
        for knee in patient.knees:
            external_id = patient.mrn if len(patient.knees) == 1 else f"{patient.mrn}-{knee[0].upper()}"
            procedure_id, written, new_patient = _seed_procedure(
                session, clinic, patient, knee, external_id, index, physician, settings, registry, now
            )
            result.procedure_ids.append(procedure_id)
            if written is not None:
                result.procedures_created += 1
                result.touchpoints_written += written
                result.patients_created += int(new_patient)
    session.commit()
    return result


def _seed_staff(session: Session, clinic: Clinic) -> int:
    assert clinic.id is not None
    known = set(session.exec(select(StaffUser.email).where(col(StaffUser.email).in_([s.email for s in STAFF]))))
    password_hash = hash_password(DEMO_PASSWORD)
    created = 0
    for staff in STAFF:
        if staff.email in known:
            continue
        session.add(
            StaffUser(
                clinic_id=clinic.id,
                email=staff.email,
                name=staff.name,
                role=staff.role,
                password_hash=password_hash,
                phone=staff.phone,
            )
        )
        created += 1
    session.flush()
    return created


def _seed_token(session: Session, settings: Settings) -> None:
    digest = hash_token(demo_token(settings))
    if session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first() is not None:
        return
    owner = session.exec(select(StaffUser).where(StaffUser.email == TOKEN_OWNER)).one()
    assert owner.id is not None
    session.add(ApiToken(staff_id=owner.id, name=DEMO_TOKEN_NAME, token_hash=digest))
    session.flush()


def _performed_at(clinic: Clinic, day: int, index: int, now: datetime) -> datetime:
    """Morning clinic hours in Los Cabos, `day` days ago (staggered so the list is not all 09:00)."""
    zone = ZoneInfo(clinic.timezone)
    local_day = now.astimezone(zone).date() - timedelta(days=day)
    minutes = 9 * 60 + (index % 5) * 45
    return datetime.combine(local_day, time(minutes // 60, minutes % 60), tzinfo=zone)


def _seed_procedure(
    session: Session,
    clinic: Clinic,
    patient: DemoPatient,
    knee: str,
    external_id: str,
    index: int,
    physician_email: str,
    settings: Settings,
    registry: ProtocolRegistry,
    now: datetime,
) -> tuple[int, int | None, bool]:
    """Record one procedure "as of" the day it would have been recorded and build its plan then.

    So touchpoints already past today are overdue (scheduled), not skipped. Returns (id, touchpoints
    written or None when it existed, whether the patient was new).
    """
    existing = session.exec(
        select(Procedure).where(Procedure.clinic_id == clinic.id, Procedure.external_id == external_id)
    ).first()
    if existing is not None:
        assert existing.id is not None
        return existing.id, None, False
    performed_at = _performed_at(clinic, patient.day, index, now)
    recorded_at = min(now, performed_at - timedelta(days=RECORDED_DAYS_BEFORE))
    data = ProcedureIn(
        external_id=external_id,
        patient=PatientIn(
            mrn=patient.mrn,
            first_name=patient.first_name,
            last_name=patient.last_name,
            phone=patient.phone,
            email=patient.email,
            language=patient.language,
            timezone=patient.timezone,
            preferred_channel=patient.preferred,
            consent_sms=patient.phone is not None,
            consent_email=patient.email is not None,
        ),
        knee_side=knee,
        performed_at=performed_at,
        physician_email=physician_email,
        baseline_nrs=4 + index % 5,
        baseline_koos_jr=round(45.0 + (index * 3.7) % 20, 3),
    )
    new_patient = session.exec(
        select(Patient.id).where(Patient.clinic_id == clinic.id, Patient.mrn == patient.mrn)
    ).first() is None
    recorded = procedures.record(
        session, clinic=clinic, data=data, registry=registry, settings=settings, actor=ACTOR, source="demo"
    )
    procedure = recorded.procedure
    procedure.created_at = procedure.updated_at = recorded_at
    session.add(procedure)
    written = plans.materialise(session, [procedure], now=recorded_at)
    if patient.cancel_reason:
        procedures.cancel(session, procedure, patient.cancel_reason, actor=ACTOR)
    session.flush()
    assert procedure.id is not None
    return procedure.id, written, new_patient


def reset(session: Session, *, settings: Settings) -> None:
    """Delete every row of the app's tables, and commit. Refused in production or when a real clinic exists."""
    _refuse_production(settings)
    others = session.exec(select(Clinic.name).where(Clinic.slug != DEMO_SLUG)).all()
    if others:
        raise DemoRefused(
            f"--reset wipes the whole database and it holds other clinics ({', '.join(others)}); refusing"
        )
    for table in reversed(SQLModel.metadata.sorted_tables):
        session.execute(table.delete())
    session.commit()


def credentials(session: Session, settings: Settings) -> Credentials | None:
    """The demo logins and API token, if the demo clinic is in this database (never in production)."""
    if settings.environment == "production":
        return None
    clinic = demo_clinic(session)
    if clinic is None:
        return None
    present = {
        s.email: s
        for s in session.exec(
            select(StaffUser).where(StaffUser.clinic_id == clinic.id, col(StaffUser.active).is_(True))
        )
    }
    logins = [
        Login(email=s.email, password=DEMO_PASSWORD, name=s.name, role=s.role, on_call=s.on_call)
        for s in STAFF
        if s.email in present
    ]
    token = demo_token(settings)
    stored = session.exec(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token), col(ApiToken.revoked_at).is_(None))
    ).first()
    return Credentials(
        clinic_name=clinic.name, logins=logins, api_token=token if stored else None, token_owner=TOKEN_OWNER
    )
