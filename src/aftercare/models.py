"""Database tables (SQLModel). Every datetime is stored as UTC; every change is migrated by Alembic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from aftercare.timeutil import UTCDateTime, utcnow


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _enum(enum: type[StrEnum], default: Any = ..., index: bool = False) -> Any:
    """A string column (no native DB enum type, so migrations stay portable and reversible)."""
    column_type = SAEnum(enum, native_enum=False, create_constraint=False, length=20)
    if default is ...:
        return Field(sa_type=column_type, nullable=False, index=index)
    return Field(default=default, sa_type=column_type, nullable=False, index=index)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Role(StrEnum):
    coordinator = "coordinator"
    physician = "physician"
    admin = "admin"


class Channel(StrEnum):
    sms = "sms"
    email = "email"


class Language(StrEnum):
    en = "en"
    es = "es"


class KneeSide(StrEnum):
    left = "left"
    right = "right"
    bilateral = "bilateral"


class ProcedureStatus(StrEnum):
    planning = "planning"  # recorded, plan not yet materialised
    active = "active"
    cancelled = "cancelled"
    completed = "completed"


class TouchpointKind(StrEnum):
    message = "message"  # guidance, rehab phase, reminder
    checkin = "checkin"  # short early check-in survey
    survey = "survey"  # outcome survey with a window
    visit_offer = "visit_offer"  # follow-up booking offer
    visit = "visit"  # the follow-up visit itself (target date)


class TouchpointStatus(StrEnum):
    scheduled = "scheduled"
    held = "held"  # due, but waiting for the end of the patient's quiet hours
    sending = "sending"  # claimed by a dispatcher (lease)
    sent = "sent"
    delivered = "delivered"
    answered = "answered"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"
    merged = "merged"  # same message, same day, another plan of the patient carries it


OPEN_TOUCHPOINT_STATUSES = (TouchpointStatus.scheduled, TouchpointStatus.held)


class Clinic(SQLModel, table=True):
    """A clinic: its zone, phone, and the hours messages may be sent in."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    timezone: str = Field(max_length=64)
    phone: str = Field(max_length=32)
    country: str = Field(default="US", max_length=2)
    send_window_start: str = Field(default="08:00", max_length=5)
    send_window_end: str = Field(default="20:00", max_length=5)
    created_at: datetime = _created()


class StaffUser(SQLModel, table=True):
    """A coordinator, physician or admin who logs in to the staff app or uses the API."""

    __tablename__ = "staff_user"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    email: str = Field(unique=True, max_length=254)
    name: str = Field(max_length=200)
    role: Role = _enum(Role)
    password_hash: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    active: bool = True
    created_at: datetime = _created()


