"""Staff sign-in and sign-out pages (session cookie; CSRF-checked forms)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from aftercare import audit
from aftercare.timeutil import utcnow
from aftercare.web import throttle
from aftercare.web.auth import authenticate, staff_for_session
from aftercare.web.csrf import check_csrf, rotate
from aftercare.web.deps import SessionDep, actor
from aftercare.web.templating import flash, render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only paths on this site, so a login link cannot send staff elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, session: SessionDep, next: str | None = None) -> Response:
    if staff_for_session(session, request.session.get("staff_id")) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), email="", error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    settings = request.app.state.settings
    address = request.client.host if request.client else None
    wait = throttle.refused_for(session, settings, email=email, address=address, now=utcnow())
    if wait:
        error = f"Too many failed sign-ins. Try again in {wait} minute{'s' if wait != 1 else ''}, or ask an admin."
        return render(request, "login.html", status_code=429, next=_safe_next(next), email=email, error=error)
    staff = authenticate(session, email, password)
    if staff is None:
        if email and password:
            throttle.failed(session, email=email, address=address)
            session.commit()
        error = "Wrong email or password." if email and password else "Enter your email and password."
        return render(request, "login.html", status_code=401, next=_safe_next(next), email=email, error=error)
    request.session.clear()
    request.session["staff_id"] = staff.id
    rotate(request)
    audit.record(session, actor=actor(staff), action="staff.login", entity_type="staff_user", entity_id=staff.id)
    session.commit()
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request, session: SessionDep) -> Response:
    staff = staff_for_session(session, request.session.get("staff_id"))
    request.session.clear()
    if staff is not None:
        audit.record(session, actor=actor(staff), action="staff.logout", entity_type="staff_user", entity_id=staff.id)
        session.commit()
    flash(request, "You are signed out.")
    return RedirectResponse("/login", status_code=303)
