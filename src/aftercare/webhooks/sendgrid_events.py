"""POST /webhooks/sendgrid/events: SendGrid's signed Event Webhook (thin: verify raw body, store, apply)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from aftercare.settings import Settings
from aftercare.webhooks.delivery import apply_sendgrid_event
from aftercare.webhooks.signatures import sendgrid_problem

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/sendgrid/events", summary="SendGrid Event Webhook (signed)")
async def sendgrid_events(request: Request) -> JSONResponse:
    """403 unless signed and fresh (5 min); events deduplicated on sg_event_id."""
    settings: Settings = request.app.state.settings
    raw = await request.body()
    problem = sendgrid_problem(raw, request.headers, settings)
    if problem:
        raise HTTPException(403, f"event webhook refused: {problem}")
    try:
        events = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "body: not JSON") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise HTTPException(400, "body: expected a JSON array of event objects")

    def apply() -> dict[str, int]:
        counts = {"received": len(events), "applied": 0, "duplicates": 0, "unknown": 0}
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            for event in events:
                result = apply_sendgrid_event(session, event)
                counts["applied"] += result.changed
                counts["duplicates"] += result.duplicate
                counts["unknown"] += not result.known and not result.duplicate
            session.commit()
        return counts

    return JSONResponse(await run_in_threadpool(apply))
