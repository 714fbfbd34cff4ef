"""Recording procedures and their plans, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, func, select

from aftercare import orchestration, plans, procedures
from aftercare.errors import ConflictError, InputError
from aftercare.models import (
    AuditEvent,
    Channel,
    ConsentEvent,
    Patient,
    Procedure,
    ProcedureStatus,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic, make_staff, procedure_in


def record(session: Session, registry: ProtocolRegistry, settings: Settings, **kw: object) -> procedures.Recorded:
    clinic = kw.pop("clinic", None) or make_clinic(session)
    result = procedures.record(
        session,
        clinic=clinic,
        data=procedure_in(**kw),
        registry=registry,
        settings=settings,
        actor="test",
        source="test",
    )
    session.commit()
    if result.needs_plan:
        orchestration.start_plan_flow([result.procedure.id], settings)  # flow_mode=off: built in-process
    session.expire_all()
    return result


def touchpoints(session: Session, procedure_id: int | None = None) -> list[Touchpoint]:
    query = select(Touchpoint)
    if procedure_id is not None:
        query = query.where(Touchpoint.procedure_id == procedure_id)
    return list(session.exec(query))


def test_recording_builds_the_plan_and_stores_everything(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    result = record(session, registry, settings)
    procedure = session.get(Procedure, result.procedure.id)
    assert procedure and procedure.status == ProcedureStatus.active and procedure.plan_built_at
    assert procedure.protocol_version == registry.get("msc-knee-injection").version
    patient = session.get(Patient, procedure.patient_id)
    assert patient and patient.phone_e164 == "+14165550199" and patient.timezone == "America/Toronto"
    rows = touchpoints(session)
    assert len(rows) >= 25 and all(r.patient_id == patient.id for r in rows)
    assert {e.channel for e in session.exec(select(ConsentEvent))} == {Channel.sms, Channel.email}
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.recorded")).first()


def test_recording_twice_does_not_double_the_plan(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    first = record(session, registry, settings)
    count = len(touchpoints(session))
    clinic_id = first.procedure.clinic_id
    from aftercare.models import Clinic

    again = record(
        session, registry, settings, clinic=session.get(Clinic, clinic_id), performed_at=first.procedure.performed_at
    )
    assert not again.created and again.procedure.id == first.procedure.id
    assert len(touchpoints(session)) == count
    assert session.exec(select(func.count()).select_from(Procedure)).one() == 1
    assert session.exec(select(func.count()).select_from(Patient)).one() == 1


def test_moving_the_date_reschedules_only_what_is_not_sent(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    first = record(session, registry, settings)
    sent = session.exec(
        select(Touchpoint).where(Touchpoint.procedure_id == first.procedure.id, Touchpoint.key == "pre_nsaid_hold")
    ).one()
    sent.status, sent.sent_at = TouchpointStatus.sent, utcnow()
    session.add(sent)
    session.commit()
    before = {(t.key, t.channel): t.due_at for t in touchpoints(session)}
    from aftercare.models import Clinic

    new_date = first.procedure.performed_at + timedelta(days=7)
    again = record(
        session, registry, settings, clinic=session.get(Clinic, first.procedure.clinic_id), performed_at=new_date
    )
    assert again.rescheduled
    after = {(t.key, t.channel): t for t in touchpoints(session)}
    assert after[("pre_nsaid_hold", Channel.sms)].due_at == before[("pre_nsaid_hold", Channel.sms)]
    moved = after[("checkin_d1", Channel.sms)]
    assert moved.due_at - before[("checkin_d1", Channel.sms)] == timedelta(days=7)
    assert moved.status == TouchpointStatus.scheduled
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.rescheduled")).first()


def test_cancelling_stops_everything_not_yet_sent_and_keeps_the_reason(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    result = record(session, registry, settings)
    procedure = session.get(Procedure, result.procedure.id)
    assert procedure
    count = procedures.cancel(session, procedure, "patient withdrew", actor="test")
    session.commit()
    assert count > 20
    rows = touchpoints(session)
    open_rows = [r for r in rows if r.status in (TouchpointStatus.scheduled, TouchpointStatus.held)]
    assert open_rows == []
    cancelled = [r for r in rows if r.status == TouchpointStatus.cancelled]
    assert cancelled and all(r.cancel_reason == "procedure cancelled: patient withdrew" for r in cancelled)
    with pytest.raises(InputError):
        procedures.cancel(session, procedure, "  ", actor="test")


def test_two_procedures_same_day_merge_same_messages(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    left = record(session, registry, settings, external_id="L", knee_side="left")
    from aftercare.models import Clinic

    clinic = session.get(Clinic, left.procedure.clinic_id)
    right = record(
        session,
        registry,
        settings,
        clinic=clinic,
        external_id="R",
        knee_side="right",
        performed_at=left.procedure.performed_at,
    )
    assert right.procedure.patient_id == left.procedure.patient_id
    right_rows = touchpoints(session, right.procedure.id)
    merged = [r for r in right_rows if r.status == TouchpointStatus.merged]
    assert merged, "same-day messages of the second plan should merge"
    left_ids = {r.id for r in touchpoints(session, left.procedure.id)}
    assert all(r.merged_into_id in left_ids for r in merged)
    # no patient gets the same template twice on one local day on one channel
    zone = ZoneInfo("America/Toronto")
    open_keys = [
        (r.template, r.channel, r.due_at.astimezone(zone).date())
        for r in touchpoints(session)
        if r.status == TouchpointStatus.scheduled
    ]
    assert len(open_keys) == len(set(open_keys))


def test_a_repeat_injection_months_later_gets_its_own_plan(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    first = record(session, registry, settings, external_id="A")
    from aftercare.models import Clinic

    second = record(
        session,
        registry,
        settings,
        clinic=session.get(Clinic, first.procedure.clinic_id),
        external_id="B",
        performed_at=first.procedure.performed_at + timedelta(days=200),
    )
    assert [r for r in touchpoints(session, second.procedure.id) if r.key == "checkin_d1"][0].status == (
        TouchpointStatus.scheduled
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"patient": {"phone": "12345"}}, "patient.phone"),
        ({"patient": {"timezone": "Mars/Olympus"}}, "patient.timezone"),
        ({"protocol_id": "prp-hip"}, "protocol_id"),
        ({"performed_at": utcnow() + timedelta(days=800)}, "performed_at"),
        ({"performed_at": utcnow() - timedelta(days=4000)}, "performed_at"),
        ({"physician_email": "nobody@example.org"}, "physician_email"),
        ({"patient": {"phone": None, "email": None}}, "patient.phone"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    session: Session,
    registry: ProtocolRegistry,
    settings: Settings,
    overrides: dict,
    field: str,  # type: ignore[type-arg]
) -> None:
    clinic = make_clinic(session)
    with pytest.raises(InputError) as info:
        procedures.record(
            session,
            clinic=clinic,
            data=procedure_in(**overrides),
            registry=registry,
            settings=settings,
            actor="test",
            source="test",
        )
    session.rollback()
    assert info.value.field == field
    assert session.exec(select(func.count()).select_from(Procedure)).one() == 0
    assert session.exec(select(func.count()).select_from(Patient)).one() == 0


def test_same_external_id_with_another_protocol_conflicts(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    first = record(session, registry, settings)
    from aftercare.models import Clinic

    with pytest.raises(ConflictError):
        procedures.record(
            session,
            clinic=session.get(Clinic, first.procedure.clinic_id),  # type: ignore[arg-type]
            data=procedure_in(protocol_id="msc-knee-ligament"),
            registry=registry,
            settings=settings,
            actor="test",
            source="test",
        )


def test_physician_is_linked_by_email(session: Session, registry: ProtocolRegistry, settings: Settings) -> None:
    from aftercare.models import Role

    clinic = make_clinic(session)
    doctor = make_staff(session, clinic, Role.physician, email="dr.ruiz@example.org")
    result = record(session, registry, settings, clinic=clinic, physician_email="Dr.Ruiz@example.org")
    assert result.procedure.physician_id == doctor.id


def test_a_plan_keeps_its_version_when_the_file_is_edited_without_a_bump(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    record(session, registry, settings)
    edited = registry.get("msc-knee-injection").model_copy(update={"title": "edited"})
    with pytest.raises(ConflictError, match="without a new version number"):
        plans.ensure_snapshot(session, edited)
    session.rollback()
    bumped = edited.model_copy(update={"version": "9.0.0"})
    assert plans.ensure_snapshot(session, bumped).version == "9.0.0"


def test_stragglers_are_planned_by_the_ticker(session: Session, registry: ProtocolRegistry, settings: Settings) -> None:
    clinic = make_clinic(session)
    result = procedures.record(
        session, clinic=clinic, data=procedure_in(), registry=registry, settings=settings, actor="t", source="t"
    )
    result.procedure.created_at = utcnow() - timedelta(hours=1)  # recorded, flow never ran
    session.add(result.procedure)
    session.commit()
    assert plans.stragglers(session, utcnow() - timedelta(minutes=5)) == [result.procedure.id]
    orchestration.plan_stragglers(settings)
    session.expire_all()
    assert session.get(Procedure, result.procedure.id).status == ProcedureStatus.active  # type: ignore[union-attr]
    assert touchpoints(session, result.procedure.id)


def test_cancelling_one_knee_releases_the_other_plans_merged_messages(
    session: Session, registry: ProtocolRegistry, settings: Settings
) -> None:
    left = record(session, registry, settings, external_id="L", knee_side="left")
    from aftercare.models import Clinic

    clinic = session.get(Clinic, left.procedure.clinic_id)
    right = record(
        session,
        registry,
        settings,
        clinic=clinic,
        external_id="R",
        knee_side="right",
        performed_at=left.procedure.performed_at,
    )
    merged_before = [r for r in touchpoints(session, right.procedure.id) if r.status == TouchpointStatus.merged]
    assert merged_before
    procedure = session.get(Procedure, left.procedure.id)
    assert procedure
    procedures.cancel(session, procedure, "left knee not done", actor="test")
    session.commit()
    session.expire_all()
    right_rows = {r.id: r for r in touchpoints(session, right.procedure.id)}
    for row in merged_before:
        released = right_rows[row.id]
        assert released.status == TouchpointStatus.scheduled and released.merged_into_id is None
