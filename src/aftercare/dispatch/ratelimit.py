"""Send-rate pacing per sender, shared by every dispatcher through one database row.

The row holds the sender's next free slot (Unix seconds). Reserving n sends is one atomic UPDATE:
`next_slot = max(next_slot, now) + n / rate ... RETURNING next_slot`, so dispatchers in any number of
processes get disjoint, consecutive slots and the sender never exceeds `rate` messages per second (no
burst allowance: an idle sender starts from now). Each send then waits for its own slot. It works the
same on PostgreSQL (row lock for the statement) and SQLite (one writer at a time).

A dispatcher that dies after reserving only wastes its slots. In deployment mode Prefect's global
concurrency limits (`rate_limit("twilio-sms", strict=True)`) could pace instead, at one API round trip per
message and measured at about two thirds of the configured rate; this table costs one statement per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import case, literal, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import col

from aftercare.models import SendRate


def reserve(engine: Engine, *, sender: str, rate: float, count: int, now: float | None = None) -> list[float]:
    """Reserve `count` consecutive send slots for `sender` at `rate` per second; returns their times."""
    if count <= 0:
        return []
    if rate <= 0:
        start = time.time() if now is None else now
        return [start] * count
    now = time.time() if now is None else now
    span = count / rate
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        conn.execute(insert(SendRate).values(sender=sender, next_slot=0.0).on_conflict_do_nothing())
        current = col(SendRate.next_slot)
        end = conn.execute(
            update(SendRate)
            .where(col(SendRate.sender) == sender)
            .values(next_slot=case((current > now, current), else_=literal(now)) + span)
            .returning(col(SendRate.next_slot))
        ).scalar_one()
    start = float(end) - span
    return [start + i / rate for i in range(count)]


def wait_until(slot: float, sleep: Callable[[float], None] = time.sleep) -> None:
    delay = slot - time.time()
    if delay > 0:
        sleep(delay)
