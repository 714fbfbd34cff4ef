"""Triage of stored answers and free-text messages into flags: claim requests, evaluate, act, hand pages over.

`triage_requests(settings, ids)` is the body of the `triage-response` flow and of the ticker's safety net:

1. claim the requests (these ids, or every pending one, the most concerning first; leases so two runs never
   triage one source twice; SKIP LOCKED on PostgreSQL);
2. per request, in its own transaction: load the source and its context, `aftercare.triage.evaluate` it, act
   on the rules it newly fired (flags.actions: flag, pages, patient texts, tasks), store the result on the
   request (severity, rules, the dry-run dict) and mark it done. Idempotent per source: a request is done once,
   and a survey answer only acts on rules the earlier answers of the same survey had not fired;
3. hand each request's pages (and the patient's texts) to the providers as soon as it commits.

A request that fails is retried (the ticker) up to MAX_ATTEMPTS times, then marked failed with a high-priority
task for a coordinator to read the message: nothing a patient wrote is left unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from aftercare import tasks
from aftercare.db import get_engine
from aftercare.flags import actions, inputs, paging
from aftercare.models import InboundMessage, SurveyAnswer, TaskPriority, TriageRequest, TriageStatus
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.triage import FiredRule, TriageInput, evaluate

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
LEASE_SECONDS = 120
ROUND = 20  # requests claimed at a time (then the most urgent pending ones are chosen again)
BACKLOG = 2000  # pending requests looked at when choosing
SENDERS = 4  # threads handing pages and patient texts to the providers while triage goes on
TRIAGERS = 2  # patients triaged at once within a round (each waits on the database most of the time)
WAKEUP = threading.Event()  # set when requests are stored in this process: a lingering run goes on at once
STOPPING = threading.Event()  # set when this process shuts down: a lingering run ends after its round


@dataclass
class TriageReport:
    """Counts of one run (printed by the flow and the ticker)."""

    claimed: int = 0
    severities: Counter[str] = field(default_factory=Counter)
    flags: list[int] = field(default_factory=list)
    pages: Counter[str] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "severities": dict(self.severities), "flags": self.flags,
                "pages": dict(self.pages), "replies": dict(self.replies), "failed": self.failed,
                "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        tiers = ", ".join(f"{k} {v}" for k, v in sorted(self.severities.items())) or "nothing"
        return (f"{self.claimed} triaged ({tiers}), {len(self.flags)} flag(s), {sum(self.pages.values())} page(s), "
                f"{self.failed} failed, {self.seconds:.2f} s")


def claim(
    session: Session, *, now: datetime, ids: Sequence[int] | None = None, older_than: datetime | None = None,
    limit: int = 500,
) -> list[int]:
    """Pending requests (or running ones whose lease ran out), leased to this run; oldest first."""
    query = sa_select(col(TriageRequest.id)).where(
        (col(TriageRequest.status) == TriageStatus.pending)
        | ((col(TriageRequest.status) == TriageStatus.running) & (col(TriageRequest.lease_expires_at) < now))
    )
    if ids is not None:
        query = query.where(col(TriageRequest.id).in_(list(ids)))
    if older_than is not None:
        query = query.where(col(TriageRequest.created_at) <= older_than)
    query = query.order_by(col(TriageRequest.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    statement = (
        update(TriageRequest)
        .where(col(TriageRequest.id).in_(query.scalar_subquery()))
        .values(status=TriageStatus.running, attempts=col(TriageRequest.attempts) + 1,
                lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
        .returning(col(TriageRequest.id))
        .execution_options(synchronize_session=False)
    )
    return sorted(int(row[0]) for row in session.execute(statement))


def earlier_rules(session: Session, request: TriageRequest, response_id: int | None) -> set[str]:
    """Rules already acted on for the same survey response (answers are triaged with all answers so far)."""
    if response_id is None:
        return set()
    rows = session.exec(
        select(TriageRequest.rules)
        .join(SurveyAnswer, col(SurveyAnswer.id) == col(TriageRequest.source_id))
        .where(TriageRequest.source_kind == "answer", SurveyAnswer.response_id == response_id,
               TriageRequest.status == TriageStatus.done, TriageRequest.id != request.id)
    )
    return {rule for rules in rows for rule in (rules or [])}


@dataclass
class _Done:
    severity: str
    flag_id: int | None
    page_ids: list[int]
    told: bool = False  # a text to the patient was queued (emergency, acknowledgement, education)


def triage_one(session: Session, request_id: int, *, settings: Settings, now: datetime) -> _Done:
    """Triage one claimed request in the caller's transaction."""
    request = session.get(TriageRequest, request_id)
    assert request is not None
    try:
        source = inputs.load(session, request)
    except inputs.SourceGone as exc:
        request.status, request.error, request.triaged_at, request.lease_expires_at = (
            TriageStatus.done, str(exc)[:300], now, None)
        session.add(request)
        return _Done("none", None, [])
    result = evaluate(source.input)
    seen = earlier_rules(session, request, source.response.id if source.response else None)
    fresh: list[FiredRule] = [f for f in result.fired if f.id not in seen]
    outcome = actions.act(session, source=source, result=result, fired=fresh, settings=settings, now=now)
    request.severity = result.severity
    request.rules = result.rules
    request.result = {**result.to_dict(), "new_rules": [f.id for f in fresh], "day": source.input.day,
                      "told": outcome.told, "tasks": outcome.tasks}
    request.flag_id = outcome.flag.id if outcome.flag else None
    request.status, request.triaged_at, request.lease_expires_at, request.error = TriageStatus.done, now, None, None
    session.add(request)
    session.flush()
    told = outcome.told is not None and outcome.told != "not_possible"
    return _Done(result.severity, request.flag_id, [p.id for p in outcome.pages if p.id is not None], told)


