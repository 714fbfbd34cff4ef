"""Paging staff about a flag: who (the rota), on which channels, and handing the pages to the providers.

A page carries the flag's number, its tier, the clinic and a link to the flag page; never a patient's name,
symptom or anything else about them ("Urgent flag #123 at Clínica Demo: https://.../flags/123"). Pages go out at
any hour: quiet hours protect patients, and on-call staff are paged because it cannot wait.

Levels: 0 the primary on call, 1 the backup, 2 the clinic admin. A level whose person cannot be reached (not a
staff member, inactive, no phone or email for any page channel) is skipped to the next, so somebody is always
paged. A clinic with no entry in config/oncall.yaml pages every active physician at level 0 and its admins at
level 2.

Sending is at least once: a page the provider may or may not have taken (timeout, 5xx) is sent again, because
two pages are better than none. A page that keeps failing is marked failed; escalation continues regardless.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.db import get_engine
from aftercare.flags.oncall import Policy, current, policy
from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, Provider
from aftercare.messaging.render import render
from aftercare.models import Channel, Clinic, Flag, FlagPage, Role, StaffUser, TouchpointStatus
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
ACTOR = "paging"
ROLES = ("primary", "backup", "admin")
MAX_PAGE_ATTEMPTS = 5
PAGE_LEASE_SECONDS = 60
TEMPLATE = "flag_page"


@dataclass(frozen=True)
class Recipient:
    staff: StaffUser
    role: str


def flag_link(settings: Settings, flag_id: int) -> str:
    return f"{settings.public_base_url.rstrip('/')}/flags/{flag_id}"


def _by_email(session: Session, email: str) -> StaffUser | None:
    staff = session.exec(select(StaffUser).where(StaffUser.email == email.strip().lower())).first()
    return staff if staff is not None and staff.active else None


def _everyone(session: Session, clinic_id: int, role: Role) -> list[StaffUser]:
    return list(session.exec(
        select(StaffUser)
        .where(StaffUser.clinic_id == clinic_id, StaffUser.role == role, col(StaffUser.active).is_(True))
        .order_by(col(StaffUser.id))
    ))


def recipients(session: Session, clinic: Clinic, rules: Policy, level: int, at: datetime) -> list[Recipient]:
    """Who is paged at `level` (0 primary, 1 backup, 2 admin) at instant `at`."""
    from zoneinfo import ZoneInfo

    role = ROLES[level]
    entry = rules.clinic
    if entry is None:  # no rota for this clinic: every physician, then every admin
        group = {0: Role.physician, 2: Role.admin}.get(level)
        return [Recipient(s, role) for s in _everyone(session, clinic.id or 0, group)] if group else []
    if level == 2:
        email = entry.admin
    else:
        primary, backup = entry.on_call(at, ZoneInfo(clinic.timezone))
        email = primary if level == 0 else backup
    staff = _by_email(session, email)
    if staff is None:
        log.error("on-call %s %s of clinic %s is not an active staff member: skipped", role, email, clinic.slug)
        return []
    return [Recipient(staff, role)]


def _address(staff: StaffUser, channel: Channel) -> str | None:
    return staff.phone if channel == Channel.sms else staff.email


def page(session: Session, flag: Flag, *, level: int, settings: Settings, now: datetime) -> list[FlagPage]:
    """Queue the pages of `level` for the flag (skipping to the next level when nobody there can be reached)
    and set the escalation timer. In the caller's transaction; `send_pages` hands them to the providers."""
    assert flag.id is not None
    clinic = session.get(Clinic, flag.clinic_id)
    assert clinic is not None
    rules = policy(settings, clinic.slug)
    while level <= 2:
        pages = _queue_level(session, flag, clinic, rules, level, now)
        flag.escalation_level = level
        delay = rules.escalation_delay(level)
        flag.next_escalation_at = now + delay if delay is not None else None
        if pages:
            break
        audit.record(session, actor=ACTOR, action="flag.page_unreachable", entity_type="flag", entity_id=flag.id,
                     level=level, role=ROLES[level])
        level += 1
    else:
        flag.next_escalation_at = None
        log.error("flag %s: nobody could be paged at any level (check config/oncall.yaml and staff phones)", flag.id)
        pages = []
    flag.updated_at = now
    session.add(flag)
    session.flush()
    return pages


def _queue_level(
    session: Session, flag: Flag, clinic: Clinic, rules: Policy, level: int, now: datetime
) -> list[FlagPage]:
    queued: list[FlagPage] = []
    for person in recipients(session, clinic, rules, level, now):
        for channel in rules.channels:
            address = _address(person.staff, channel)
            if not address:
                continue
            existing = session.exec(select(FlagPage).where(
                FlagPage.flag_id == flag.id, FlagPage.tier == flag.tier, FlagPage.level == level,
                FlagPage.channel == channel, FlagPage.staff_id == person.staff.id)).first()
            if existing is not None:
                queued.append(existing)
                continue
            row = FlagPage(flag_id=flag.id or 0, staff_id=person.staff.id, tier=flag.tier, level=level,
                           role=person.role, channel=channel, to_address=address, language=rules.language,
                           created_at=now)
            session.add(row)
            queued.append(row)
        audit.record(session, actor=ACTOR, action="flag.paged", entity_type="flag", entity_id=flag.id, level=level,
                     role=person.role, staff_id=person.staff.id, tier=flag.tier.value,
                     channels=[c.value for c in rules.channels if _address(person.staff, c)])
    session.flush()
    return queued


# -- sending ----------------------------------------------------------------------------------------


