"""Offers: up to three open times near a protocol visit's target date, sent by SMS or as a signed link.

An offer holds nothing (other patients may book the same times); it is made when its message is
claimed for sending, once per message (a resend or a reconciliation renders the same times and link).
Times are looked for within the visit's window around its target (the protocol's `window`, at least 3
days each side), with the procedure's physician when the calendar has them, not sooner than
`min_notice_hours`, not beyond the booking horizon; when that window is full, the nearest free times up to
four windows after the target. An offer that is not answered within `expires_after_hours` is offered once
more (a new message); when that one is not answered either, the coordinator gets a task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare import audit, tasks
from aftercare.bookings import notify, tokens
from aftercare.bookings import scope as scopes
from aftercare.bookings.scope import Scope
from aftercare.bookings.service import (
    OTHER,
    URGENT,
    SlotTaken,
    active_for_visit,
    after_booking,
    place,
    repoint_offers,
)
from aftercare.bookings.slots import Slot, open_slots, pick_near
from aftercare.errors import ConflictError, InputError
from aftercare.models import (
    Appointment,
    AppointmentStatus,
    BookingOffer,
    Channel,
    OfferStatus,
    Patient,
    Procedure,
    ProcedureStatus,
    ProtocolSnapshot,
    Touchpoint,
    TouchpointKind,
    TouchpointStatus,
    VisitMode,
)
from aftercare.protocols.schema import FollowupVisit, Protocol
from aftercare.settings import Settings
from aftercare.surveys import state
from aftercare.timeutil import utcnow
from aftercare.timing import next_send_time

log = logging.getLogger(__name__)
MIN_WINDOW = timedelta(days=3)


def visit_mode(protocol_mode: str) -> VisitMode:
    """The protocol's mode as a bookable visit type (`video_or_phone` is booked as video: a link, or a call)."""
    return VisitMode.video if protocol_mode == "video_or_phone" else VisitMode(protocol_mode)


def _protocol(session: Session, procedure: Procedure) -> Protocol | None:
    snapshot = session.exec(select(ProtocolSnapshot).where(
        ProtocolSnapshot.protocol_id == procedure.protocol_id, ProtocolSnapshot.version == procedure.protocol_version,
    )).first()
    return Protocol.model_validate(snapshot.body) if snapshot else None


def followup_visit(session: Session, procedure: Procedure, visit_id: str) -> FollowupVisit | None:
    protocol = _protocol(session, procedure)
    return next((v for v in protocol.followup_visits if v.id == visit_id), None) if protocol else None


def protocol_visits(session: Session, procedure: Procedure) -> list[FollowupVisit]:
    protocol = _protocol(session, procedure)
    return list(protocol.followup_visits) if protocol else []


def _window(session: Session, procedure: Procedure | None, visit: str) -> timedelta:
    plan = followup_visit(session, procedure, visit) if procedure else None
    return max(MIN_WINDOW, timedelta(hours=plan.window.total_hours) if plan else MIN_WINDOW)


def find_times(
    session: Session, scope: Scope, *, mode: VisitMode, target: datetime, window: timedelta, now: datetime,
    physician_id: int | None = None, avoid: set[datetime] | None = None,
) -> tuple[list[Slot], datetime, datetime]:
    """Up to `offers.slots` free times near `target`; with the search range used."""
    calendar = scope.need_calendar()
    physicians = scope.for_visit(physician_id)
    soonest = now + timedelta(hours=calendar.offers.min_notice_hours)
    horizon = now + timedelta(days=calendar.booking_horizon_days)
    earliest, latest = max(target - window, soonest), min(target + window, horizon)
    found: list[Slot] = []
    if earliest <= latest:
        found = open_slots(session, calendar=calendar, zone=scope.zone, physicians=physicians, mode=mode,
                           start=earliest, end=latest)
    if not found:  # the window is full (or over): the nearest free times after it
        later = min(max(target, soonest) + 4 * window, horizon)
        earliest, latest = max(target - window, soonest), later
        found = open_slots(session, calendar=calendar, zone=scope.zone, physicians=physicians, mode=mode,
                           start=earliest, end=latest, limit=200)
    if avoid:
        found = [s for s in found if s.starts_at not in avoid] or found
    return pick_near(found, target, calendar.offers.slots, scope.zone), earliest, latest


