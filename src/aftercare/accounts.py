"""Clinics, staff accounts and API tokens: validated creation, with an audit event for each."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.models import ApiToken, Clinic, Role, StaffUser
from aftercare.patients import check_timezone, normalise_phone
from aftercare.security import hash_password, hash_token, new_api_token
from aftercare.timing import parse_hhmm

MIN_PASSWORD_LENGTH = 10
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def create_clinic(
    session: Session,
    *,
    slug: str,
    name: str,
    timezone: str,
    phone: str,
    country: str = "US",
    send_window_start: str = "08:00",
    send_window_end: str = "20:00",
    actor: str,
) -> Clinic:
    """A new clinic. Raises InputError (bad field) or ConflictError (slug taken)."""
    slug, name, country = slug.strip().lower(), name.strip(), country.strip().upper()
    if not _SLUG.match(slug) or len(slug) > 64:
        raise InputError("slug", f"{slug!r}: use lowercase letters, digits and dashes (e.g. cabo-knee)")
    if not name:
        raise InputError("name", "required")
    if not _COUNTRY.match(country):
        raise InputError("country", f"{country!r} is not a two-letter country code (e.g. US, MX)")
    zone = check_timezone(timezone.strip(), field="timezone")
    clinic_phone = normalise_phone(phone, country, field="phone")
    for field, value in (("send_window_start", send_window_start), ("send_window_end", send_window_end)):
        if not _HHMM.match(value):
            raise InputError(field, f"{value!r} is not HH:MM (24 h)")
    if parse_hhmm(send_window_start) >= parse_hhmm(send_window_end):
        raise InputError("send_window_end", "must be later than send_window_start")
    if session.exec(select(Clinic).where(Clinic.slug == slug)).first() is not None:
        raise ConflictError(f"a clinic {slug!r} already exists")
    clinic = Clinic(slug=slug, name=name, timezone=zone, phone=clinic_phone, country=country,
                    send_window_start=send_window_start, send_window_end=send_window_end)
    session.add(clinic)
    session.flush()
    audit.record(session, actor=actor, action="clinic.created", entity_type="clinic", entity_id=clinic.id, slug=slug)
    return clinic


def find_clinic(session: Session, slug: str | None) -> Clinic:
    """The clinic with this slug; without one, the only clinic there is. Raises InputError."""
    clinics = list(session.exec(select(Clinic).order_by(col(Clinic.slug))))
    if slug:
        for clinic in clinics:
            if clinic.slug == slug.strip().lower():
                return clinic
        known = ", ".join(c.slug for c in clinics) or "none yet"
        raise InputError("clinic", f"no clinic {slug!r} (known: {known})")
    if not clinics:
        raise InputError("clinic", "no clinic yet: create one first (`aftercare clinic create`)")
    if len(clinics) > 1:
        raise InputError("clinic", f"there are several clinics, name one of: {', '.join(c.slug for c in clinics)}")
    return clinics[0]


def create_staff(
    session: Session,
    *,
    clinic: Clinic,
    email: str,
    name: str,
    role: str,
    password: str,
    phone: str | None = None,
    actor: str,
) -> StaffUser:
    """A new staff account (argon2 password hash). Raises InputError or ConflictError (email taken)."""
    email, name = email.strip().lower(), name.strip()
    if not _EMAIL.match(email):
        raise InputError("email", f"{email!r} is not an email address")
    if not name:
        raise InputError("name", "required")
    try:
        staff_role = Role(role.strip().lower())
    except ValueError:
        raise InputError("role", f"{role!r}: use one of {', '.join(r.value for r in Role)}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    staff_phone = normalise_phone(phone, clinic.country, field="phone") if phone else None
    if session.exec(select(StaffUser).where(StaffUser.email == email)).first() is not None:
        raise ConflictError(f"a staff account {email!r} already exists")
    assert clinic.id is not None
    staff = StaffUser(clinic_id=clinic.id, email=email, name=name, role=staff_role,
                      password_hash=hash_password(password), phone=staff_phone)
    session.add(staff)
    session.flush()
    audit.record(session, actor=actor, action="staff.created", entity_type="staff_user", entity_id=staff.id,
                 role=staff_role.value, clinic=clinic.slug)
    return staff


@dataclass(frozen=True)
class IssuedToken:
    staff: StaffUser
    token: ApiToken
    secret: str  # shown once; only its SHA-256 is stored


def issue_token(session: Session, *, email: str, name: str, actor: str) -> IssuedToken:
    """A new API token for an active staff account. Raises NotFoundError or InputError."""
    name = name.strip()
    if not name:
        raise InputError("name", "name the token after where it is used (e.g. ehr-sync)")
    staff = session.exec(select(StaffUser).where(StaffUser.email == email.strip().lower())).first()
    if staff is None:
        raise NotFoundError(f"no staff account {email.strip().lower()!r}")
    if not staff.active:
        raise InputError("email", f"the staff account {staff.email!r} is disabled")
    assert staff.id is not None
    secret = new_api_token()
    token = ApiToken(staff_id=staff.id, name=name[:100], token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    audit.record(session, actor=actor, action="api_token.issued", entity_type="staff_user", entity_id=staff.id,
                 token_id=token.id, name=token.name)
    return IssuedToken(staff=staff, token=token, secret=secret)
