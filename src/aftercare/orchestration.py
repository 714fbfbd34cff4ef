"""Starting flows. The database stays the record: a flow that never ran is caught by the ticker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import col

from aftercare import audit, plans
from aftercare.db import session_scope
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
PLAN_DEPLOYMENT = "procedure-aftercare/procedure-aftercare"
_executor: ThreadPoolExecutor | None = None


def _inline_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aftercare-flows")
    return _executor


def _run_inline(procedure_ids: list[int]) -> int:
    from aftercare_flows.procedure_aftercare import procedure_aftercare

    return procedure_aftercare(procedure_ids)


def _log_failure(future: Future[int]) -> None:
    if (exc := future.exception()) is not None:
        log.error("procedure-aftercare flow failed; the ticker will retry: %s", exc)


def start_plan_flow(
    procedure_ids: Sequence[int], settings: Settings, *, wait: bool = False, attempt: str | None = None
) -> None:
    """Start `procedure-aftercare` for these procedures, as `settings.flow_mode` says.

    Never raises for Prefect trouble: the procedures stay in `planning` and the ticker retries. `attempt`
    makes a retry a new Prefect run (the idempotency key of the first start would hand back the old run).
    """
    ids = list(procedure_ids)
    if not ids:
        return
    try:
        if settings.flow_mode == "off":
            with session_scope() as session:
                plans.build_for(session, ids)
        elif settings.flow_mode == "deployment":
            from prefect.deployments import run_deployment

            run_deployment(
                PLAN_DEPLOYMENT,
                parameters={"procedure_ids": ids},
                timeout=0,
                idempotency_key=f"plan:{','.join(map(str, ids))}" + (f":{attempt}" if attempt else ""),
                as_subflow=False,
            )
        elif wait:
            _run_inline(ids)
        else:
            _inline_executor().submit(_run_inline, ids).add_done_callback(_log_failure)
    except Exception as exc:  # Prefect down, network: the ticker picks these up
        log.error("could not start procedure-aftercare for %s: %s", ids, exc)


def plan_stragglers(settings: Settings) -> int:
    """Ticker job: re-start the flow for plans not built in time; build them here if Prefect keeps failing.

    A patient must never be left without a plan because the orchestrator was down.
    """
    now = utcnow()
    grace = timedelta(seconds=settings.plan_grace_seconds)
    with session_scope() as session:
        late = plans.stragglers(session, now - grace)
        very_late = set(plans.stragglers(session, now - 5 * grace))
    retry = [i for i in late if i not in very_late]
    if retry:
        start_plan_flow(retry, settings, attempt=f"retry-{now:%Y%m%dT%H%M}")
    if very_late:
        with session_scope() as session:
            written = plans.build_for(session, sorted(very_late))
            for procedure_id in very_late:
                audit.record(
                    session,
                    actor="system",
                    action="plan.built_without_prefect",
                    entity_type="procedure",
                    entity_id=procedure_id,
                )
        log.error("built %d plan(s) without Prefect after %s: check the Prefect server", len(very_late), 5 * grace)
        return written
    return 0


# -- triage-response: inline, one flow run per burst of stored answers and messages --------------------------

TRIAGE_DEPLOYMENT = "triage-response/triage-response"
_triage_pool: ThreadPoolExecutor | None = None
_triage_lock = threading.Lock()
_triage_active = False  # an inline run is queued or running in this process
_triage_in_background = False  # this is a web process beside `aftercare inbound`, which triages for it


def _run_triage_inline(request_ids: list[int] | None, linger_seconds: float = 0.0) -> object:
    import asyncio

    from aftercare_flows.triage_response import triage_response

    # an async flow: no heartbeat join when it returns
    return asyncio.run(triage_response(request_ids, linger_seconds=linger_seconds))


def _drain_triage(linger_seconds: float) -> object:
    """Inline flow runs until nothing is pending: a run lingers for more (woken by `_queue_triage_run`), so a
    steady stream of messages costs one flow run, not one each; a wake-up after it ended starts another."""
    from aftercare.flags.service import STOPPING, WAKEUP

    global _triage_active
    try:
        while True:
            WAKEUP.clear()
            result = _run_triage_inline(None, linger_seconds)
            with _triage_lock:
                if not WAKEUP.is_set() or STOPPING.is_set():
                    _triage_active = False
                    return result
    except BaseException:
        with _triage_lock:
            _triage_active = False
        raise


def stop_triage() -> None:
    """At process exit: let the in-process triage run finish the round it is in (its pages go out) and end,
    instead of being cut off by the interpreter's shutdown. What it has not claimed stays pending (the ticker)."""
    from aftercare.flags.service import STOPPING, WAKEUP

    STOPPING.set()
    WAKEUP.set()
    with _triage_lock:
        pool = _triage_pool
    if pool is not None:
        pool.shutdown(wait=True)