def make_offer(
    session: Session,
    scope: Scope,
    *,
    visit: str,
    mode: VisitMode,
    target: datetime,
    channel: Channel,
    now: datetime,
    round: int = 1,
    touchpoint_id: int | None = None,
    reschedules: Appointment | None = None,
    physician_id: int | None = None,
    avoid: set[datetime] | None = None,
) -> BookingOffer:
    """Find times and store the offer (with its link token). No calendar: an offer without times."""
    slots: list[Slot] = []
    window = _window(session, scope.procedure, visit)
    earliest, latest = target - window, target + window
    expires = now + timedelta(hours=48)
    if scope.calendar is not None:
        slots, earliest, latest = find_times(session, scope, mode=mode, target=target, window=window, now=now,
                                             physician_id=physician_id, avoid=avoid)
        expires = now + timedelta(hours=scope.calendar.offers.expires_after_hours)
    offer = BookingOffer(
        clinic_id=scope.clinic_id, patient_id=scope.patient_id,
        procedure_id=scope.procedure.id if scope.procedure else None, touchpoint_id=touchpoint_id, visit=visit,
        mode=mode, physician_id=physician_id, target_at=target, earliest_at=earliest, latest_at=max(latest, earliest),
        slots=[s.as_json() for s in slots], channel=channel, round=round, expires_at=expires,
        reschedules_id=reschedules.id if reschedules else None, token_seed=tokens.new_seed(), created_at=now,
    )
    session.add(offer)
    session.flush()
    tokens.seal(offer, scope.settings)
    session.add(offer)
    if not slots:
        tasks.open_task(
            session, kind="booking_no_times", title="No open times to offer for a follow-up visit",
            clinic_id=scope.clinic_id, patient_id=scope.patient_id,
            detail=(f"Visit {visit}: no free time near {target:%Y-%m-%d} in the clinic calendar"
                    + ("" if scope.calendar else f" ({scope.calendar_problem or 'this clinic has no calendar'})")
                    + ". The patient was asked to call; book by phone."),
            dedupe_key=f"booking_no_times:{offer.id}",
        )
    audit.record(session, actor="bookings", action="booking.offered", entity_type="booking_offer",
                 entity_id=offer.id, visit=visit, slots=len(slots), round=round, channel=channel.value)
    return offer


def manage_link_offer(session: Session, scope: Scope, appointment: Appointment, now: datetime) -> BookingOffer:
    """The row behind a booked visit's link (see, move or cancel it): the accepted offer, or a new one."""
    found = session.exec(
        select(BookingOffer).where(BookingOffer.appointment_id == appointment.id)
        .order_by(col(BookingOffer.id).desc())
    ).first()
    if found is not None:
        return found
    offer = BookingOffer(
        clinic_id=scope.clinic_id, patient_id=scope.patient_id, procedure_id=appointment.procedure_id,
        visit=appointment.visit, mode=appointment.mode, target_at=appointment.starts_at,
        earliest_at=appointment.starts_at, latest_at=appointment.starts_at, slots=[],
        channel=notify.channel_for(scope.patient) or Channel.sms, status=OfferStatus.accepted,
        expires_at=appointment.starts_at, appointment_id=appointment.id, token_seed=tokens.new_seed(),
        created_at=now, answered_at=now,
    )
    session.add(offer)
    session.flush()
    tokens.seal(offer, scope.settings)
    session.add(offer)
    return offer


def slots_of(offer: BookingOffer) -> list[Slot]:
    return [Slot.from_json(s) for s in offer.slots]


# -- answering an offer ----------------------------------------------------------------------------


@dataclass
class Answer:
    """What came of a patient's choice."""

    outcome: str  # booked, taken, expired, closed, already_booked, invalid
    appointment: Appointment | None = None
    new_offer: BookingOffer | None = None
    detail: str = ""


def bookable(scope: Scope) -> str | None:
    """Why nothing can be booked from this offer any more (None: it can)."""
    procedure = scope.procedure
    if procedure is not None and procedure.status == ProcedureStatus.cancelled:
        return "procedure_cancelled"
    if scope.calendar is None:
        return "no_calendar"
    return None