class ApiToken(SQLModel, table=True):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _created()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class Patient(SQLModel, table=True):
    """A patient: how to reach them, in which language and zone."""

    __table_args__ = (UniqueConstraint("clinic_id", "mrn", name="uq_patient_clinic_mrn"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    mrn: str | None = Field(default=None, max_length=64)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    phone_e164: str | None = Field(default=None, max_length=16, index=True)
    email: str | None = Field(default=None, max_length=254)
    language: Language = _enum(Language, Language.en)
    timezone: str = Field(max_length=64)
    preferred_channel: Channel = _enum(Channel, Channel.sms)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ConsentEvent(SQLModel, table=True):
    """Append-only ledger: consent granted or revoked for one channel. The newest row wins."""

    __tablename__ = "consent_event"
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    channel: Channel = _enum(Channel)
    granted: bool
    source: str = Field(max_length=40)  # form, api, cli, import, keyword, provider
    note: str | None = Field(default=None, max_length=500)
    recorded_by: str = Field(max_length=100)
    recorded_at: datetime = _created()


class ProtocolSnapshot(SQLModel, table=True):
    """The exact protocol a plan was built from, kept when the file changes."""

    __tablename__ = "protocol_snapshot"
    __table_args__ = (UniqueConstraint("protocol_id", "version", name="uq_protocol_version"),)
    id: int | None = Field(default=None, primary_key=True)
    protocol_id: str = Field(max_length=100)
    version: str = Field(max_length=40)
    checksum: str = Field(max_length=64)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    loaded_at: datetime = _created()


class Procedure(SQLModel, table=True):
    """One procedure on one patient; it owns one care plan (its touchpoints)."""

    __table_args__ = (UniqueConstraint("clinic_id", "external_id", name="uq_procedure_clinic_external"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    external_id: str = Field(max_length=64)
    protocol_id: str = Field(max_length=100)
    protocol_version: str = Field(max_length=40)
    knee_side: KneeSide = _enum(KneeSide)
    performed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    physician_id: int | None = Field(default=None, foreign_key="staff_user.id")
    baseline_nrs: int
    baseline_koos_jr: float | None = None
    status: ProcedureStatus = _enum(ProcedureStatus, ProcedureStatus.planning, index=True)
    cancel_reason: str | None = Field(default=None, max_length=500)
    plan_built_at: datetime | None = _ts(nullable=True)
    flow_run_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Touchpoint(SQLModel, table=True):
    """One planned contact: the schedule and the outbox in one row."""

    __table_args__ = (
        UniqueConstraint("procedure_id", "key", "channel", name="uq_touchpoint_plan_key"),
        Index("ix_touchpoint_due", "status", "due_at"),
        Index("ix_touchpoint_patient_due", "patient_id", "due_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    procedure_id: int = Field(foreign_key="procedure.id")
    patient_id: int = Field(foreign_key="patient.id")
    key: str = Field(max_length=64)  # protocol item id, e.g. checkin_d1
    kind: TouchpointKind = _enum(TouchpointKind)
    template: str = Field(max_length=64)
    channel: Channel = _enum(Channel)
    clinical: bool = False  # exempt from the daily cap; still respects quiet hours
    planned_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # the protocol's time
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # after quiet hours
    window_end: datetime = Field(sa_type=UTCDateTime, nullable=False)  # too late to send after this
    status: TouchpointStatus = _enum(TouchpointStatus, TouchpointStatus.scheduled)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    provider: str | None = Field(default=None, max_length=20)  # twilio, sendgrid, console
    provider_status: str | None = Field(default=None, max_length=20)  # the provider's own word (queued, ...)
    error_code: str | None = Field(default=None, max_length=40)
    error_detail: str | None = Field(default=None, max_length=300)
    attempted_at: datetime | None = _ts(nullable=True)  # when the latest send attempt was claimed
    ambiguous_at: datetime | None = _ts(nullable=True)  # maybe sent: reconcile before any resend
    sent_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)
    cancel_reason: str | None = Field(default=None, max_length=300)
    merged_into_id: int | None = Field(default=None, foreign_key="touchpoint.id")
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AuditEvent(SQLModel, table=True):
    """Who did what to which record, when. Append-only."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_entity", "entity_type", "entity_id"),
        Index("ix_audit_actor_action", "actor", "action", "at"),  # sign-in throttling (web/throttle.py)
    )
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _created()
    actor: str = Field(max_length=100)  # staff:<id>, system, patient:<id>, cli
    action: str = Field(max_length=60)
    entity_type: str = Field(max_length=40)
    entity_id: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OutboxMessage(SQLModel, table=True):
    """What the console provider would have sent (no credentials for that channel): the staff outbox page."""

    __tablename__ = "outbox_message"
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=64)
    channel: Channel = _enum(Channel)
    to: str = Field(max_length=254)
    subject: str | None = Field(default=None, max_length=300)
    body: str = Field(sa_type=Text, nullable=False)
    html: str | None = Field(default=None, sa_type=Text, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)


class InboundIntent(StrEnum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"
    text = "text"  # anything else: for a human (or the survey parser)


class TaskStatus(StrEnum):
    open = "open"
    done = "done"


class TaskPriority(StrEnum):
    normal = "normal"
    high = "high"  # a person now: a patient asked for help


class Suppression(SQLModel, table=True):
    """A channel we must not use for a patient (opt-out, unsubscribe, bounce, bad number) until lifted."""

    __table_args__ = (Index("ix_suppression_patient_channel", "patient_id", "channel"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    channel: Channel = _enum(Channel)
    reason: str = Field(max_length=40)  # opt_out, unsubscribe, spamreport, bounce, dropped, invalid_number, ...
    source: str = Field(max_length=40)  # keyword, natural_language, provider, staff
    address: str | None = Field(default=None, max_length=254)  # the number/email it was about; None = any
    detail: str | None = Field(default=None, max_length=300)
    created_at: datetime = _created()
    lifted_at: datetime | None = _ts(nullable=True)
    lifted_by: str | None = Field(default=None, max_length=100)


class DeliveryEvent(SQLModel, table=True):
    """One provider callback (Twilio status, SendGrid event), stored once: a replay hits the unique key."""

    __tablename__ = "delivery_event"
    __table_args__ = (UniqueConstraint("provider", "event_key", name="uq_delivery_event_key"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    event_key: str = Field(max_length=200)  # MessageSid:MessageStatus, or sg_event_id
    provider_id: str | None = Field(default=None, max_length=100, index=True)
    touchpoint_id: int | None = Field(default=None, foreign_key="touchpoint.id", index=True)
    event: str = Field(max_length=40)
    error_code: str | None = Field(default=None, max_length=40)
    applied: bool = False  # it changed our state (False: unknown id, stale or backwards)
    received_at: datetime = _created()


class InboundMessage(SQLModel, table=True):
    """Every SMS sent to us, stored as received before anything else happens (one row per MessageSid)."""

    __tablename__ = "inbound_message"
    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(unique=True, max_length=64)
    from_number: str = Field(max_length=32, index=True)
    to_number: str = Field(max_length=32)
    body: str = Field(default="", sa_type=Text, nullable=False)
    num_media: int = 0
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # every field
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    clinic_id: int | None = Field(default=None, foreign_key="clinic.id")
    intent: InboundIntent = _enum(InboundIntent, InboundIntent.text)
    handled: bool = False  # a keyword was applied, or a person or parser dealt with it
    received_at: datetime = _created()
    # Stored by the webhook, which answers at once; the inbound worker (aftercare.webhooks.worker) then runs the
    # conversation step and asks for triage. True until that committed (or gave up after a few failures).
    queued: bool = Field(default=False, index=True)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    process_attempts: int = 0
    process_error: str | None = Field(default=None, sa_type=Text, nullable=True)


class OutboundReply(SQLModel, table=True):
    """An answer to one inbound SMS (HELP, opt-out confirmation, a survey's next question): sent once at most."""

    __tablename__ = "outbound_reply"
    id: int | None = Field(default=None, primary_key=True)
    # None: not an answer to a text (a survey's first question after its invitation); one reply per inbound SMS
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", unique=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    clinic_id: int | None = Field(default=None, foreign_key="clinic.id")
    channel: Channel = _enum(Channel, Channel.sms)
    to_address: str = Field(max_length=254)
    template: str = Field(max_length=64)
    body: str | None = Field(default=None, sa_type=Text, nullable=True)  # written already (a survey question)
    language: Language = _enum(Language, Language.en)
    status: TouchpointStatus = _enum(TouchpointStatus, TouchpointStatus.scheduled, index=True)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=40)
    created_at: datetime = _created()
    sent_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _created()


class CoordinatorTask(SQLModel, table=True):
    """Work for a coordinator: a failed delivery, a switched channel, an opt-out to confirm, a reply to read."""

    __tablename__ = "coordinator_task"
    __table_args__ = (Index("ix_task_clinic_status", "clinic_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int | None = Field(default=None, foreign_key="clinic.id")
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    touchpoint_id: int | None = Field(default=None, foreign_key="touchpoint.id")
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    kind: str = Field(max_length=40)
    title: str = Field(max_length=200)
    detail: str | None = Field(default=None, max_length=1000)
    dedupe_key: str | None = Field(default=None, unique=True, max_length=120)  # one task per event
    priority: TaskPriority = _enum(TaskPriority, TaskPriority.normal)
    status: TaskStatus = _enum(TaskStatus, TaskStatus.open)
    created_at: datetime = _created()
    closed_at: datetime | None = _ts(nullable=True)
    closed_by: str | None = Field(default=None, max_length=100)


class SendRate(SQLModel, table=True):
    """Pacing shared by every dispatcher: per sender, the next free send slot (Unix seconds)."""

    __tablename__ = "send_rate"
    sender: str = Field(primary_key=True, max_length=100)
    next_slot: float = 0.0


class SurveyStatus(StrEnum):
    open = "open"  # invited (or about to be), answers welcome until closes_at
    complete = "complete"  # every item answered; scores stored
    missed = "missed"  # closed without a single answer
    closed = "closed"  # closed with some answers (window ended, or a newer check-in took its place)


class SurveyResponse(SQLModel, table=True):
    """One survey sent to a patient (one per survey touchpoint): where its conversation is, and how it ended."""

    __tablename__ = "survey_response"
    __table_args__ = (
        UniqueConstraint("procedure_id", "touchpoint_key", name="uq_survey_response_touchpoint"),
        Index("ix_survey_response_patient_status", "patient_id", "status"),
        Index("ix_survey_response_status_closes", "status", "closes_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    procedure_id: int = Field(foreign_key="procedure.id")
    touchpoint_id: int = Field(foreign_key="touchpoint.id", index=True)
    touchpoint_key: str = Field(max_length=64)
    kind: TouchpointKind = _enum(TouchpointKind)  # checkin or survey
    survey_id: str = Field(max_length=64)
    instrument_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: SurveyStatus = _enum(SurveyStatus, SurveyStatus.open)
    channel: Channel = _enum(Channel)  # the invitation's channel
    opened_at: datetime | None = _ts(nullable=True)  # the invitation went out (None: not yet)
    closes_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _ts(nullable=True)  # first answer
    completed_at: datetime | None = _ts(nullable=True)
    ended_at: datetime | None = _ts(nullable=True)  # marked complete, missed or closed
    end_reason: str | None = Field(default=None, max_length=200)
    miss_reason: str | None = Field(default=None, max_length=20)  # not_received, not_answered
    miss_detail: str | None = Field(default=None, max_length=300)
    current_item: str | None = Field(default=None, max_length=64)  # the SMS question waiting for an answer
    asked_at: datetime | None = _ts(nullable=True)  # when it was sent (None: still to be asked)
    clarifications: int = 0  # clarifying questions sent for current_item
    handoff_at: datetime | None = _ts(nullable=True)  # the patient asked for a person (quick status "1")
    reminders_sent: int = 0
    closed_notice_at: datetime | None = _ts(nullable=True)  # "this survey is closed" was texted once
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AnswerOutcome(StrEnum):
    ok = "ok"
    unclear = "unclear"
    out_of_range = "out_of_range"
    not_an_answer = "not_an_answer"


class SurveyAnswer(SQLModel, table=True):
    """Every reply read against a survey item (SMS or web form), with the raw text as received."""

    __tablename__ = "survey_answer"
    __table_args__ = (Index("ix_survey_answer_response_item", "response_id", "item_id"),)
    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id")
    item_id: str = Field(max_length=64)
    instrument_id: str = Field(max_length=64)
    instrument_version: str = Field(max_length=40)
    raw_text: str = Field(default="", sa_type=Text, nullable=False)
    value: Any = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))  # parsed; None: unknown
    outcome: AnswerOutcome = _enum(AnswerOutcome)
    reason: str = Field(max_length=40)  # the parser's reason (number, yes, unclear ...)
    counts: bool = False  # this row stands for the item (the latest such row wins)
    source: str = Field(max_length=10)  # sms, web
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", index=True)
    created_at: datetime = _created()


class SurveyScore(SQLModel, table=True):
    """One instrument's score in one response, with the instrument version that computed it."""

    __tablename__ = "survey_score"
    __table_args__ = (UniqueConstraint("response_id", "instrument_id", name="uq_survey_score_instrument"),)
    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id")
    instrument_id: str = Field(max_length=64)
    instrument_version: str = Field(max_length=40)
    name: str = Field(max_length=100)
    value: Any = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))  # number, yes/no, None
    complete: bool = False
    raw: int | None = None
    category: str | None = Field(default=None, max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # missing, fields
    caveats: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    computed_at: datetime = _created()


class SurveyLink(SQLModel, table=True):
    """A web-form link to one survey response. Only the token's SHA-256 is stored."""

    __tablename__ = "survey_link"
    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    seed: str = Field(max_length=64)  # random; the token is derived from it with the secret key (resends match)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = _ts(nullable=True)  # the survey was completed through this link
    created_at: datetime = _created()


class Conversation(SQLModel, table=True):
    """Per patient: the SMS conversation the patient was last asked a question in, so a reply answers it."""

    patient_id: int = Field(foreign_key="patient.id", primary_key=True)
    kind: str = Field(max_length=20)  # survey, booking
    ref_id: int  # survey_response.id (or the booking's row)
    asked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = _created()


class VisitMode(StrEnum):
    in_person = "in_person"
    video = "video"
    phone = "phone"


class AppointmentStatus(StrEnum):
    booked = "booked"
    attended = "attended"
    no_show = "no_show"
    cancelled = "cancelled"
    moved = "moved"  # rescheduled: a newer appointment (replaces_id) took its place


class OfferStatus(StrEnum):
    open = "open"  # waiting for the patient's choice
    accepted = "accepted"  # a time was booked from it (its link now shows the booking)
    expired = "expired"  # not answered in time
    superseded = "superseded"  # a newer offer or a booking by staff took its place
    closed = "closed"  # cannot be answered any more (procedure cancelled, opted out, visit window over)


class Appointment(SQLModel, table=True):
    """A booked visit with one physician; its time cells (appointment_cell) make double booking impossible."""

    __table_args__ = (Index("ix_appointment_physician_start", "physician_id", "starts_at"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    procedure_id: int | None = Field(default=None, foreign_key="procedure.id", index=True)
    physician_id: int = Field(foreign_key="staff_user.id")
    visit: str = Field(max_length=48)  # the protocol's visit id (visit_6w), or urgent / other
    mode: VisitMode = _enum(VisitMode)
    starts_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ends_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: AppointmentStatus = _enum(AppointmentStatus, AppointmentStatus.booked, index=True)
    source: str = Field(max_length=20)  # sms, web, staff, urgent
    reason: str | None = Field(default=None, max_length=500)  # why (urgent visits, staff notes)
    video_room: str | None = Field(default=None, max_length=64)  # opaque; fills the calendar's video link
    sequence: int = 0  # iCalendar SEQUENCE: bumped on every change the patient is told about
    replaces_id: int | None = Field(default=None, foreign_key="appointment.id")
    booked_by: str = Field(max_length=100)
    cancel_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AppointmentCell(SQLModel, table=True):
    """Five minutes of a physician's time held by an active appointment: the unique key forbids double booking."""

    __tablename__ = "appointment_cell"
    __table_args__ = (UniqueConstraint("physician_id", "starts_at", name="uq_appointment_cell_physician_time"),)
    id: int | None = Field(default=None, primary_key=True)
    physician_id: int = Field(foreign_key="staff_user.id")
    starts_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    appointment_id: int = Field(foreign_key="appointment.id", index=True)


class BookingOffer(SQLModel, table=True):
    """Times offered for one visit (not a reservation), answered by SMS or on the signed page; holds the link."""

    __tablename__ = "booking_offer"
    __table_args__ = (Index("ix_booking_offer_status_expires", "status", "expires_at"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id")
    patient_id: int = Field(foreign_key="patient.id", index=True)
    procedure_id: int | None = Field(default=None, foreign_key="procedure.id", index=True)
    touchpoint_id: int | None = Field(default=None, foreign_key="touchpoint.id", unique=True)  # the message
    visit: str = Field(max_length=48)
    mode: VisitMode = _enum(VisitMode)
    physician_id: int | None = Field(default=None, foreign_key="staff_user.id")  # None: any physician
    target_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    earliest_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # slots are looked for in this range
    latest_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    slots: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel: Channel = _enum(Channel)
    round: int = 1  # 1: the plan's offer; 2: the one re-offer after no answer
    status: OfferStatus = _enum(OfferStatus, OfferStatus.open)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    token_hash: str | None = Field(default=None, unique=True, max_length=64)
    token_seed: str | None = Field(default=None, max_length=64)  # the token is derived from it with the secret key
    appointment_id: int | None = Field(default=None, foreign_key="appointment.id", index=True)  # booked from it
    reschedules_id: int | None = Field(default=None, foreign_key="appointment.id")  # the visit a choice moves
    clarified: int = 0  # "please reply 1, 2 or 3" texts sent for it
    created_at: datetime = _created()
    answered_at: datetime | None = _ts(nullable=True)


class CalendarFeed(SQLModel, table=True):
    """A physician's private calendar feed (/calendar/<token>.ics). Only the token's SHA-256 is stored."""

    __tablename__ = "calendar_feed"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_user.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    created_by: str = Field(max_length=100)
    created_at: datetime = _created()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class FlagTier(StrEnum):
    emergency = "emergency"
    urgent = "urgent"
    review = "review"
    routine = "routine"


class FlagStatus(StrEnum):
    open = "open"  # nobody has acknowledged it yet (urgent/emergency: the pages escalate)
    acknowledged = "acknowledged"  # a clinician has it in hand
    resolved = "resolved"  # closed with a disposition


class FlagDisposition(StrEnum):
    called_patient = "called_patient"
    visit_booked = "visit_booked"
    sent_to_er = "sent_to_er"
    no_action_needed = "no_action_needed"


class TriageStatus(StrEnum):
    pending = "pending"  # stored, not triaged yet (a flow or the ticker will)
    running = "running"  # claimed by a flow run or the ticker (lease)
    done = "done"
    failed = "failed"  # gave up after retries: a person reads the source instead


class Flag(SQLModel, table=True):
    """A triage result a clinician must see: tier, rules and reasons, its source, who handled it and how."""

    __table_args__ = (
        Index("ix_flag_clinic_status", "clinic_id", "status"),
        Index("ix_flag_status_escalation", "status", "next_escalation_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id")
    patient_id: int = Field(foreign_key="patient.id", index=True)
    procedure_id: int | None = Field(default=None, foreign_key="procedure.id")
    source_kind: str = Field(max_length=10)  # answer (a survey answer) or message (free text)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id", index=True)
    answer_id: int | None = Field(default=None, foreign_key="survey_answer.id")
    response_id: int | None = Field(default=None, foreign_key="survey_response.id", index=True)
    tier: FlagTier = _enum(FlagTier)
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    routes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    day: float | None = None  # days since the procedure when the source arrived
    status: FlagStatus = _enum(FlagStatus, FlagStatus.open)
    disposition: FlagDisposition | None = Field(
        default=None, sa_type=SAEnum(FlagDisposition, native_enum=False, create_constraint=False, length=20),
        nullable=True,
    )
    resolution_note: str | None = Field(default=None, max_length=2000)
    sla_due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # acknowledge (urgent) / review (review) by
    human_now: bool = False  # a person must look at it now (top of the queue), without paging
    escalation_level: int = -1  # highest page level sent: 0 primary, 1 backup, 2 admin (-1: not paged)
    next_escalation_at: datetime | None = _ts(nullable=True)  # the next level is paged then, unless acknowledged
    patient_told: str | None = Field(default=None, max_length=20)  # emergency, acknowledged, education, not_possible
    acknowledged_by: int | None = Field(default=None, foreign_key="staff_user.id")
    acknowledged_at: datetime | None = _ts(nullable=True)
    resolved_by: int | None = Field(default=None, foreign_key="staff_user.id")
    resolved_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class FlagPage(SQLModel, table=True):
    """One page about a flag to one staff member on one channel: the flag's number and link, never PHI."""

    __tablename__ = "flag_page"
    __table_args__ = (
        UniqueConstraint("flag_id", "tier", "level", "channel", "staff_id", name="uq_flag_page_level"),
        Index("ix_flag_page_status", "status", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flag.id", index=True)
    staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    tier: FlagTier = _enum(FlagTier)  # the flag's tier when paged (an upgrade to emergency pages again)
    level: int  # 0 primary on call, 1 backup, 2 admin
    role: str = Field(max_length=10)  # primary, backup, admin
    channel: Channel = _enum(Channel)
    to_address: str = Field(max_length=254)
    language: Language = _enum(Language, Language.en)
    status: TouchpointStatus = _enum(TouchpointStatus, TouchpointStatus.scheduled)
    attempts: int = 0
    lease_expires_at: datetime | None = _ts(nullable=True)
    provider: str | None = Field(default=None, max_length=20)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=40)
    created_at: datetime = _created()
    sent_at: datetime | None = _ts(nullable=True)  # handed to the provider


class FlagNote(SQLModel, table=True):
    """A note on a flag: written by staff, a message sent to the patient, or the resolution."""

    __tablename__ = "flag_note"
    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flag.id", index=True)
    staff_id: int = Field(foreign_key="staff_user.id")
    kind: str = Field(max_length=20)  # note, message, resolution, visit
    body: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = _created()


class TriageRequest(SQLModel, table=True):
    """A stored answer or free-text message to triage, one row per source; the ticker finds those no flow did."""

    __tablename__ = "triage_request"
    __table_args__ = (
        UniqueConstraint("source_kind", "source_id", name="uq_triage_request_source"),
        Index("ix_triage_request_status_created", "status", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    source_kind: str = Field(max_length=10)  # answer (survey_answer.id) or message (inbound_message.id)
    source_id: int
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    text_kind: str | None = Field(default=None, max_length=12)  # free_text, keyword, answer; None = the engine decides
    status: TriageStatus = _enum(TriageStatus, TriageStatus.pending)
    attempts: int = 0
    lease_expires_at: datetime | None = _ts(nullable=True)
    severity: str | None = Field(default=None, max_length=10)  # emergency ... none (the result)
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # the dry-run dict
    flag_id: int | None = Field(default=None, foreign_key="flag.id")
    error: str | None = Field(default=None, max_length=300)
    created_at: datetime = _created()
    triaged_at: datetime | None = _ts(nullable=True)
