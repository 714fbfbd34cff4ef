"""The inbound reader: reads every SMS the webhook stored and answered, right after the answer.

The webhook only checks the signature, stores the message and answers (Twilio waits for that answer, and a
slow one is retried); an opt-out is applied in the request itself. Everything else, HELP and START, linking the
patient, the survey or booking conversation, a task for a person and the request for triage, is done here
(`aftercare.webhooks.inbound.process_sms`): in `aftercare inbound` (AFTERCARE_INBOUND_READER=process, polling
every AFTERCARE_INBOUND_POLL_SECONDS), or in a thread of each web process that the webhook wakes (thread). The
database is the queue (`inbound_message.queued`): nothing is lost when a process dies; another reader or the
ticker's `inbound-tick` (after AFTERCARE_TRIAGE_GRACE_SECONDS) takes over.

Order: one sender's messages one at a time, oldest first (a conversation reads them as they were written);
across senders, the most concerning first by a first look at the words (`flags.service.text_rank`), so a red
flag is not kept waiting behind a burst of everyday texts.

Exactly once: each message is claimed in its own transaction (`UPDATE ... WHERE queued`; on PostgreSQL a second
process blocks on the row and then finds it done). A failure rolls back and is retried on the next round; after
MAX_ATTEMPTS the message is given up on: a person gets a task and triage reads it as free text, so a concerning
message is never dropped.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from aftercare import tasks
from aftercare.flags.intake import request_triage
from aftercare.flags.service import text_rank
from aftercare.models import InboundMessage, Patient, TriageRequest, TriageStatus
from aftercare.orchestration import wake_triage_if_pending
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.webhooks.inbound import process_sms

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
RESYNC_SECONDS = 1.0  # while busy, look at every queued message this often (not only at new ids)
RED_FLAG_RANK = 3  # urgent or emergency at first look
HOLD_SECONDS = 3.0  # at most this long, everyday texts wait for the triage of red flags read just before
_readers_running = 0  # InboundWorker loops running in this process (the ticker's inbound-tick then stands by)

Clock = Callable[[], datetime]


def _queued(engine: Engine, *, after: int, older_than: datetime | None) -> list[tuple[int, str, str]]:
    """(id, sender, body) of the queued messages with an id above `after`, oldest first."""
    inbound = InboundMessage.__table__  # type: ignore[attr-defined]
    statement = (select(inbound.c.id, inbound.c.from_number, inbound.c.body)
                 .where(inbound.c.queued.is_(True), inbound.c.id > after).order_by(inbound.c.id))
    if older_than is not None:
        statement = statement.where(inbound.c.received_at < older_than)
    with engine.connect() as conn:
        return [(int(row[0]), str(row[1]), str(row[2] or "")) for row in conn.execute(statement)]


@dataclass
class _Backlog:
    """What waits, in memory: each sender's messages in order, and a heap of senders by their most concerning
    message (a first look at its words), then by age. Only a sender's oldest message is ever handed out."""

    senders: dict[str, list[int]] = field(default_factory=dict)
    ranks: dict[int, int] = field(default_factory=dict)
    heap: list[tuple[int, int, str]] = field(default_factory=list)  # (-rank, id of the oldest, sender)
    blocked: set[str] = field(default_factory=set)  # a message of theirs failed: the rest waits for a later call
    last_id: int = 0

    def add(self, rows: list[tuple[int, str, str]]) -> None:
        for inbound_id, sender, body in rows:
            self.last_id = max(self.last_id, inbound_id)
            if inbound_id in self.ranks:
                continue
            self.ranks[inbound_id] = text_rank(body)
            bisect.insort(self.senders.setdefault(sender, []), inbound_id)
            self._push(sender)

    def _push(self, sender: str) -> None:
        ids = self.senders.get(sender)
        if ids and sender not in self.blocked:
            heapq.heappush(self.heap, (-max(self.ranks[i] for i in ids), ids[0], sender))

    def sender_rank(self, sender: str) -> int:
        return max((self.ranks[i] for i in self.senders.get(sender, [])), default=0)

    def next(self) -> tuple[int, str] | None:
        while self.heap:
            _, inbound_id, sender = heapq.heappop(self.heap)
            ids = self.senders.get(sender)
            if ids and ids[0] == inbound_id and sender not in self.blocked:  # else an entry gone stale
                return inbound_id, sender
        return None

    def done(self, inbound_id: int, sender: str, *, ok: bool) -> None:
        ids = self.senders[sender]
        ids.remove(inbound_id)
        if not ok:
            self.blocked.add(sender)
        elif ids:
            self._push(sender)
        else:
            del self.senders[sender]