def _failed(engine: Engine, request_id: int, error: BaseException, now: datetime) -> None:
    with Session(engine, expire_on_commit=False) as session:
        request = session.get(TriageRequest, request_id)
        if request is None:
            return
        request.error = f"{type(error).__name__}: {error}"[:300]
        request.lease_expires_at = None
        if request.attempts >= MAX_ATTEMPTS:
            request.status = TriageStatus.failed
            task = tasks.open_task(
                session, kind="triage_failed", title="A patient's message could not be triaged: read it now",
                patient_id=request.patient_id,
                inbound_id=request.source_id if request.source_kind == "message" else None,
                detail=f"{request.source_kind} {request.source_id}: {request.error}",
                dedupe_key=f"triage_failed:{request.id}",
            )
            task.priority = TaskPriority.high
            session.add(task)
        else:
            request.status = TriageStatus.pending
        session.add(request)
        session.commit()


def urgency(session: Session, pending: Sequence[int], known: dict[int, int]) -> None:
    """A first look at each pending request, from its words alone (no context: day 0, no history): the rank its
    text or answer would get. Used only to choose what to triage first when a backlog builds; `known` is
    filled in place (requests looked at before are not read again)."""
    new = [i for i in pending if i not in known]
    if not new:
        return
    rows = session.exec(select(TriageRequest.id, TriageRequest.source_kind, TriageRequest.source_id)
                        .where(col(TriageRequest.id).in_(new))).all()
    messages = {sid: rid or 0 for rid, kind, sid in rows if kind == "message"}
    answers = {sid: rid or 0 for rid, kind, sid in rows if kind == "answer"}
    for sid, body in session.exec(select(InboundMessage.id, InboundMessage.body)
                                  .where(col(InboundMessage.id).in_(list(messages)))):
        known[messages[sid or 0]] = text_rank(body)
    for sid, item, value, raw in session.exec(
            select(SurveyAnswer.id, SurveyAnswer.item_id, SurveyAnswer.value, SurveyAnswer.raw_text)
            .where(col(SurveyAnswer.id).in_(list(answers)))):
        known[answers[sid or 0]] = _rank(TriageInput(day=FIRST_LOOK_DAY, answers=inputs.valid_answers({item: value}),
                                                     text=(raw or "")[:5000] or None, text_kind="answer"))
    for request_id in new:
        known.setdefault(request_id, 0)


FIRST_LOOK_DAY = 7.0  # past the day-0 and 72-hour thresholds, inside the 3-week fever window: the most rules fire


def text_rank(body: str | None) -> int:
    """A first look at a message's words alone (on day FIRST_LOOK_DAY, no history): the rank triage would give
    them. Only for choosing what to read and triage first when a backlog builds."""
    return _rank(TriageInput(day=FIRST_LOOK_DAY, text=(body or "")[:5000] or None, text_kind="free_text"))


def _rank(inp: TriageInput) -> int:
    try:
        return evaluate(inp).rank
    except Exception:  # a first look only; the real triage reports its own problems
        return 0


def _pending(
    session: Session, *, now: datetime, ids: Sequence[int] | None, older_than: datetime | None, limit: int
) -> list[int]:
    query = select(TriageRequest.id).where(
        (col(TriageRequest.status) == TriageStatus.pending)
        | ((col(TriageRequest.status) == TriageStatus.running) & (col(TriageRequest.lease_expires_at) < now))
    )
    if ids is not None:
        query = query.where(col(TriageRequest.id).in_(list(ids)))
    if older_than is not None:
        query = query.where(col(TriageRequest.created_at) <= older_than)
    return [i for i in session.exec(query.order_by(col(TriageRequest.id)).limit(limit)) if i is not None]


