"""Shapes of the REST API's requests and answers (the inputs themselves are the services' models)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aftercare.models import (
    Channel,
    KneeSide,
    Language,
    ProcedureStatus,
    TouchpointKind,
    TouchpointStatus,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CancelIn(_In):
    reason: str = Field(min_length=1, max_length=250, description="why; kept on the procedure and its touchpoints")


class MoveIn(_In):
    performed_at: datetime = Field(description="ISO 8601; without an offset it is read in the clinic's zone")


class RecordedOut(BaseModel):
    procedure_id: int
    patient_id: int
    status: ProcedureStatus
    created: bool = Field(description="false: this external_id was recorded before (nothing duplicated)")
    rescheduled: bool = Field(description="true: a known procedure got a new performed_at")


class ProcedureOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str
    patient_id: int
    protocol_id: str
    protocol_version: str
    knee_side: KneeSide
    performed_at: datetime
    physician_id: int | None
    baseline_nrs: int
    baseline_koos_jr: float | None
    status: ProcedureStatus
    cancel_reason: str | None
    plan_built_at: datetime | None
    flow_run_id: str | None
    created_at: datetime


class CancelledOut(BaseModel):
    procedure: ProcedureOut
    touchpoints_cancelled: int


class MovedOut(BaseModel):
    procedure: ProcedureOut
    touchpoints_moved: int


class PatientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    mrn: str | None
    first_name: str
    last_name: str
    phone_e164: str | None
    email: str | None
    language: Language
    timezone: str
    preferred_channel: Channel


class PatientSummaryOut(PatientOut):
    procedure_count: int
    next_touchpoint_key: str | None
    next_touchpoint_due_at: datetime | None


class PatientDetailOut(PatientOut):
    consent: dict[Channel, bool] = Field(description="current consent per channel (newest ledger entry)")
    procedures: list[ProcedureOut]


class TimelineEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    procedure_id: int
    key: str = Field(description="protocol touchpoint id, e.g. checkin_d1")
    label: str = Field(description="readable name, e.g. Day 1 check-in")
    kind: TouchpointKind
    channel: Channel
    status: TouchpointStatus
    status_text: str = Field(description="the status in words, with the reason when skipped or cancelled")
    planned_at: datetime = Field(description="when the protocol puts it (UTC)")
    due_at: datetime = Field(description="when it goes out, after quiet hours (UTC)")
    due_local: datetime = Field(description="due_at in the patient's zone")
    due_clinic: datetime = Field(description="due_at in the clinic's zone")
    held_for_quiet_hours: bool = Field(description="due_at was moved out of the patient's quiet hours")
    reason: str | None = Field(description="why it was skipped, cancelled or merged")
    merged_into_id: int | None = Field(description="the touchpoint of another plan that carries this message")
    sent_at: datetime | None
    delivered_at: datetime | None