def compose(page_row: FlagPage, clinic_name: str, settings: Settings) -> OutboundMessage:
    """The page's text: tier, flag number, clinic and link. Nothing about the patient."""
    values = {
        "flag_id": page_row.flag_id,
        "tier": page_row.tier.value,
        "level": page_row.level,
        "role": page_row.role,
        "clinic_name": clinic_name,
        "link": flag_link(settings, page_row.flag_id),
    }
    rendered = render(TEMPLATE, page_row.channel, page_row.language, values, templates_dir=settings.templates_dir)
    return OutboundMessage(message_id=f"pg-{page_row.id}", channel=page_row.channel, to=page_row.to_address,
                           body=rendered.text, subject=rendered.subject, html=rendered.html)


def claim_pages(session: Session, *, now: datetime, ids: list[int] | None = None, limit: int = 200) -> list[int]:
    """Scheduled pages (and ones a dead sender left `sending`) claimed for this sender."""
    due = sa_select(col(FlagPage.id)).where(
        (col(FlagPage.status) == TouchpointStatus.scheduled)
        | ((col(FlagPage.status) == TouchpointStatus.sending) & (col(FlagPage.lease_expires_at) < now))
    )
    if ids is not None:
        due = due.where(col(FlagPage.id).in_(ids))
    due = due.order_by(col(FlagPage.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(FlagPage)
        .where(col(FlagPage.id).in_(due.scalar_subquery()))
        .values(status=TouchpointStatus.sending, attempts=col(FlagPage.attempts) + 1,
                lease_expires_at=now + timedelta(seconds=PAGE_LEASE_SECONDS))
        .returning(col(FlagPage.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(row[0]) for row in session.execute(statement))


_provider_cache: dict[tuple[object, ...], Mapping[Channel, Provider]] = {}


def _providers(settings: Settings, engine: Engine) -> Mapping[Channel, Provider]:
    """One provider set per configuration (they keep connection pools)."""
    from aftercare.messaging.registry import providers

    key = (id(engine), settings.twilio_account_sid, settings.twilio_api_base_url, settings.sendgrid_api_key,
           settings.sendgrid_api_base_url, settings.public_base_url)
    found = _provider_cache.get(key)
    if found is None:
        found = providers(settings, engine=engine)
        _provider_cache[key] = found
    return found


def send_pages(
    settings: Settings,
    *,
    engine: Engine | None = None,
    ids: list[int] | None = None,
    providers: Mapping[Channel, Provider] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Counter[str]:
    """Hand the queued pages (all, or these ids) to the providers now. Returns counts by outcome."""
    engine = engine or get_engine()
    counts: Counter[str] = Counter()
    with Session(engine, expire_on_commit=False) as session:
        claimed = claim_pages(session, now=clock(), ids=ids)
        session.commit()
        rows = [session.get(FlagPage, i) for i in claimed]
        clinics = {f.id: c.name for f, c in session.exec(
            select(Flag, Clinic).where(Flag.clinic_id == Clinic.id,
                                       col(Flag.id).in_({r.flag_id for r in rows if r is not None})))}
    if not claimed:
        return counts
    providers = providers or _providers(settings, engine)
    for row in rows:
        assert row is not None
        counts[_send_one(engine, row, clinics.get(row.flag_id, ""), providers[row.channel], settings, clock)] += 1
    return counts


def _send_one(
    engine: Engine, row: FlagPage, clinic_name: str, provider: Provider, settings: Settings,
    clock: Callable[[], datetime],
) -> str:
    error: DeliveryError | None = None
    provider_id: str | None = None
    try:
        provider_id = provider.send(compose(row, clinic_name, settings)).provider_id
    except DeliveryError as exc:
        error = exc
    except Exception as exc:
        log.exception("page %s could not be sent", row.id)
        error = DeliveryError(f"{type(exc).__name__}: {exc}", FailureKind.ambiguous)
    with Session(engine, expire_on_commit=False) as session:
        fresh = session.get(FlagPage, row.id)
        assert fresh is not None
        now = clock()
        fresh.lease_expires_at = None
        fresh.provider = getattr(provider, "name", None)
        if error is None:
            fresh.status, fresh.provider_id, fresh.sent_at, fresh.error_code = (
                TouchpointStatus.sent, provider_id, now, None)
        elif error.kind in (FailureKind.retryable, FailureKind.ambiguous) and fresh.attempts < MAX_PAGE_ATTEMPTS:
            fresh.status, fresh.error_code = TouchpointStatus.scheduled, str(error.code or error.kind.value)[:40]
        else:
            fresh.status, fresh.error_code = TouchpointStatus.failed, str(error.code or error.kind.value)[:40]
            audit.record(session, actor=ACTOR, action="flag.page_failed", entity_type="flag", entity_id=fresh.flag_id,
                         page_id=fresh.id, channel=fresh.channel.value, error=str(error)[:200])
            log.error("page %s of flag %s failed for good: %s", fresh.id, fresh.flag_id, error)
        session.add(fresh)
        session.commit()
        return fresh.status.value


def rota_problems(session: Session, settings: Settings) -> list[str]:
    """Staff the on-call file names who are not active staff, or have no address for a page channel."""
    problems: list[str] = []
    loaded = current(settings)
    for slug, entry in loaded.clinics.items():
        names = {entry.admin} | {s.primary for s in entry.rota} | {s.backup for s in entry.rota}
        names |= {o.primary for o in entry.overrides} | {o.backup for o in entry.overrides}
        for email in sorted(names):
            staff = _by_email(session, email)
            if staff is None:
                problems.append(f"{slug}: {email} is not an active staff member")
            elif Channel.sms in entry.channels and not staff.phone:
                problems.append(f"{slug}: {email} has no phone, so gets email pages only")
    return problems