def process_queued(
    settings: Settings,
    engine: Engine,
    *,
    stop: threading.Event | None = None,
    on_reply: Callable[[], None] | None = None,
    clock: Clock = utcnow,
    older_than: datetime | None = None,
) -> Counter[str]:
    """Read every queued message (and those that arrive meanwhile), the most concerning sender first; with
    `older_than`, only those received before it. Returns counts: processed, replied, quiet (no reply), taken (by
    another reader), failed, given_up. One message at a time: more readers are more processes (on 2 cores three
    reader threads made nothing faster, bench/README.md).

    New arrivals are picked up before each message (a query on ids above the last seen), and every queued
    message now and then and before returning, since ids are not committed in order."""
    counts: Counter[str] = Counter()
    backlog = _Backlog()
    red_flags: list[int] = []  # read here, maybe not triaged yet
    began = resynced = time.monotonic()
    backlog.add(_queued(engine, after=0, older_than=older_than))
    while stop is None or not stop.is_set():
        if time.monotonic() - resynced > RESYNC_SECONDS:
            backlog.add(_queued(engine, after=0, older_than=older_than))
            resynced = time.monotonic()
        else:
            backlog.add(_queued(engine, after=backlog.last_id, older_than=older_than))
        chosen = backlog.next()
        if chosen is None:  # before returning, everything once more (a lower id may have committed late)
            backlog.add(_queued(engine, after=0, older_than=older_than))
            chosen = backlog.next()
            if chosen is None:
                break
        inbound_id, sender = chosen
        if red_flags and backlog.sender_rank(sender) < RED_FLAG_RANK:
            counts["held_ms"] += _hold_for_triage(engine, red_flags, stop)
            red_flags.clear()
        outcome = _process_one(settings, engine, inbound_id, clock)
        counts[outcome] += 1
        backlog.done(inbound_id, sender, ok=outcome != "failed")
        if outcome in ("quiet", "replied") and backlog.ranks[inbound_id] >= RED_FLAG_RANK:
            red_flags.append(inbound_id)
        if outcome == "replied" and on_reply is not None:
            on_reply()
    counts["processed"] = counts["replied"] + counts["quiet"]
    if counts["processed"] or counts["failed"]:
        log.info("read %d inbound SMS in %.2f s (%d ranked); %s", counts["processed"], time.monotonic() - began,
                 len(backlog.ranks), dict(counts))
    return counts


def _hold_for_triage(engine: Engine, red_flags: list[int], stop: threading.Event | None) -> int:
    """Before an everyday text: wait (at most HOLD_SECONDS) until the red flags read just before are triaged, so
    a reader sharing its process (and its interpreter lock) with triage does not slow the page down. Returns the
    milliseconds waited."""
    started = time.monotonic()
    table = TriageRequest.__table__  # type: ignore[attr-defined]
    waiting = (select(table.c.id).where(table.c.source_kind == "message", table.c.source_id.in_(red_flags),
                                        table.c.status.in_((TriageStatus.pending, TriageStatus.running)))
               .limit(1))
    while time.monotonic() - started < HOLD_SECONDS and (stop is None or not stop.is_set()):
        with engine.connect() as conn:
            if conn.execute(waiting).first() is None:
                break
        time.sleep(0.02)
    return round((time.monotonic() - started) * 1000)


def _process_one(settings: Settings, engine: Engine, inbound_id: int, clock: Clock) -> str:
    try:
        with Session(engine, expire_on_commit=False) as session:
            claim = session.execute(
                update(InboundMessage).where(col(InboundMessage.id) == inbound_id, col(InboundMessage.queued).is_(True))
                .values(processed_at=clock())
            )
            if not getattr(claim, "rowcount", 0):  # another worker read it (we waited for its commit on PostgreSQL)
                return "taken"
            result = process_sms(session, inbound_id=inbound_id, settings=settings)
            session.commit()
    except Exception as exc:
        log.exception("reading inbound SMS %s failed; it will be retried", inbound_id)
        return _failed(engine, inbound_id, exc, clock)
    return "replied" if result.reply_id is not None else "quiet"


