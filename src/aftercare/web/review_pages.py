"""The physician review queue (/flags) and the flag page (/flags/{id}) with its actions.

Every view and action is audited (flags.handling); a refused action is audited and answered 403. What each role
may do is in flags.permissions: coordinators see flags and add notes; physicians and admins also acknowledge,
message the patient, book an urgent visit and resolve.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.flags import chart, handling, queue
from aftercare.flags.permissions import Action, NotAllowed, allowed
from aftercare.models import FlagDisposition, FlagTier, StaffUser
from aftercare.timeutil import utcnow
from aftercare.web.csrf import check_csrf
from aftercare.web.deps import IdPath, PageStaff, SessionDep, clinic_of
from aftercare.web.templating import flash, local_time, render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
VIA = "web"
DISPOSITIONS = [(d.value, d.value.replace("_", " ").replace(" er", " ER").capitalize()) for d in FlagDisposition]


def _flag_page(flag_id: int) -> Response:
    return RedirectResponse(f"/flags/{flag_id}", status_code=303)


def _refuse(session: Session, staff: StaffUser, flag_id: int, exc: NotAllowed) -> HTTPException:
    session.rollback()
    handling.deny(session, staff, flag_id, exc.action, VIA)
    session.commit()
    return HTTPException(403, str(exc))


@router.get("/flags")
def review_queue(
    request: Request,
    session: SessionDep,
    staff: PageStaff,
    status: Annotated[queue.StatusFilter, Query(description="which flags")] = "active",
    tier: Annotated[FlagTier | None, Query(description="only this tier")] = None,
) -> Response:
    clinic = clinic_of(session, staff)
    now = utcnow()
    pairs = queue.list_flags(session, clinic.id or 0, status=status, tier=tier)
    handling.queue_viewed(session, staff, [f.id for f, _ in pairs if f.id is not None], via=VIA)
    session.commit()
    return render(request, "review.html", staff=staff, clinic=clinic, rows=queue.rows(pairs, now), status=status,
                  tier=tier.value if tier else "", now=now)


@router.get("/flags/{flag_id}")
def flag_page(request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    handling.viewed(session, staff, flag, via=VIA)
    session.commit()
    view = queue.detail(session, flag, utcnow())
    charts = {
        "pain": chart.svg(view.pain, chart.PAIN, chart_id="chart-pain"),
        "koos": chart.svg(view.koos, chart.KOOS_JR, chart_id="chart-koos"),
    }
    can = {action.value: allowed(staff, action) for action in Action}
    return render(request, "flag.html", staff=staff, view=view, charts=charts, can=can, dispositions=DISPOSITIONS,
                  now=utcnow())


def _send_replies_now(request: Request) -> None:
    from aftercare.dispatch.replies import send_replies

    try:
        send_replies(request.app.state.settings, engine=request.app.state.engine, owner="flag-page")
    except Exception:  # the dispatcher sends it on its next run
        log.exception("sending a flag message failed; the dispatcher retries")


@router.post("/flags/{flag_id}/acknowledge", dependencies=[Depends(check_csrf)])
def acknowledge(request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        changed = handling.acknowledge(session, staff, flag, via=VIA)
    except NotAllowed as exc:
        raise _refuse(session, staff, flag_id, exc) from None
    except ConflictError as exc:
        flash(request, str(exc), "error")
        return _flag_page(flag_id)
    session.commit()
    flash(request, f"Flag #{flag_id} acknowledged: pages stop." if changed else f"Flag #{flag_id} was acknowledged.")
    return _flag_page(flag_id)


@router.post("/flags/{flag_id}/notes", dependencies=[Depends(check_csrf)])
def add_note(
    request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff,
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        handling.add_note(session, staff, flag, note, via=VIA)
    except NotAllowed as exc:
        raise _refuse(session, staff, flag_id, exc) from None
    except InputError as exc:
        flash(request, f"Note not saved: {exc.message}.", "error")
        return _flag_page(flag_id)
    session.commit()
    flash(request, "Note added.")
    return _flag_page(flag_id)


@router.post("/flags/{flag_id}/message", dependencies=[Depends(check_csrf)])
def message_patient(
    request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff, background: BackgroundTasks,
    message: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        handling.message_patient(session, staff, flag, message, via=VIA)
    except NotAllowed as exc:
        raise _refuse(session, staff, flag_id, exc) from None
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not sent: {exc.message if isinstance(exc, InputError) else exc}.", "error")
        return _flag_page(flag_id)
    session.commit()
    background.add_task(_send_replies_now, request)
    flash(request, "Message queued to the patient by SMS.")
    return _flag_page(flag_id)


@router.post("/flags/{flag_id}/visit", dependencies=[Depends(check_csrf)])
def book_visit(
    request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff,
    physician_id: Annotated[str, Form(max_length=12)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        doctor = int(physician_id) if physician_id.strip() else None
    except ValueError:
        flash(request, "Physician: choose one from the list.", "error")
        return _flag_page(flag_id)
    try:
        appointment = handling.book_visit(session, staff, flag, physician_id=doctor, reason=reason, via=VIA)
    except NotAllowed as exc:
        raise _refuse(session, staff, flag_id, exc) from None
    except (InputError, ConflictError, NotFoundError) as exc:
        session.rollback()
        flash(request, f"No visit booked: {exc.message if isinstance(exc, InputError) else exc}.", "error")
        return _flag_page(flag_id)
    session.commit()
    zone = clinic_of(session, staff).timezone
    flash(request, f"Urgent visit booked for {local_time(appointment.starts_at, zone)}.")
    return _flag_page(flag_id)


@router.post("/flags/{flag_id}/resolve", dependencies=[Depends(check_csrf)])
def resolve(
    request: Request, flag_id: IdPath, session: SessionDep, staff: PageStaff,
    disposition: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    flag = handling.get_flag(session, staff, flag_id)
    try:
        handling.resolve(session, staff, flag, disposition=disposition, note=note, via=VIA)
    except NotAllowed as exc:
        raise _refuse(session, staff, flag_id, exc) from None
    except (InputError, ConflictError) as exc:
        session.rollback()
        flash(request, f"Not resolved: {exc.message if isinstance(exc, InputError) else exc}.", "error")
        return _flag_page(flag_id)
    session.commit()
    flash(request, f"Flag #{flag_id} resolved.")
    return RedirectResponse("/flags", status_code=303)
