"""The console outbox: a channel without credentials stores what it would have sent (staff page: /outbox)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from aftercare.db import get_engine
from aftercare.messaging.base import DeliveryError, FailureKind, OutboundMessage, SendReceipt
from aftercare.messaging.mask import mask_address
from aftercare.models import Channel, OutboxMessage

log = logging.getLogger(__name__)


class ConsoleOutbox:
    """Stores each message once (idempotent on message_id) and logs one masked line."""

    name = "console"
    reconciles = True

    def __init__(self, channel: Channel, engine: Engine | None = None) -> None:
        self.channel = channel
        self._engine = engine

    def send(self, message: OutboundMessage) -> SendReceipt:
        if message.channel != self.channel:
            raise DeliveryError(f"{message.channel} message given to the {self.channel} outbox", FailureKind.rejected)
        row = OutboxMessage(
            message_id=message.message_id,
            channel=message.channel,
            to=message.to,
            subject=message.subject,
            body=message.body,
            html=message.html,
        )
        with Session(self._engine or get_engine(), expire_on_commit=False) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = self._stored(session, message.message_id)
                if existing is None:
                    raise
                return _receipt(existing)
        log.info("console %s %s to %s (%d chars) stored as console-%s", self.channel.value, message.message_id,
                 mask_address(message.to), len(message.body), row.id)
        return _receipt(row)

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        with Session(self._engine or get_engine()) as session:
            row = self._stored(session, message.message_id)
        return _receipt(row) if row is not None else None

    @staticmethod
    def _stored(session: Session, message_id: str) -> OutboxMessage | None:
        return session.exec(select(OutboxMessage).where(col(OutboxMessage.message_id) == message_id)).first()


def _receipt(row: OutboxMessage) -> SendReceipt:
    return SendReceipt(provider_id=f"console-{row.id}", status="stored")

