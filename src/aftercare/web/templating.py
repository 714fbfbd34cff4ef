"""Jinja2 pages from templates/web/: filters for local times, flash messages and the CSRF field."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from aftercare.settings import Settings
from aftercare.web.csrf import FIELD, csrf_token
from aftercare.web.timeline import label

FLASH_KEY = "flash"


def local_time(value: datetime | None, zone: str, with_zone: bool = True) -> str:
    """`Tue 1 Dec 2026, 10:00 EST`: an instant as a wall clock in `zone`."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    text = f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
    return f"{text} {local.tzname()}" if with_zone else text


def local_input(value: datetime | None, zone: str) -> str:
    """The value of an <input type=datetime-local> showing `value` in `zone`."""
    return "" if value is None else f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%dT%H:%M}"


def flash(request: Request, text: str, kind: str = "info") -> None:
    """A message shown once, on the next page rendered for this session."""
    request.session.setdefault(FLASH_KEY, []).append({"kind": kind, "text": text})


def _page_context(request: Request) -> dict[str, Any]:
    return {
        "csrf_token": csrf_token(request),
        "csrf_field": FIELD,
        "flashes": request.session.pop(FLASH_KEY, []),
    }


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=settings.templates_dir / "web", context_processors=[_page_context])
    templates.env.filters["local_time"] = local_time
    templates.env.filters["local_input"] = local_input
    templates.env.filters["tp_label"] = label
    return templates


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)
