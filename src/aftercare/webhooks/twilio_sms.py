"""POST /webhooks/twilio/sms: inbound SMS. Stored and keyword-checked at once; replies via the outbox.

The answer is always an empty TwiML `<Response/>`: Twilio confirms its own STOP/START/HELP keywords, and
anything we say goes through `outbound_reply`, sent right after the response (and by the ticker if that
fails), so every message we send has a row and a provider id.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from twilio.twiml.messaging_response import MessagingResponse

from aftercare.settings import Settings
from aftercare.webhooks.inbound import MissingField, Received, receive_sms
from aftercare.webhooks.signatures import twilio_valid

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])
EMPTY_TWIML = str(MessagingResponse())


def _send_replies(request: Request) -> None:
    from aftercare.dispatch.replies import send_replies

    try:
        send_replies(request.app.state.settings, engine=request.app.state.engine)
    except Exception:  # the ticker sends it on its next round
        log.exception("sending replies after an inbound SMS failed; the dispatcher retries")


@router.post("/webhooks/twilio/sms", summary="Twilio inbound SMS (signed)")
async def twilio_sms(request: Request, background: BackgroundTasks) -> Response:
    """403 unless signed; idempotent on MessageSid; opt-outs applied before the answer."""
    settings: Settings = request.app.state.settings
    form = await request.form()
    if not twilio_valid(request, form, settings):
        raise HTTPException(403, "X-Twilio-Signature does not match")
    params = {key: str(value) for key, value in form.multi_items()}

    def receive() -> Received:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            result = receive_sms(session, params=params, settings=settings)
            session.commit()
            return result

    try:
        result = await run_in_threadpool(receive)
    except MissingField as exc:
        raise HTTPException(400, str(exc)) from None
    if result.reply_id is not None:
        background.add_task(_send_replies, request)
    return Response(EMPTY_TWIML, media_type="text/xml")
