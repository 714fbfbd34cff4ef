"""Escalation timers: an urgent or emergency flag nobody acknowledged pages the next person.

Paging level 0 (the primary on call) sets `next_escalation_at` to `backup_after_minutes` later; when it passes
and the flag is still open, the backup is paged (level 1) and the timer set to `admin_after_minutes`; then the
admin (level 2), after which the timer stops. Acknowledging the flag clears the timer. The timer lives in the
flag row, so any ticker (embedded APScheduler, the `flags-tick` deployment) may run this; the row lock makes
two runs at once page a level once (the
step is claimed by a conditional UPDATE before anything is paged).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from aftercare import audit
from aftercare.db import get_engine
from aftercare.flags import paging
from aftercare.models import Flag, FlagStatus
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
ACTOR = "escalation"
BATCH = 200


def escalate_due(
    settings: Settings, *, engine: Engine | None = None, clock: Callable[[], datetime] | None = None,
) -> Counter[str]:
    """Page the next level of every open flag whose timer has passed; returns counts (escalated, pages ...)."""
    engine = engine or get_engine()
    now = (clock or utcnow)()
    counts: Counter[str] = Counter()
    page_ids: list[int] = []
    with Session(engine) as session:
        due = list(session.exec(
            select(Flag.id)
            .where(Flag.status == FlagStatus.open, col(Flag.next_escalation_at).is_not(None),
                   col(Flag.next_escalation_at) <= now)
            .order_by(col(Flag.next_escalation_at))
            .limit(BATCH)
        ))
    for flag_id in due:
        with Session(engine, expire_on_commit=False) as session:
            if flag_id is None or not _claim(session, flag_id, now):
                continue  # acknowledged meanwhile, or another ticker took it
            flag = session.get(Flag, flag_id)
            assert flag is not None
            level = flag.escalation_level + 1
            if level <= 2:
                pages = paging.page(session, flag, level=level, settings=settings, now=now)
                page_ids.extend(p.id for p in pages if p.id is not None)
                audit.record(session, actor=ACTOR, action="flag.escalated", entity_type="flag", entity_id=flag.id,
                             level=flag.escalation_level, pages=len(pages))
                counts["escalated"] += 1
                log.warning("flag %s not acknowledged: escalated to level %d (%d page(s))", flag.id,
                            flag.escalation_level, len(pages))
            session.commit()
    if page_ids:
        counts.update({f"page_{k}": v for k, v in paging.send_pages(settings, engine=engine, ids=page_ids,
                                                                   clock=clock or utcnow).items()})
    return counts


def _claim(session: Session, flag_id: int, now: datetime) -> bool:
    """Take this escalation step (the transaction's first statement, so it waits for any writer of the row and
    then sees its result): False when the flag was acknowledged or another run took the step."""
    result = session.execute(
        update(Flag)
        .where(col(Flag.id) == flag_id, col(Flag.status) == FlagStatus.open,
               col(Flag.next_escalation_at).is_not(None), col(Flag.next_escalation_at) <= now)
        .values(next_escalation_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
