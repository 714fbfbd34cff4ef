"""The console outbox page: messages the console provider stored instead of sending (no provider credentials)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from aftercare.messaging import outbox, registry
from aftercare.models import Channel
from aftercare.web.deps import PageStaff, SessionDep, SettingsDep, clinic_of
from aftercare.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


@router.get("/outbox")
def outbox_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    staff: PageStaff,
    channel: Annotated[Literal["sms", "email"] | None, Query(description="only this channel")] = None,
    page: Annotated[int, Query(ge=1, le=10_000, description="page number, newest first")] = 1,
) -> Response:
    clinic = clinic_of(session, staff)
    chosen = Channel(channel) if channel else None
    rows = outbox.for_clinic(session, clinic_id=clinic.id or 0, channel=chosen, limit=PAGE_SIZE,
                             offset=(page - 1) * PAGE_SIZE)
    total = outbox.count_for_clinic(session, clinic_id=clinic.id or 0, channel=chosen)
    return render(
        request, "outbox.html", staff=staff, clinic=clinic, rows=rows, total=total, channel=channel, page=page,
        pages=max(1, -(-total // PAGE_SIZE)), providers=registry.describe(settings),
    )
