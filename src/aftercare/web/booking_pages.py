"""The patient's booking page: /b/<token> (a signed link from an offer or a booking email).

GET shows open times (or the booked visit) and changes nothing, so link previews are harmless. POSTs carry
the page's nonce (an HMAC of the link, so no cookie is needed and no other site can forge it): choose a
time, move the visit, cancel it. Answers are plain pages in the patient's
language; an unknown, expired or used link gets a clear page with the clinic's phone, never an error trace.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from aftercare.bookings import page as pages
from aftercare.bookings import tokens
from aftercare.bookings.texts import PAGE_TEXT
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.csrf import CsrfError
from aftercare.web.deps import SessionDep, SettingsDep
from aftercare.web.templating import render

router = APIRouter(include_in_schema=False)
TokenPath = Annotated[str, Path(min_length=1, max_length=80, description="the link's token")]
SlotForm = Annotated[str, Form(max_length=40)]
NonceForm = Annotated[str, Form(max_length=64)]


def _invalid(request: Request, settings: Settings) -> Response:
    text = PAGE_TEXT[settings.default_language]
    return render(request, "booking_gone.html", status_code=404, lang=settings.default_language,
                  title=text["invalid_title"], message=text["invalid"])


def _load(
    request: Request, session: SessionDep, settings: Settings, token: str, nonce: str | None = None
) -> pages.PageView | Response:
    offer = pages.find(session, token)
    if offer is None:
        return _invalid(request, settings)
    if nonce is not None and not tokens.nonce_ok(offer, settings, nonce):
        raise CsrfError()
    return pages.view(session, settings, offer, utcnow())


def _show(request: Request, view: pages.PageView, token: str, status_code: int = 200) -> Response:
    if view.state in ("gone", "past", "cancelled"):
        title, message = {"gone": ("gone_title", "gone"), "past": ("past_title", "past"),
                          "cancelled": ("cancelled_title", "cancelled")}[view.state]
        code = 200 if view.state == "cancelled" else 410
        return render(request, "booking_gone.html", status_code=code, lang=view.language,
                      title=view.text[title], message=view.say(message, phone=view.clinic_phone), view=view)
    return render(request, "booking.html", status_code=status_code, view=view, token=token, lang=view.language,
                  nonce=tokens.form_nonce(view.offer, view.scope.settings))


def _after(token: str, outcome: str) -> Response:
    return RedirectResponse(f"/b/{token}?done={outcome}", status_code=303)


@router.get("/b/{token}")
def booking_page(request: Request, token: TokenPath, session: SessionDep, settings: SettingsDep,
                 done: str = "") -> Response:
    loaded = _load(request, session, settings, token)
    if isinstance(loaded, Response):
        return loaded
    if done == "taken" and loaded.state in ("choose", "booked"):
        loaded.message = loaded.text["taken"]
    return _show(request, loaded, token)


@router.post("/b/{token}")
def choose_time(request: Request, token: TokenPath, session: SessionDep, settings: SettingsDep,
                slot: SlotForm = "", nonce: NonceForm = "") -> Response:
    loaded = _load(request, session, settings, token, nonce)
    if isinstance(loaded, Response):
        return loaded
    if not slot:
        loaded.message = loaded.text["pick"]
        return _show(request, loaded, token, status_code=422)
    outcome = pages.choose(session, loaded, slot, utcnow())
    session.commit() if outcome == "booked" else session.rollback()
    return _after(token, outcome)


@router.post("/b/{token}/move")
def move_visit(request: Request, token: TokenPath, session: SessionDep, settings: SettingsDep,
               slot: SlotForm = "", nonce: NonceForm = "") -> Response:
    loaded = _load(request, session, settings, token, nonce)
    if isinstance(loaded, Response):
        return loaded
    if not slot:
        loaded.message = loaded.text["pick"]
        return _show(request, loaded, token, status_code=422)
    outcome = pages.move(session, loaded, slot, utcnow())
    session.commit() if outcome == "moved" else session.rollback()
    return _after(token, outcome)


@router.post("/b/{token}/cancel")
def cancel_visit(request: Request, token: TokenPath, session: SessionDep, settings: SettingsDep,
                 nonce: NonceForm = "") -> Response:
    loaded = _load(request, session, settings, token, nonce)
    if isinstance(loaded, Response):
        return loaded
    outcome = pages.cancel(session, loaded, utcnow())
    session.commit() if outcome == "cancelled" else session.rollback()
    return _after(token, outcome)


@router.get("/b/{token}/visit.ics")
def visit_ics(request: Request, token: TokenPath, session: SessionDep, settings: SettingsDep) -> Response:
    loaded = _load(request, session, settings, token)
    if isinstance(loaded, Response):
        return loaded
    body = pages.invite(session, loaded)
    if body is None:
        return _show(request, loaded, token)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="visit.ics"'})
