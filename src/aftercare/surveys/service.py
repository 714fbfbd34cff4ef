"""`tick(settings)`: the survey housekeeping run by the ticker (job `surveys-tick`), the `surveys-tick`
Prefect deployment and `aftercare surveys tick`.

One run, each step in its own short transaction:
1. open responses whose invitation went out (a newer check-in closes an older one; SMS ones become the
   patient's conversation);
2. close windows: missed / closed responses, and the coordinator tasks repeated misses call for;
3. create the reminder touchpoints that are due (the dispatcher sends them);
4. text the pending first question of SMS surveys (and resume a paused one), inside send hours.
Questions queued in step 4 are sent at once (`dispatch.replies`); the dispatcher would send them on its
next run anyway. Safe to run concurrently: every change re-checks the row it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from aftercare.db import get_engine
from aftercare.settings import Settings
from aftercare.surveys.conversation import ask_pending
from aftercare.surveys.responses import activate_sent
from aftercare.surveys.windows import close_windows, due_reminders
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    opened: int = 0
    ended: int = 0
    reminders: int = 0
    questions: int = 0
    sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def tick(
    settings: Settings,
    *,
    engine: Engine | None = None,
    now: datetime | None = None,
    send: bool = True,
    clock: Callable[[], datetime] = utcnow,
) -> TickReport:
    """One housekeeping run (see the module docstring). `now` fixes the clock (tests, replays)."""
    engine = engine or get_engine()
    at = now or clock()
    report = TickReport()
    steps: list[tuple[str, Callable[[Session], int]]] = [
        ("opened", lambda s: activate_sent(s, settings=settings, now=at)),
        ("ended", lambda s: close_windows(s, settings=settings, now=at)),
        ("reminders", lambda s: due_reminders(s, settings=settings, now=at)),
        ("questions", lambda s: ask_pending(s, settings=settings, now=at)),
    ]
    for name, step in steps:
        with Session(engine, expire_on_commit=False) as session:
            setattr(report, name, step(session))
            session.commit()
    if send and report.questions:
        from aftercare.dispatch.replies import send_replies

        report.sent = send_replies(settings, engine=engine, clock=lambda: now or clock())["sent"]
    if any(report.as_dict().values()):
        log.info("surveys tick: %s", report.as_dict())
    return report


def surveys_tick(settings: Settings) -> TickReport:
    """The ticker's job."""
    return tick(settings)
