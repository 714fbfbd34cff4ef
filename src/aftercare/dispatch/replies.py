"""Sending answers to inbound SMS (HELP, opt-out confirmation, unknown sender) from `outbound_reply`.

At most once: a reply is claimed like a touchpoint (SKIP LOCKED / compare-and-set), sent once, and a
retryable refusal (429, connect error) is tried again on a later run, up to three calls. An ambiguous
send or a reply left `sending` by a dead process is marked failed, never resent: a lost courtesy reply
is better than a second one. Quiet hours and the daily cap do not apply (the patient just wrote to us).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from aftercare.db import get_engine
from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, Provider
from aftercare.models import Channel, Clinic, OutboundReply, TouchpointStatus
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
MAX_REPLY_ATTEMPTS = 3
REPLY_LEASE_SECONDS = 120
ReplyComposer = Callable[[OutboundReply, Clinic | None], OutboundMessage]


def claim_replies(session: Session, *, owner: str, now: datetime, limit: int) -> list[int]:
    due = (
        sa_select(col(OutboundReply.id))
        .where(col(OutboundReply.status) == TouchpointStatus.scheduled)
        .order_by(col(OutboundReply.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(OutboundReply)
        .where(col(OutboundReply.id).in_(due.scalar_subquery()))
        .where(col(OutboundReply.status) == TouchpointStatus.scheduled)
        .values(
            status=TouchpointStatus.sending, lease_owner=owner, attempts=col(OutboundReply.attempts) + 1,
            lease_expires_at=now + timedelta(seconds=REPLY_LEASE_SECONDS), updated_at=now,
        )
        .returning(col(OutboundReply.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(row[0]) for row in session.execute(statement))


def give_up_abandoned(session: Session, *, now: datetime) -> int:
    """Replies a dead process left `sending`: failed, not resent (see the module docstring)."""
    result = session.execute(
        update(OutboundReply)
        .where(
            col(OutboundReply.status) == TouchpointStatus.sending,
            col(OutboundReply.provider_id).is_(None),
            col(OutboundReply.lease_expires_at) < now,
        )
        .values(status=TouchpointStatus.failed, error_code="abandoned", lease_owner=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def send_replies(
    settings: Settings,
    *,
    engine: Engine | None = None,
    providers: Mapping[Channel, Provider] | None = None,
    compose: ReplyComposer | None = None,
    owner: str = "replies",
    clock: Callable[[], datetime] = utcnow,
    limit: int = 200,
) -> Counter[str]:
    """Send the pending replies now. Returns counts by outcome."""
    from aftercare.dispatch.compose import reply_composer
    from aftercare.messaging.registry import providers as configured_providers

    engine = engine or get_engine()
    counts: Counter[str] = Counter()
    with Session(engine, expire_on_commit=False) as session:
        abandoned = give_up_abandoned(session, now=clock())
        if abandoned:
            counts["abandoned"] += abandoned
        ids = claim_replies(session, owner=owner, now=clock(), limit=limit)
        session.commit()
    if not ids:
        return counts
    providers = providers or configured_providers(settings, engine=engine)
    compose = compose or reply_composer(settings)
    for reply_id in ids:
        with Session(engine, expire_on_commit=False) as session:
            reply = session.get(OutboundReply, reply_id)
            assert reply is not None
            clinic = session.get(Clinic, reply.clinic_id) if reply.clinic_id else None
        counts[_send_one(engine, reply, clinic, providers[reply.channel], compose, clock)] += 1
    return counts


def _send_one(
    engine: Engine,
    reply: OutboundReply,
    clinic: Clinic | None,
    provider: Provider,
    compose: ReplyComposer,
    clock: Callable[[], datetime],
) -> str:
    error: DeliveryError | None = None
    provider_id = status = None
    try:
        receipt = provider.send(compose(reply, clinic))
        provider_id, status = receipt.provider_id, TouchpointStatus.sent
    except DeliveryError as exc:
        error = exc
    except Exception as exc:
        log.exception("reply %s: could not be sent", reply.id)
        error = DeliveryError(f"{type(exc).__name__}: {exc}", FailureKind.ambiguous)
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(OutboundReply, reply.id)
        assert row is not None
        now = clock()
        row.lease_owner, row.lease_expires_at, row.updated_at = None, None, now
        if error is None:
            row.status, row.provider_id, row.sent_at = TouchpointStatus.sent, provider_id, now
        elif error.kind == FailureKind.retryable and row.attempts < MAX_REPLY_ATTEMPTS:
            row.status, row.error_code = TouchpointStatus.scheduled, str(error.code or error.kind.value)[:40]
        else:
            row.status, row.error_code = TouchpointStatus.failed, str(error.code or error.kind.value)[:40]
        session.add(row)
        session.commit()
        return "sent" if status else row.status.value
