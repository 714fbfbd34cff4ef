"""The inbound worker: the SMS webhook stores and answers; the worker reads the message right after.

Driven through the app with the real webhook (signed posts), on SQLite and PostgreSQL: what the answer does and
does not wait for, the worker thread woken by the webhook, the order messages are read in, exactly-once reading
by concurrent workers, and what happens to a message that cannot be read.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from aftercare.models import (
    Channel,
    Clinic,
    Conversation,
    CoordinatorTask,
    Flag,
    InboundMessage,
    OutboundReply,
    Patient,
    TriageRequest,
)
from aftercare.patients import consent_state
from aftercare.settings import Settings, get_settings
from aftercare.surveys import router, state
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from aftercare.webhooks.twilio_sms import EMPTY_TWIML
from aftercare.webhooks.worker import MAX_ATTEMPTS, inbound_tick, process_queued
from tests.dispatch_helpers import make_patient, make_procedure
from tests.factories import make_clinic
from tests.fakes import FakeProviders
from tests.fakes.signing import twilio_inbound
from tests.survey_helpers import PUBLIC, SMS_PATH
from tests.web_helpers import read_inbound

SMS = SMS_PATH


@pytest.fixture
def app_settings(database_url: str, fake_provider_settings: Settings) -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as test_client:  # no worker thread (tests/conftest.py)
        yield test_client


@pytest.fixture
def clinic(session: Session) -> Clinic:
    return make_clinic(session)


def post(client: TestClient, from_: str, body: str, **extra: str) -> str:
    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", from_, body, **extra)
    response = client.post(SMS, data=form, headers=headers)
    assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    return form["MessageSid"]


def stored(session: Session, sid: str) -> InboundMessage:
    session.expire_all()
    return session.exec(select(InboundMessage).where(InboundMessage.message_sid == sid)).one()


def count(session: Session, model: type, *where: object) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model).where(*where)).one())  # type: ignore[arg-type]


def test_the_answer_only_stores_and_the_worker_reads_right_after(
    client: TestClient, session: Session, clinic: Clinic
) -> None:
    patient = make_patient(session, clinic)
    make_procedure(session, clinic, patient)
    sid = post(client, patient.phone_e164 or "", "my knee is red and hot since this morning")

    message = stored(session, sid)  # answered: stored, nothing read yet
    assert (message.queued, message.processed_at, message.patient_id) == (True, None, None)
    assert count(session, CoordinatorTask) == 0 and count(session, TriageRequest) == 0

    counts = read_inbound(client)
    assert counts["processed"] == 1
    message = stored(session, sid)
    assert (message.queued, message.patient_id, message.process_attempts) == (False, patient.id, 0)
    assert message.processed_at is not None and message.processed_at >= message.received_at
    assert count(session, CoordinatorTask, CoordinatorTask.inbound_id == message.id) == 1
    request = session.exec(select(TriageRequest).where(TriageRequest.source_id == message.id)).one()
    assert request.source_kind == "message"
    assert read_inbound(client)["processed"] == 0  # read once


def test_a_replayed_message_is_queued_once(client: TestClient, session: Session, clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    form, headers = twilio_inbound(f"{PUBLIC}{SMS}", patient.phone_e164 or "", "ok thanks")
    for _ in range(3):
        assert client.post(SMS, data=form, headers=headers).status_code == 200
    assert count(session, InboundMessage) == 1
    assert read_inbound(client)["processed"] == 1
    assert count(session, CoordinatorTask) == 1


def test_stop_is_honoured_inside_the_request_before_any_worker_runs(
    client: TestClient, session: Session, clinic: Clinic
) -> None:
    patient = make_patient(session, clinic)
    sid = post(client, patient.phone_e164 or "", "STOP")
    message = stored(session, sid)
    assert (message.queued, message.handled) == (False, True)
    assert consent_state(session, patient.id or 0) == {Channel.sms: False, Channel.email: False}


def test_the_worker_thread_reads_what_the_webhook_stored_and_replies(
    app_settings: Settings, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    settings = app_settings.model_copy(update={"inbound_reader": "thread", "inbound_poll_seconds": 30.0})
    with TestClient(create_app(settings)) as client:
        assert client.app.state.inbound_worker is not None  # type: ignore[attr-defined]
        sid = post(client, "+13055550177", "Hola, ¿a qué hora abren?")  # an unknown number: a task and a reply
        deadline = time.monotonic() + 10  # the webhook wakes it: no waiting for the 30 s poll
        while stored(session, sid).queued or not fake_providers.sent_sms:
            assert time.monotonic() < deadline, "the worker did not read the message within 10 s"
            time.sleep(0.05)
    assert count(session, CoordinatorTask, CoordinatorTask.kind == "unknown_sender") == 1
    assert [s.to for s in fake_providers.sent_sms] == ["+13055550177"]


def _ticking_clock() -> Callable[[], datetime]:
    """A clock one second later at each call (thread-safe): the order messages were claimed in."""
    start, ticks, lock = utcnow(), itertools.count(), threading.Lock()

    def now() -> datetime:
        with lock:
            return start + timedelta(seconds=next(ticks))

    return now


def test_red_flags_are_read_before_everyday_texts_but_each_sender_in_order(
    client: TestClient, session: Session, clinic: Clinic
) -> None:
    patients = [make_patient(session, clinic) for _ in range(5)]
    for patient in patients:
        make_procedure(session, clinic, patient)
    phone = [p.phone_e164 or "" for p in patients]
    everyday = [post(client, phone[0], "thanks, all good"), post(client, phone[1], "did my exercises"),
                post(client, phone[2], "what time is my appointment?"), post(client, phone[0], "ok")]
    before_fever = post(client, phone[3], "ok")  # that sender's later text is a red flag: read along, in order
    fever = post(client, phone[3], "I have a fever of 39.5 and chills")
    calf = post(client, phone[4], "my calf is swollen and it hurts a lot")

    counts = process_queued(client.app.state.settings, client.app.state.engine,  # type: ignore[attr-defined]
                            clock=_ticking_clock())
    assert counts["processed"] == 7
    order = sorted([*everyday, before_fever, fever, calf], key=lambda sid: stored(session, sid).processed_at
                   or datetime.max)
    assert set(order[:3]) == {before_fever, fever, calf}  # the senders with a red flag first
    assert order.index(before_fever) < order.index(fever)  # one sender's texts as they were written
    assert order.index(everyday[0]) < order.index(everyday[3])


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_read_every_message_exactly_once(
    client: TestClient, session: Session, clinic: Clinic, workers: int
) -> None:
    patients = [make_patient(session, clinic) for _ in range(12)]
    sids = [post(client, p.phone_e164 or "", f"question {i} about my exercises")
            for i in range(3) for p in patients]
    settings, engine = client.app.state.settings, client.app.state.engine  # type: ignore[attr-defined]
    results: list[Counter[str]] = []
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        results.append(process_queued(settings, engine))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r["processed"] for r in results) == len(sids)
    assert sum(r["failed"] for r in results) == 0
    assert count(session, InboundMessage, col(InboundMessage.queued).is_(True)) == 0
    assert count(session, CoordinatorTask) == len(sids)  # one task per message, none twice
    assert count(session, TriageRequest) == len(sids)
    for patient in patients:  # each sender's three texts read in the order they came
        rows = session.exec(select(InboundMessage).where(InboundMessage.from_number == patient.phone_e164)
                            .order_by(col(InboundMessage.id))).all()
        assert [r.processed_at for r in rows] == sorted(r.processed_at for r in rows if r.processed_at)


def _broken_conversation(*_: object) -> int | None:
    raise RuntimeError("the booking calendar is unreadable")


@pytest.fixture
def broken_kind() -> Iterator[str]:
    router.register("broken-test", _broken_conversation)
    yield "broken-test"
    router.HANDLERS.pop("broken-test", None)


def test_a_message_that_cannot_be_read_is_retried_then_goes_to_a_person_and_to_triage(
    client: TestClient, session: Session, clinic: Clinic, broken_kind: str
) -> None:
    patient: Patient = make_patient(session, clinic)
    make_procedure(session, clinic, patient)
    state.point(session, patient_id=patient.id or 0, kind=broken_kind, ref_id=1, asked_at=utcnow())
    session.commit()
    sid = post(client, patient.phone_e164 or "", "there is pus coming out of the wound")

    for attempt in range(1, MAX_ATTEMPTS):
        assert read_inbound(client)["failed"] == 1
        message = stored(session, sid)
        assert (message.queued, message.process_attempts) == (True, attempt)
        assert "the booking calendar is unreadable" in (message.process_error or "")
    assert read_inbound(client)["given_up"] == 1
    message = stored(session, sid)
    assert (message.queued, message.process_attempts, message.patient_id) == (False, MAX_ATTEMPTS, patient.id)
    kinds = {t.kind for t in session.exec(select(CoordinatorTask).where(CoordinatorTask.inbound_id == message.id))}
    assert "inbound_unreadable" in kinds
    request = session.exec(select(TriageRequest).where(TriageRequest.source_id == message.id)).one()
    assert (request.source_kind, request.text_kind, request.severity) == ("message", "free_text", "urgent")
    assert count(session, Flag, Flag.patient_id == patient.id) == 1  # the red flag in it was not lost
    assert count(session, Conversation) == 1  # the conversation itself is left for a person
    assert read_inbound(client)["processed"] == 0


def test_the_ticker_reads_what_no_worker_did(client: TestClient, session: Session, clinic: Clinic) -> None:
    patient = make_patient(session, clinic)
    sid = post(client, patient.phone_e164 or "", "can I shower today?")
    assert stored(session, sid).queued
    counts = inbound_tick(client.app.state.settings)  # type: ignore[attr-defined]
    assert counts["processed"] == 1 and not stored(session, sid).queued


def test_a_text_read_after_a_later_stop_goes_to_a_person_and_texts_nothing_back(  # (bookings: test_booking_sms)
    client: TestClient, session: Session, clinic: Clinic, fake_providers: FakeProviders
) -> None:
    patient = make_patient(session, clinic)
    make_procedure(session, clinic, patient)
    first = post(client, patient.phone_e164 or "", "what time is my appointment?")  # queued for the reader
    post(client, patient.phone_e164 or "", "STOP")  # applied in its own request, before the first is read
    assert consent_state(session, patient.id or 0)[Channel.sms] is False

    read_inbound(client)
    message = stored(session, first)
    assert not message.queued
    assert session.exec(select(CoordinatorTask).where(CoordinatorTask.inbound_id == message.id)).one()
    assert session.exec(select(TriageRequest).where(TriageRequest.source_id == message.id)).one()
    assert count(session, OutboundReply) == 0 and fake_providers.sent_sms == []