def open_offer(session: Session, offer_id: int) -> BookingOffer | None:
    """The offer, re-read (and locked on PostgreSQL) for the rest of the transaction."""
    query = select(BookingOffer).where(BookingOffer.id == offer_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.exec(query).first()


def accept(
    session: Session, scope: Scope, offer: BookingOffer, slot: Slot, *, source: str, now: datetime,
    renew_if_taken: bool = True,
) -> Answer:
    """Book `slot` from `offer`. A taken or past time gives a fresh offer (by SMS; the page just shows the
    times still open: `renew_if_taken=False`); nothing is booked by mistake."""
    locked = open_offer(session, offer.id or 0)
    assert locked is not None
    offer = locked
    if offer.status != OfferStatus.open:
        return Answer("expired" if offer.status == OfferStatus.expired else "closed", detail=offer.status.value)
    if offer.expires_at < now:
        return Answer("expired", detail="past its expiry")
    why = bookable(scope)
    if why is not None:
        return Answer("closed", detail=why)
    replaces = session.get(Appointment, offer.reschedules_id) if offer.reschedules_id else None
    if replaces is not None and replaces.status != AppointmentStatus.booked:
        replaces = None
    if replaces is None and offer.visit not in (URGENT, OTHER):
        existing = active_for_visit(session, patient_id=scope.patient_id, procedure_id=offer.procedure_id,
                                    visit=offer.visit)
        if existing is not None:
            return Answer("already_booked", appointment=existing)
    def taken(detail: str = "") -> Answer:
        fresh = renew(session, scope, offer, now, avoid={slot.starts_at}) if renew_if_taken else None
        return Answer("taken", new_offer=fresh, detail=detail)

    if slot.starts_at <= now + timedelta(minutes=5):
        return taken("the time has passed")
    try:
        placed = place(session, scope, slot=slot, mode=offer.mode, visit=offer.visit, source=source,
                       actor=f"patient:{scope.patient_id}", now=now, replaces=replaces)
    except SlotTaken:
        return taken()
    except (InputError, ConflictError) as exc:  # the calendar changed under the offer (hours, physician)
        log.info("offer %s: slot no longer bookable: %s", offer.id, exc)
        return taken(str(exc))
    offer.status, offer.answered_at, offer.appointment_id = OfferStatus.accepted, now, placed.appointment.id
    session.add(offer)
    if replaces is not None:
        repoint_offers(session, old=replaces, new=placed.appointment)
    after_booking(session, scope, placed, now, confirm=source != "sms")
    audit.record(session, actor=f"patient:{scope.patient_id}", action="booking.accepted",
                 entity_type="booking_offer", entity_id=offer.id, appointment_id=placed.appointment.id, via=source)
    return Answer("booked", appointment=placed.appointment)


def renew(
    session: Session, scope: Scope, offer: BookingOffer, now: datetime, *, avoid: set[datetime] | None = None,
    reschedules: Appointment | None = None,
) -> BookingOffer:
    """A fresh offer in place of `offer` (taken time, reschedule, late answer): same visit, new times."""
    if offer.status == OfferStatus.open:
        offer.status, offer.answered_at = OfferStatus.superseded, now
        session.add(offer)
    resched = reschedules or (session.get(Appointment, offer.reschedules_id) if offer.reschedules_id else None)
    return make_offer(
        session, scope, visit=offer.visit, mode=offer.mode, target=offer.target_at, channel=offer.channel, now=now,
        round=offer.round, reschedules=resched, physician_id=offer.physician_id, avoid=avoid,
    )


# -- the dispatcher's hook: what an offer or a booking message says ----------------------------------


def _offer_for_touchpoint(session: Session, settings: Settings, tp: Touchpoint, now: datetime) -> BookingOffer | None:
    existing = session.exec(select(BookingOffer).where(BookingOffer.touchpoint_id == tp.id)).first()
    if existing is not None:
        return existing
    patient = session.get(Patient, tp.patient_id)
    procedure = session.get(Procedure, tp.procedure_id)
    if patient is None or procedure is None:
        return None
    payload = tp.payload or {}
    scope = scopes.load(session, settings, patient=patient, procedure=procedure)
    target = datetime.fromisoformat(str(payload.get("target"))).astimezone(UTC) if payload.get("target") else now
    reschedules = session.get(Appointment, int(payload["reschedules"])) if payload.get("reschedules") else None
    offer = make_offer(
        session, scope, visit=str(payload.get("visit") or tp.key.removesuffix("_offer")),
        mode=visit_mode(str(payload.get("mode") or "in_person")), target=target, channel=tp.channel, now=now,
        round=int(payload.get("round") or 1), touchpoint_id=tp.id, reschedules=reschedules,
    )
    return offer


def message_contexts(
    session: Session, touchpoints: list[Touchpoint], *, settings: Settings, now: datetime
) -> dict[int, dict[str, Any]]:
    """Extra template variables for booking messages being sent (called where the dispatcher builds contexts).

    visit_offer: `slots` (SMS: short labels to reply 1, 2 or 3 to; email: the same list) and `link` (email:
    the signed page of open times); the offer is stored now, once per touchpoint. Booking notices
    (payload `appointment_id`): `visit`, `video_link`, `link` (email) and the .ics `attachments` (email).
    An SMS that asks the patient something makes the booking the patient's current conversation.
    """
    out: dict[int, dict[str, Any]] = {}
    for tp in touchpoints:
        assert tp.id is not None
        payload = tp.payload or {}
        try:
            with session.begin_nested():  # a failure undoes this touchpoint's rows only
                if tp.kind == TouchpointKind.visit_offer:
                    out[tp.id] = _offer_context(session, settings, tp, now)
                elif payload.get("appointment_id"):
                    out[tp.id] = _notice_context(session, settings, tp, int(payload["appointment_id"]), now)
        except Exception:  # never let one booking message stop a dispatcher batch: it goes without extras
            log.exception("touchpoint %s: booking context failed", tp.id)
    return out


def _offer_context(session: Session, settings: Settings, tp: Touchpoint, now: datetime) -> dict[str, Any]:
    offer = _offer_for_touchpoint(session, settings, tp, now)
    patient = session.get(Patient, tp.patient_id)
    if offer is None or patient is None:
        return {}
    labels = notify.slot_labels(slots_of(offer), patient)
    if tp.channel == Channel.sms:
        if labels:  # a resend or a reconciliation does not take the thread back from a newer question
            state.point(session, patient_id=tp.patient_id, kind=state.BOOKING, ref_id=offer.id or 0, asked_at=now,
                        only_if_newer=True)
        return {"slots": labels, "link": None}
    return {"slots": labels, "link": tokens.offer_link(offer, settings) if labels else None}


def _notice_context(
    session: Session, settings: Settings, tp: Touchpoint, appointment_id: int, now: datetime
) -> dict[str, Any]:
    appointment = session.get(Appointment, appointment_id)
    patient = session.get(Patient, tp.patient_id)
    if appointment is None or patient is None:
        return {}
    procedure = session.get(Procedure, appointment.procedure_id) if appointment.procedure_id else None
    scope = scopes.load(session, settings, patient=patient, procedure=procedure)
    extra = notify.visit_context(appointment, patient, scope.calendar)
    extra["moved"] = bool((tp.payload or {}).get("moved"))
    link_offer = manage_link_offer(session, scope, appointment, now)
    if tp.channel == Channel.email:
        extra["link"] = tokens.offer_link(link_offer, settings) if appointment.status == AppointmentStatus.booked \
            else None
        if tp.template in (notify.CONFIRMATION, notify.CANCELLED):
            from aftercare.messaging.context import patient_context

            phone = patient_context(clinic=scope.clinic, patient=patient)["clinic_phone"]
            extra["attachments"] = [notify.invite(appointment, scope, uid_of=chain_root(session, appointment),
                                                  clinic_phone=phone)]
    elif appointment.status == AppointmentStatus.booked and tp.template == notify.REMINDER:  # "reply R or C"
        state.point(session, patient_id=tp.patient_id, kind=state.BOOKING, ref_id=link_offer.id or 0, asked_at=now,
                    only_if_newer=True)
    return extra


def chain_root(session: Session, appointment: Appointment) -> Appointment:
    """The first visit of a chain of moves (its UID is what calendars know)."""
    root, hops = appointment, 0
    while root.replaces_id is not None and hops < 50:
        found = session.get(Appointment, root.replaces_id)
        if found is None:
            break
        root, hops = found, hops + 1
    return root


# -- the ticker: expiring offers, re-offering once, then the coordinator -----------------------------


@dataclass
class SweepReport:
    expired: int = 0
    reoffered: int = 0
    tasks: int = 0
    details: list[str] = field(default_factory=list)


def sweep(session: Session, settings: Settings, *, now: datetime | None = None, limit: int = 500) -> SweepReport:
    """Expire unanswered offers: re-offer the plan's first offer once, then open a coordinator task."""
    now = now or utcnow()
    report = SweepReport()
    due = list(session.exec(
        select(BookingOffer).where(BookingOffer.status == OfferStatus.open, col(BookingOffer.expires_at) < now)
        .order_by(col(BookingOffer.expires_at)).limit(limit)
    ))
    for offer in due:
        claimed = session.execute(
            update(BookingOffer).where(col(BookingOffer.id) == offer.id, col(BookingOffer.status) == OfferStatus.open)
            .values(status=OfferStatus.expired).execution_options(synchronize_session=False)
        )
        if not getattr(claimed, "rowcount", 0):
            continue
        report.expired += 1
        state.release(session, patient_id=offer.patient_id, kind=state.BOOKING, ref_id=offer.id or 0)
        if offer.reschedules_id is not None:
            continue  # a reschedule nobody answered: the booked visit stands
        outcome = _after_miss(session, settings, offer, now)
        if outcome == "reoffered":
            report.reoffered += 1
        elif outcome == "task":
            report.tasks += 1
    return report


def _after_miss(session: Session, settings: Settings, offer: BookingOffer, now: datetime) -> str:
    patient = session.get(Patient, offer.patient_id)
    procedure = session.get(Procedure, offer.procedure_id) if offer.procedure_id else None
    if patient is None or procedure is None or procedure.status != ProcedureStatus.active:
        return "none"
    if active_for_visit(session, patient_id=offer.patient_id, procedure_id=offer.procedure_id,
                        visit=offer.visit) is not None:
        return "none"
    scope = scopes.load(session, settings, patient=patient, procedure=procedure)
    reoffer = scope.calendar.offers.reoffer if scope.calendar else False
    if offer.round == 1 and reoffer and offer.slots:
        if _reoffer(session, scope, offer, now):
            return "reoffered"
    tasks.open_task(
        session, kind="booking_no_answer", title="No answer to the follow-up visit offers",
        clinic_id=offer.clinic_id, patient_id=offer.patient_id,
        detail=(f"Visit {offer.visit} (around {offer.target_at:%Y-%m-%d}): the patient did not choose a time "
                f"after {offer.round} offer(s). Call to book."),
        dedupe_key=f"booking_no_answer:{offer.procedure_id}:{offer.visit}",
    )
    return "task"


def _reoffer(session: Session, scope: Scope, offer: BookingOffer, now: datetime) -> bool:
    """A second offer message for the same visit, due now (quiet hours respected by the dispatcher)."""
    procedure = scope.procedure
    assert procedure is not None and procedure.id is not None
    key = f"{offer.visit}_offer{offer.round + 1}"
    exists = session.exec(select(Touchpoint.id).where(Touchpoint.procedure_id == procedure.id,
                                                      Touchpoint.key == key)).first()
    if exists is not None:
        return False
    zone = ZoneInfo(scope.patient.timezone)
    due = next_send_time(now, zone, scope.clinic.send_window_start, scope.clinic.send_window_end)
    window_end = max(due + timedelta(days=2), offer.target_at)
    session.add(Touchpoint(
        procedure_id=procedure.id, patient_id=scope.patient_id, key=key, kind=TouchpointKind.visit_offer,
        template="visit_offer", channel=offer.channel, clinical=False, planned_at=now, due_at=due,
        window_end=window_end, status=TouchpointStatus.scheduled,
        payload={"visit": offer.visit, "mode": offer.mode.value, "target": offer.target_at.isoformat(),
                 "round": offer.round + 1},
    ))
    session.flush()
    audit.record(session, actor="bookings", action="booking.reoffered", entity_type="booking_offer",
                 entity_id=offer.id, visit=offer.visit)
    return True


def booking_context(session: Session, tp: Touchpoint, *, now: datetime | None = None) -> dict[str, Any]:
    """The dispatcher's hook for one touchpoint (see `message_contexts`); `now` defaults to its claim time."""
    from aftercare.settings import get_settings

    assert tp.id is not None
    when = now or tp.attempted_at or utcnow()
    return message_contexts(session, [tp], settings=get_settings(), now=when).get(tp.id, {})