def triage_requests(
    settings: Settings,
    request_ids: Sequence[int] | None = None,
    *,
    engine: Engine | None = None,
    older_than: datetime | None = None,
    clock: Callable[[], datetime] = utcnow,
    send: bool = True,
    linger_seconds: float = 0.0,
) -> TriageReport:
    """Triage these requests (None: every pending one, including those that arrive while this runs).

    Rounds of ROUND requests, the most concerning first (`urgency`), so a red flag behind a backlog of everyday
    messages is not kept waiting. A request's pages (and the patient's texts) are handed to the providers as soon
    as its transaction commits, on a few sender threads, while triage goes on. With `linger_seconds`, when nothing
    is left the run waits that long for `WAKEUP` (set in this process when new requests are stored) before ending.
    """
    started = time.perf_counter()
    engine = engine or get_engine()
    report = TriageReport()
    ranks: dict[int, int] = {}
    attempted: set[int] = set()
    sending: list[Future[tuple[str, Counter[str]]]] = []
    with (ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="aftercare-pages") as senders,
          ThreadPoolExecutor(max_workers=TRIAGERS, thread_name_prefix="aftercare-triage-one") as triagers):
        while True:
            with Session(engine, expire_on_commit=False) as session:
                pending = _pending(session, now=clock(), ids=request_ids, older_than=older_than, limit=BACKLOG)
                if len(pending) > 1:  # an order to choose only when several wait
                    urgency(session, pending, ranks)
            fresh = [i for i in pending if i not in attempted]  # a failure waits for a later run (the ticker)
            chosen = sorted(fresh, key=lambda i: (-ranks.get(i, 0), i))[:ROUND]
            if not chosen:
                if (request_ids is None and linger_seconds > 0 and not STOPPING.is_set()
                        and WAKEUP.wait(timeout=linger_seconds) and not STOPPING.is_set()):
                    WAKEUP.clear()
                    continue
                break
            with Session(engine, expire_on_commit=False) as session:
                ids = claim(session, now=clock(), ids=chosen)
                session.commit()
            if not ids:  # another run took them
                attempted.update(chosen)
                continue
            report.claimed += len(ids)
            attempted.update(ids)

            def one_patient(request_ids: list[int]) -> None:
                for request_id in request_ids:
                    done = _triage_and_commit(engine, request_id, settings, clock, report)
                    if done is None or not send:
                        continue
                    with report.lock:
                        if done.page_ids:
                            sending.append(senders.submit(_pages, settings, engine, done.page_ids, clock))
                        if done.told:
                            sending.append(senders.submit(_replies, settings, engine, clock))

            list(triagers.map(one_patient, _by_patient(engine, sorted(ids, key=lambda i: (-ranks.get(i, 0), i)))))
        if send and report.claimed:
            sending.append(senders.submit(_replies, settings, engine, clock))  # education replies and the rest
        for future in sending:
            kind, counts = future.result()
            (report.pages if kind == "pages" else report.replies).update(counts)
    report.seconds = time.perf_counter() - started
    if report.claimed:
        log.info("triage: %s", report.summary())
    return report


def _triage_and_commit(
    engine: Engine, request_id: int, settings: Settings, clock: Callable[[], datetime], report: TriageReport
) -> _Done | None:
    try:
        with Session(engine, expire_on_commit=False) as session:
            done = triage_one(session, request_id, settings=settings, now=clock())
            session.commit()
    except Exception as exc:
        log.exception("triage of request %s failed; it will be retried", request_id)
        with report.lock:
            report.failed += 1
        _failed(engine, request_id, exc, clock())
        return None
    with report.lock:
        report.severities[done.severity] += 1
        if done.flag_id is not None and done.flag_id not in report.flags:
            report.flags.append(done.flag_id)
    return done


def _by_patient(engine: Engine, ordered: list[int]) -> list[list[int]]:
    """The claimed requests in groups of one patient each (triaged one after the other: a survey's answers see
    each other's flags), the groups in the order of their first, most urgent, request."""
    with Session(engine) as session:
        owner = dict(session.exec(select(TriageRequest.id, TriageRequest.patient_id)
                                  .where(col(TriageRequest.id).in_(ordered))).all())
    groups: dict[object, list[int]] = {}
    for request_id in ordered:
        patient = owner.get(request_id)
        groups.setdefault(patient if patient is not None else ("request", request_id), []).append(request_id)
    return list(groups.values())


def _pages(settings: Settings, engine: Engine, ids: list[int],
           clock: Callable[[], datetime]) -> tuple[str, Counter[str]]:
    try:
        return "pages", paging.send_pages(settings, engine=engine, ids=ids, clock=clock)
    except Exception:  # the ticker resends queued pages
        log.exception("sending pages %s failed; the ticker retries", ids)
        return "pages", Counter({"error": len(ids)})


def _replies(settings: Settings, engine: Engine, clock: Callable[[], datetime]) -> tuple[str, Counter[str]]:
    return "replies", _send_replies(settings, engine, clock)


def _send_replies(settings: Settings, engine: Engine, clock: Callable[[], datetime]) -> Counter[str]:
    from aftercare.dispatch.replies import send_replies

    try:
        return send_replies(settings, engine=engine, owner="triage", clock=clock)
    except Exception:  # the dispatcher sends them on its next run
        log.exception("sending triage replies failed; the dispatcher retries")
        return Counter()


def triage_stragglers(settings: Settings, *, engine: Engine | None = None,
                      clock: Callable[[], datetime] = utcnow) -> TriageReport:
    """Ticker job: requests still pending after AFTERCARE_TRIAGE_GRACE_SECONDS (their flow never ran), triaged here."""
    return triage_requests(settings, engine=engine, clock=clock,
                           older_than=clock() - timedelta(seconds=settings.triage_grace_seconds))
