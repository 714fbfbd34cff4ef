"""Survey test helpers: survey touchpoints on real plans, signed inbound SMS, texts seen at the fake Twilio."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from aftercare.db import get_engine
from aftercare.dispatch.service import DispatchReport, dispatch_due
from aftercare.messaging.registry import providers
from aftercare.models import (
    Channel,
    Clinic,
    CoordinatorTask,
    InboundMessage,
    OutboundReply,
    Patient,
    Procedure,
    SurveyAnswer,
    SurveyResponse,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
)
from aftercare.plans import ensure_snapshot
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.dispatch_helpers import make_procedure, make_touchpoint
from tests.fakes import FakeProviders
from tests.fakes.signing import twilio_inbound
from tests.web_helpers import read_inbound

PUBLIC = "https://aftercare.example"
SMS_PATH = "/webhooks/twilio/sms"
PROTOCOL = "msc-knee-injection"
LINK = re.compile(r"https://aftercare\.example/s/([A-Za-z0-9_-]{22})")


def snapshot(session: Session, settings: Settings) -> None:
    """Store the protocol the procedures of these tests are built on."""
    ensure_snapshot(session, ProtocolRegistry.from_dir(settings.config_dir / "protocols").get(PROTOCOL))
    session.commit()


def survey_touchpoint(
    session: Session,
    clinic: Clinic,
    patient: Patient,
    *,
    kind: TouchpointKind = TouchpointKind.checkin,
    key: str = "checkin_d3",
    survey: str = "checkin",
    channel: Channel = Channel.sms,
    due: datetime | None = None,
    window: timedelta = timedelta(hours=8),
    procedure: Procedure | None = None,
) -> Touchpoint:
    """A due check-in (or survey) invitation like the plan's, on a procedure of its own unless given."""
    due = due or utcnow() - timedelta(minutes=1)
    procedure = procedure or make_procedure(session, clinic, patient)
    template = "checkin_invite" if kind == TouchpointKind.checkin else "survey_invite"
    return make_touchpoint(
        session, procedure, key=key, kind=kind, template=template, channel=channel,
        clinical=kind == TouchpointKind.checkin, planned_at=due, due_at=due, window_end=due + window,
        payload={"survey": survey},
    )


def dispatch(settings: Settings, clock: Callable[[], datetime] = utcnow) -> DispatchReport:
    engine = get_engine()
    return dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine), clock=clock)


def post_sms(client: TestClient, from_: str, body: str, **extra: str) -> httpx.Response:
    form, headers = twilio_inbound(PUBLIC + SMS_PATH, from_, body, **extra)
    response = client.post(SMS_PATH, data=form, headers=headers)
    read_inbound(client)
    response.extensions["message_sid"] = form["MessageSid"]
    return response


def answer_to(session: Session, fake: FakeProviders, response: httpx.Response) -> str | None:
    """The conversation's reply to the text posted in `response` (None: no reply), checked to have reached
    the fake Twilio. Other texts (triage advice) are not replies to one message and are left out."""
    assert response.status_code == 200, response.text
    assert response.text == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    session.expire_all()
    inbound = session.exec(
        select(InboundMessage).where(InboundMessage.message_sid == response.extensions["message_sid"])).one()
    reply = session.exec(select(OutboundReply).where(OutboundReply.inbound_id == inbound.id)).first()
    if reply is None:
        return None
    assert reply.status == TouchpointStatus.sent and reply.body is not None, reply
    assert [s.body for s in fake.sent_sms if s.sid == reply.provider_id] == [reply.body]
    return reply.body


def texts_to(fake: FakeProviders, number: str) -> list[str]:
    return [sms.body for sms in fake.sent_sms if sms.to == number]


def response_of(session: Session, tp: Touchpoint) -> SurveyResponse:
    session.expire_all()
    found = session.exec(
        select(SurveyResponse).where(SurveyResponse.procedure_id == tp.procedure_id,
                                     SurveyResponse.touchpoint_key == tp.key)
    ).first()
    assert found is not None, f"no survey response for {tp.key}"
    return found


def counting_answers(session: Session, response: SurveyResponse) -> dict[str, Any]:
    rows = session.exec(
        select(SurveyAnswer).where(SurveyAnswer.response_id == response.id, col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.id))
    )
    return {row.item_id: row.value for row in rows}


def tasks_of(session: Session, kind: str | None = None) -> list[CoordinatorTask]:
    session.expire_all()
    query = select(CoordinatorTask).order_by(col(CoordinatorTask.id))
    if kind is not None:
        query = query.where(CoordinatorTask.kind == kind)
    return list(session.exec(query))


def count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def reload(session: Session, row: Any) -> Any:
    session.expire_all()
    fresh = session.get(type(row), row.id)
    assert fresh is not None
    return fresh
