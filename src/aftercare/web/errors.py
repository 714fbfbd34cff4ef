"""Turning errors into answers: JSON under /api (FastAPI's shape), a plain page elsewhere. Never a traceback."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.web.csrf import CsrfError
from aftercare.web.deps import LoginRequired
from aftercare.web.templating import render

log = logging.getLogger(__name__)


MACHINE_PATHS = ("/api/", "/webhooks/", "/healthz")  # answered in JSON, never with an HTML page


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(MACHINE_PATHS)


def _page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(request, "error.html", status_code=status_code, title=title, message=message)


async def _input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    if _is_api(request):
        loc = ["body", *exc.field.split(".")]
        detail = [{"type": "value_error", "loc": loc, "msg": exc.message, "input": None}]
        return JSONResponse({"detail": detail}, status_code=422)
    return _page(request, 422, "Please check the input", f"{exc.field}: {exc.message}")


async def _conflict(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return _page(request, 409, "Not possible", str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    return _page(request, 404, "Not found", str(exc))


async def _csrf(request: Request, exc: Exception) -> Response:
    message = "This form is out of date or did not come from this site. Go back, reload the page and try again."
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=403)
    return _page(request, 403, "Form expired", message)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _is_api(request) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    titles = {403: "Not allowed", 404: "Not found", 405: "Not allowed"}
    return _page(request, exc.status_code, titles.get(exc.status_code, "Something is wrong"), str(exc.detail))


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _is_api(request):
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
    return _page(request, 422, "Please check the input", problems)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "Something went wrong on our side; it has been logged. Please try again in a moment."
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=500)
    try:
        return _page(request, 500, "Sorry", message)
    except Exception:  # the page itself may be what failed
        return PlainTextResponse(message, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(CsrfError, _csrf)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
