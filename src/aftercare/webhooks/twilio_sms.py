"""POST /webhooks/twilio/sms: inbound SMS. Stored (and keywords applied) before the answer; read right after it.

The request does as little as it can, since Twilio waits for it: check the signature, store the message once
per MessageSid (one autocommitted INSERT), apply an opt-out at once, answer. The rest (HELP and START, the
patient, the conversation, triage) is the inbound reader's (`aftercare.webhooks.worker`): `aftercare inbound`,
or a thread of this process that is woken as the answer goes out.

The answer is always an empty TwiML `<Response/>`: Twilio confirms its own STOP/START/HELP keywords, and
anything we say goes through `outbound_reply`, sent right after the response (and by the ticker if that
fails), so every message we send has a row and a provider id.
"""

from __future__ import annotations

import logging
from functools import cache

import anyio
import anyio.to_thread
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session
from twilio.twiml.messaging_response import MessagingResponse

from aftercare.db import retry_stale
from aftercare.settings import Settings
from aftercare.webhooks.inbound import MissingField, Received, is_opt_out, receive_sms, store_sms
from aftercare.webhooks.signatures import twilio_valid
from aftercare.webhooks.worker import InboundWorker

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])
EMPTY_TWIML = str(MessagingResponse())
STORE_THREADS = 8  # inserts at once: more only queue on the connection pool and the interpreter lock


@cache
def _limiter() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(STORE_THREADS)


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
        if is_opt_out(params):  # honoured before we answer
            with Session(request.app.state.engine, expire_on_commit=False) as session:
                result = receive_sms(session, params=params, settings=settings)
                session.commit()
                return result

        def store() -> int | None:
            with request.app.state.hot_engine.connect() as conn:
                return store_sms(conn, params)

        inbound_id = retry_stale(store)
        return Received(inbound_id=inbound_id, duplicate=inbound_id is None, queued=inbound_id is not None)

    try:
        result = await anyio.to_thread.run_sync(receive, limiter=_limiter())
    except MissingField as exc:
        raise HTTPException(400, str(exc)) from None
    if result.queued:
        worker: InboundWorker | None = getattr(request.app.state, "inbound_worker", None)
        if worker is not None:
            worker.wake()
    if result.reply_id is not None:
        background.add_task(_send_replies, request)
    return Response(EMPTY_TWIML, media_type="text/xml")