def _failed(engine: Engine, inbound_id: int, exc: Exception, clock: Clock) -> str:
    """Count the failure; at MAX_ATTEMPTS give up: a task for a person and triage of the raw words."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            inbound = session.get(InboundMessage, inbound_id)
            if inbound is None or not inbound.queued:
                return "failed"
            inbound.process_attempts += 1
            inbound.process_error = f"{type(exc).__name__}: {exc}"[:2000]
            if inbound.process_attempts < MAX_ATTEMPTS:
                session.commit()
                return "failed"
            inbound.queued = False
            inbound.processed_at = clock()
            patient = session.scalars(
                select(Patient).where(col(Patient.phone_e164) == inbound.from_number)
                .order_by(col(Patient.updated_at).desc())
            ).first()
            inbound.patient_id = inbound.patient_id or (patient.id if patient else None)
            inbound.clinic_id = inbound.clinic_id or (patient.clinic_id if patient else None)
            tasks.open_task(
                session, kind="inbound_unreadable", title="An SMS could not be read automatically",
                clinic_id=inbound.clinic_id, patient_id=inbound.patient_id, inbound_id=inbound_id,
                detail=f"Read it and answer the patient. The error was: {inbound.process_error}",
                dedupe_key=f"inbound_unreadable:{inbound_id}",
            )
            if inbound.patient_id is not None:
                request_triage(session, source_kind="message", source_id=inbound_id, patient_id=inbound.patient_id,
                               text_kind="free_text")
            session.add(inbound)
            session.commit()
            log.error("gave up reading inbound SMS %s after %d attempts; a task is open", inbound_id,
                      inbound.process_attempts)
            return "given_up"
    except Exception:
        log.exception("could not record the failure of inbound SMS %s; the next round retries it", inbound_id)
        return "failed"


def process_and_reply(
    settings: Settings, engine: Engine, *, clock: Clock = utcnow, older_than: datetime | None = None
) -> Counter[str]:
    """Read what is queued and send the replies now, in this thread (the ticker's `inbound-tick`, tests)."""
    from aftercare.dispatch.replies import send_replies

    counts = process_queued(settings, engine, clock=clock, older_than=older_than)
    if counts["replied"]:
        counts.update({f"reply_{k}": v for k, v in send_replies(settings, engine=engine).items()})
    return counts


class InboundWorker:
    """The reader loop: `run()` in the foreground (`aftercare inbound`) or `start()` as a thread of a web process
    (woken by the webhook after each stored message); either also looks every AFTERCARE_INBOUND_POLL_SECONDS."""

    def __init__(
        self, settings: Settings, engine: Engine, *, triage_home: bool = False, heartbeat: Path | None = None
    ) -> None:
        """`triage_home`: this is `aftercare inbound`, which also triages what the web app stored. `heartbeat`: a
        file touched after every round (a container health check looks at its age)."""
        self.settings, self.engine, self.triage_home, self.heartbeat = settings, engine, triage_home, heartbeat
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replies = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aftercare-replies")
        self._reply_lock = threading.Lock()
        self._reply_queued = False

    def start(self) -> InboundWorker:
        self._thread = threading.Thread(target=self.run, name="aftercare-inbound", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Let `run()` return after the message it is reading (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._replies.shutdown(wait=True)

    def run(self) -> None:
        """Read until `stop()`."""
        global _readers_running
        _readers_running += 1
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    process_queued(self.settings, self.engine, stop=self._stop, on_reply=self._reply_soon)
                except Exception:  # the database is down, say: the next round tries again
                    log.exception("the inbound reader's round failed; retrying in %s s",
                                  self.settings.inbound_poll_seconds)
                if self.heartbeat is not None:
                    self.heartbeat.touch()
                if self.triage_home:
                    try:
                        wake_triage_if_pending(self.settings, self.engine)
                    except Exception:
                        log.exception("could not look for pending triage; the ticker's flags-tick catches up")
                self._wake.wait(self.settings.inbound_poll_seconds)
        finally:
            _readers_running -= 1

    def _reply_soon(self) -> None:
        """Send the queued replies on the reply thread (one send at a time; requests while one waits join it)."""
        with self._reply_lock:
            if self._reply_queued:
                return
            self._reply_queued = True
        try:
            self._replies.submit(self._send_replies)
        except RuntimeError:  # shutting down: the dispatcher sends them
            pass

    def _send_replies(self) -> None:
        from aftercare.dispatch.replies import send_replies

        with self._reply_lock:
            self._reply_queued = False
        try:
            send_replies(self.settings, engine=self.engine)
        except Exception:
            log.exception("sending replies failed; the dispatcher retries")


def inbound_tick(settings: Settings, *, clock: Clock = utcnow) -> Counter[str]:
    """The ticker's safety net: read what no reader has read within AFTERCARE_TRIAGE_GRACE_SECONDS (the reader
    process is down, say). With AFTERCARE_INBOUND_READER=ticker, the only reader: then everything queued."""
    from aftercare.db import get_engine

    if _readers_running:  # a reader runs in this process (`aftercare inbound --ticker`): nothing to catch up on
        return Counter()
    grace = None if settings.inbound_reader == "ticker" else clock() - timedelta(seconds=settings.triage_grace_seconds)
    return process_and_reply(settings, get_engine(), clock=clock, older_than=grace)
