"""The hook: every stored survey answer and every free-text message asks to be triaged, in the writer's transaction.

    intake.request_triage(session, source_kind="answer", source_id=answer.id, patient_id=...)

writes one `triage_request` row (a second call for the same source changes nothing) and, once that transaction
commits, starts the `triage-response` flow for it (`aftercare.orchestration.start_triage_flow`, as
AFTERCARE_FLOW_MODE says). The request row is the record: if the flow cannot start, or dies, the ticker triages
what is still pending after AFTERCARE_TRIAGE_GRACE_SECONDS. A rolled-back transaction stores nothing and starts
nothing useful (a start finds no pending request and returns).
"""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from aftercare.models import TriageRequest, TriageStatus
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
SourceKind = Literal["answer", "message"]
TextKind = Literal["free_text", "keyword", "answer"]
_PENDING_KEY = "aftercare.triage_requests"
_LISTENING_KEY = "aftercare.triage_listening"


def request_triage(
    session: Session,
    *,
    source_kind: SourceKind,
    source_id: int,
    patient_id: int | None,
    text_kind: TextKind | None = None,
) -> int | None:
    """Ask for triage of one stored answer or message (idempotent). Returns the new request id (None: known)."""
    if source_kind not in ("answer", "message"):
        raise ValueError(f"source_kind: answer or message, got {source_kind!r}")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(TriageRequest)
        .values(source_kind=source_kind, source_id=source_id, patient_id=patient_id, text_kind=text_kind,
                status=TriageStatus.pending, attempts=0, rules=[], result={}, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(col(TriageRequest.id))
    )
    row = session.execute(statement).first()
    if row is None:
        return None
    request_id = int(row[0])
    _start_after_commit(session, request_id)
    return request_id


def _start_after_commit(session: Session, request_id: int) -> None:
    session.info.setdefault(_PENDING_KEY, []).append(request_id)
    if not session.info.get(_LISTENING_KEY):  # one pair of listeners per session, for all its transactions
        session.info[_LISTENING_KEY] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    ids: list[int] = session.info.pop(_PENDING_KEY, None) or []
    if not ids:
        return
    from aftercare.orchestration import start_triage_flow
    from aftercare.settings import get_settings

    try:
        start_triage_flow(ids, get_settings())
    except Exception:  # never fail the writer's commit; the ticker triages what is left
        log.exception("could not start triage for request(s) %s; the ticker will", ids)


def _after_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop(_PENDING_KEY, None)
