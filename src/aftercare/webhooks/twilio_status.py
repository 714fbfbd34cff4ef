"""POST /webhooks/twilio/status: Twilio's delivery reports for our SMS (thin: check, store, apply)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from aftercare.settings import Settings
from aftercare.webhooks.delivery import Applied, apply_twilio_status
from aftercare.webhooks.signatures import twilio_valid

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/twilio/status", summary="Twilio status callback (signed)")
async def twilio_status(request: Request) -> Response:
    """403 unless signed by our Auth Token; 200 for replays and unknown ids; states only move forward."""
    settings: Settings = request.app.state.settings
    form = await request.form()
    if not twilio_valid(request, form, settings):
        raise HTTPException(403, "X-Twilio-Signature does not match")
    sid, status = str(form.get("MessageSid") or "").strip(), str(form.get("MessageStatus") or "").strip()
    if not sid or not status:
        raise HTTPException(400, "MessageSid and MessageStatus are required")
    error_code = str(form.get("ErrorCode") or "").strip() or None

    def apply() -> Applied:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            result = apply_twilio_status(
                session, message_sid=sid, status=status, error_code=error_code,
                message_id=request.query_params.get("m"),
            )
            session.commit()
            return result

    await run_in_threadpool(apply)
    return Response(status_code=200)
