"""What a triage result does, by tier and route (config/triage.yaml names the routes of each rule).

- emergency: the patient is told at once to call the local emergency number (`tell_patient_emergency`) and the
  on-call physician is paged (`page_on_call`);
- urgent: the on-call physician is paged by SMS and email (`page_on_call`), the patient gets an acknowledgement
  with what to do if it gets worse (`acknowledge_patient`); unacknowledged pages escalate (flags.escalation);
- review: a flag in the review queue, due in `review_business_days` business days (`queue_review`), or within
  `human_now_minutes` with a high-priority task for a coordinator when the rule says `human_now`;
- routine: no flag; logged on the triage request, with the education reply the rule names for a survey answer
  (not while the patient has an urgent or emergency flag open: a clinician is on it), an outreach call task
  (`outreach_call`).
Free text always reaches a person (`human_queue`): the coordinator's "reply from a patient" task. It is never
answered automatically (clinical.md §2.2), except for the emergency instruction and the urgent acknowledgement:
an education rule firing on free text (e.g. "can I take ibuprofen?") is left to the coordinator.

One open flag per patient: while a flag is open (not yet acknowledged), new findings are added to it, and a
higher tier raises it (and pages, when it now needs a page). An acknowledged flag is left alone: a new finding
after that opens a new flag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from aftercare import audit, tasks
from aftercare.flags import paging, patient_texts, sla
from aftercare.flags.inputs import Source
from aftercare.flags.oncall import policy
from aftercare.models import Flag, FlagPage, FlagStatus, FlagTier, Patient, TaskPriority
from aftercare.settings import Settings
from aftercare.triage import FiredRule, TriageResult

log = logging.getLogger(__name__)
ACTOR = "triage"
PAGED_TIERS = (FlagTier.emergency, FlagTier.urgent)
RANK = {FlagTier.emergency: 4, FlagTier.urgent: 3, FlagTier.review: 2, FlagTier.routine: 1}


@dataclass
class Outcome:
    """What acting on one result did."""

    flag: Flag | None = None
    created: bool = False
    raised: bool = False
    pages: list[FlagPage] = field(default_factory=list)
    told: str | None = None  # emergency, acknowledged, education:<id>, not_possible
    tasks: list[str] = field(default_factory=list)


def top_tier(fired: list[FiredRule]) -> FlagTier | None:
    tiers = [FlagTier(f.tier.value) for f in fired]
    return max(tiers, key=RANK.__getitem__) if tiers else None


def act(
    session: Session, *, source: Source, result: TriageResult, fired: list[FiredRule], settings: Settings,
    now: datetime,
) -> Outcome:
    """Act on the rules newly fired by this source (earlier answers of the same survey already acted on theirs)."""
    routes = list(dict.fromkeys(route for f in fired for route in f.routes))
    tier = top_tier(fired)
    outcome = Outcome()
    if result.needs_human and source.inbound is not None and source.request.source_kind == "message":
        outcome.tasks.append(_reading_task(session, source))
    if tier is None:
        return outcome
    if "outreach_call" in routes:
        outcome.tasks.append(_outreach_task(session, source))
    if tier == FlagTier.routine:
        outcome.told = _education(session, source, fired, settings)
        return outcome
    flag, created, raised = upsert_flag(session, source=source, fired=fired, tier=tier, routes=routes,
                                        settings=settings, now=now)
    outcome.flag, outcome.created, outcome.raised = flag, created, raised
    if "page_on_call" in routes and not _paged_at_tier(session, flag):
        outcome.pages = paging.page(session, flag, level=0, settings=settings, now=now)
    outcome.told = _tell_patient(session, source, flag, routes, settings)
    if "human_now" in routes:
        outcome.tasks.append(_now_task(session, source, flag))
    return outcome


def _paged_at_tier(session: Session, flag: Flag) -> bool:
    return session.exec(select(FlagPage.id).where(FlagPage.flag_id == flag.id, FlagPage.tier == flag.tier)).first() \
        is not None


def _lock_patient(session: Session, patient_id: int) -> None:
    """Serialise flag writes per patient (two messages triaged at once must not open two flags)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa_select(col(Patient.id)).where(col(Patient.id) == patient_id).with_for_update())


