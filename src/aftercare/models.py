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
    __table_args__ = (Index("ix_audit_entity", "entity_type", "entity_id"),)
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


class OutboundReply(SQLModel, table=True):
    """An answer to one inbound SMS (HELP, opt-out confirmation, unknown sender): sent once at most."""

    __tablename__ = "outbound_reply"
    id: int | None = Field(default=None, primary_key=True)
    inbound_id: int = Field(foreign_key="inbound_message.id", unique=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    clinic_id: int | None = Field(default=None, foreign_key="clinic.id")
    channel: Channel = _enum(Channel, Channel.sms)
    to_address: str = Field(max_length=254)
    template: str = Field(max_length=64)
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
    status: TaskStatus = _enum(TaskStatus, TaskStatus.open)
    created_at: datetime = _created()
    closed_at: datetime | None = _ts(nullable=True)
    closed_by: str | None = Field(default=None, max_length=100)


class SendRate(SQLModel, table=True):
    """Pacing shared by every dispatcher: per sender, the next free send slot (Unix seconds)."""

    __tablename__ = "send_rate"
    sender: str = Field(primary_key=True, max_length=100)
    next_slot: float = 0.0