def _queue_triage_run(settings: Settings) -> None:
    from aftercare.flags.service import WAKEUP

    global _triage_pool, _triage_active
    with _triage_lock:
        WAKEUP.set()  # a lingering run picks the new requests up at once
        if _triage_active:
            return
        _triage_active = True
        if _triage_pool is None:
            _triage_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aftercare-triage")
    _triage_pool.submit(_drain_triage, settings.triage_linger_seconds).add_done_callback(_log_triage_failure)


def _log_triage_failure(future: Future[object]) -> None:
    if (exc := future.exception()) is not None:
        log.error("triage-response flow failed; the ticker triages what is left: %s", exc)


def _triage_in_app(settings: Settings) -> bool:
    return settings.flow_mode == "inline" or (settings.flow_mode == "deployment" and not settings.triage_on_workers)


def triage_in_background() -> None:
    """Called by a web process that runs beside `aftercare inbound` (AFTERCARE_INBOUND_READER=process): its
    triage requests are left to that process (it looks for pending ones every AFTERCARE_INBOUND_POLL_SECONDS),
    so a triage run never competes with the webhook for this process's interpreter."""
    global _triage_in_background
    _triage_in_background = True


def wake_triage_if_pending(settings: Settings, engine: Engine) -> bool:
    """In `aftercare inbound`: start (or wake) the inline triage run when requests wait, e.g. stored by the web
    app's survey form. Returns whether any waited."""
    from aftercare.models import TriageRequest, TriageStatus

    if not _triage_in_app(settings):
        return False
    with engine.connect() as conn:
        found = conn.execute(sa_select(col(TriageRequest.id)).where(col(TriageRequest.status) == TriageStatus.pending)
                             .limit(1)).first()
    if found is not None:
        _queue_triage_run(settings)
    return found is not None


def warm_triage(settings: Settings) -> None:
    """At app start: one `triage-response` run in the background, for whatever is pending (a restart) and so the
    first flow run (imports, Prefect client, rules: seconds) is not paid by the first urgent message."""
    if _triage_in_app(settings) and not _triage_in_background:
        try:
            _queue_triage_run(settings)
        except Exception as exc:  # never stop the app from starting
            log.error("could not warm up triage-response: %s", exc)


def start_triage_flow(request_ids: Sequence[int], settings: Settings, *, wait: bool = False) -> None:
    """Start `triage-response` for these triage requests, as `settings.flow_mode` says.

    off: triaged here, now (tests, scripts). inline: a background flow run in this process; while one is queued,
    more requests join it (a burst of messages costs one run, not one each). deployment: the same inline run
    (reported to the Prefect server), because a worker needs ~6 s to start a run and a page must go out within
    5 s; with AFTERCARE_TRIAGE_ON_WORKERS=true, `run_deployment` for a worker instead. Never raises for Prefect
    trouble: the requests stay pending and the ticker (or the `flags-tick` deployment) triages them.
    """
    ids = list(request_ids)
    if not ids:
        return
    try:
        if settings.flow_mode == "off":
            from aftercare.flags.service import triage_requests

            triage_requests(settings, ids)
        elif settings.flow_mode == "deployment" and settings.triage_on_workers:
            from prefect.deployments import run_deployment

            run_deployment(TRIAGE_DEPLOYMENT, parameters={"request_ids": ids}, timeout=0,
                           idempotency_key=f"triage:{','.join(map(str, ids))}")
        elif wait:
            _run_triage_inline(ids)
        elif _triage_in_background:
            return  # `aftercare inbound` finds them within AFTERCARE_INBOUND_POLL_SECONDS
        else:
            _queue_triage_run(settings)
    except Exception as exc:  # Prefect down, network: the ticker picks these up
        log.error("could not start triage-response for %s: %s", ids, exc)