def upsert_flag(
    session: Session, *, source: Source, fired: list[FiredRule], tier: FlagTier, routes: list[str],
    settings: Settings, now: datetime,
) -> tuple[Flag, bool, bool]:
    """The patient's open flag with these findings added (raised to `tier` if higher), or a new one.
    Returns (flag, created, raised)."""
    patient, clinic = source.patient, source.clinic
    assert patient.id is not None and clinic.id is not None
    _lock_patient(session, patient.id)
    flag = session.exec(
        select(Flag).where(Flag.patient_id == patient.id, Flag.status == FlagStatus.open)
        .order_by(col(Flag.id).desc())
    ).first()
    rules = policy(settings, clinic.slug)
    human_now = "human_now" in routes
    due = sla.due_at(tier, raised=now, human_now=human_now, policy=rules, zone=ZoneInfo(clinic.timezone),
                     days_off=sla.holidays(settings, clinic))
    reasons = [f.explained for f in fired]
    if flag is None:
        flag = Flag(
            clinic_id=clinic.id, patient_id=patient.id, procedure_id=source.procedure.id if source.procedure else None,
            source_kind=source.request.source_kind, inbound_id=source.inbound.id if source.inbound else None,
            answer_id=source.answer.id if source.answer else None,
            response_id=source.response.id if source.response else None, tier=tier, rules=[f.id for f in fired],
            reasons=reasons, routes=routes, day=source.input.day, sla_due_at=due, human_now=human_now,
            created_at=now, updated_at=now,
        )
        session.add(flag)
        session.flush()
        audit.record(session, actor=ACTOR, action="flag.raised", entity_type="flag", entity_id=flag.id,
                     tier=tier.value, rules=flag.rules,
                     source=f"{source.request.source_kind}:{source.request.source_id}")
        return flag, True, False
    added = [f for f in fired if f.id not in flag.rules]
    raised = RANK[tier] > RANK[flag.tier]
    if added:
        flag.rules = [*flag.rules, *(f.id for f in added)]
        flag.reasons = [*flag.reasons, *(f.explained for f in added)]
    flag.routes = list(dict.fromkeys([*flag.routes, *routes]))
    flag.human_now = flag.human_now or human_now
    if raised:
        flag.tier = tier
    flag.sla_due_at = min(flag.sla_due_at, due)
    flag.updated_at = now
    session.add(flag)
    session.flush()
    audit.record(session, actor=ACTOR, action="flag.updated", entity_type="flag", entity_id=flag.id,
                 tier=flag.tier.value, raised=raised, added_rules=[f.id for f in added],
                 source=f"{source.request.source_kind}:{source.request.source_id}")
    return flag, False, raised


def _tell_patient(session: Session, source: Source, flag: Flag, routes: list[str], settings: Settings) -> str | None:
    if "tell_patient_emergency" in routes and flag.patient_told != "emergency":
        template, told = patient_texts.EMERGENCY, "emergency"
    elif "acknowledge_patient" in routes and flag.patient_told is None:
        template, told = patient_texts.URGENT_ACK, "acknowledged"
    else:
        return None
    channel = patient_texts.queue(session, patient=source.patient, clinic=source.clinic, template=template,
                                  settings=settings, procedure=source.procedure, inbound=source.inbound)
    if channel is None:
        told = "not_possible" if flag.patient_told is None else flag.patient_told
        log.warning("flag %s: the patient could not be told (%s): no channel may be used", flag.id, template)
    flag.patient_told = told
    session.add(flag)
    audit.record(session, actor=ACTOR, action="flag.patient_told", entity_type="flag", entity_id=flag.id,
                 template=template, channel=channel.value if channel else None)
    return told


def _education(session: Session, source: Source, fired: list[FiredRule], settings: Settings) -> str | None:
    reply_ids = list(dict.fromkeys(f.education for f in fired if f.education))
    if not reply_ids:
        return None
    if source.request.source_kind == "message":
        return None  # free text is never answered automatically (clinical.md §2.2): the coordinator replies
    busy = session.exec(select(Flag.id).where(
        Flag.patient_id == source.patient.id, col(Flag.status).in_((FlagStatus.open, FlagStatus.acknowledged)),
        col(Flag.tier).in_(PAGED_TIERS))).first()
    if busy is not None:
        return None  # a clinician is handling this patient: no automated advice alongside
    first = reply_ids[0]
    channel = patient_texts.queue(session, patient=source.patient, clinic=source.clinic,
                                  template=patient_texts.EDUCATION_PREFIX + first, settings=settings,
                                  procedure=source.procedure, inbound=source.inbound)
    return f"education:{first}" if channel else "not_possible"


def _reading_task(session: Session, source: Source) -> str:
    """Every free-text message reaches a person (the same task the inbound path and the survey open)."""
    assert source.inbound is not None
    tasks.open_task(session, kind="patient_reply", title="Reply from a patient", clinic_id=source.clinic.id,
                    patient_id=source.patient.id, inbound_id=source.inbound.id,
                    dedupe_key=f"patient_reply:{source.inbound.id}")
    return "patient_reply"


def _outreach_task(session: Session, source: Source) -> str:
    procedure = source.procedure.id if source.procedure else 0
    tasks.open_task(session, kind="outreach_call", title="Check-ins missed: call the patient",
                    clinic_id=source.clinic.id, patient_id=source.patient.id,
                    dedupe_key=f"outreach_call:{source.patient.id}:{procedure}",
                    detail="Triage found missed early check-ins. Call the patient to see how they are.")
    return "outreach_call"


def _now_task(session: Session, source: Source, flag: Flag) -> str:
    task = tasks.open_task(
        session, kind="flag_now", title=f"Flag #{flag.id}: contact the patient now", clinic_id=source.clinic.id,
        patient_id=source.patient.id, inbound_id=source.inbound.id if source.inbound else None,
        dedupe_key=f"flag_now:{flag.id}", detail=f"{'; '.join(flag.reasons)[:900]} (see /flags/{flag.id})",
    )
    task.priority = TaskPriority.high
    session.add(task)
    return "flag_now"
