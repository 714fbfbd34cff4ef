"""The patient's booking page behind a signed link: what it shows, and choosing, moving or cancelling.

Looking (GET) changes nothing: the open times are computed fresh on every view and nothing is held. A
choice is checked against the times open at that moment (a forged or stale time is refused) and booked
with the same savepoint as every booking, so a time someone else took meanwhile is answered with the
times still open. After booking, the same link shows the visit with its video link and .ics file, other
times to move to, and a cancel button, until the visit starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from aftercare import audit, tasks
from aftercare.bookings import notify, offers, service, tokens
from aftercare.bookings import scope as scopes
from aftercare.bookings.scope import Scope
from aftercare.bookings.slots import Slot, open_slots
from aftercare.bookings.texts import PAGE_TEXT, clock, zone_label
from aftercare.errors import InputError
from aftercare.messaging.context import format_when, patient_context
from aftercare.models import Appointment, AppointmentStatus, BookingOffer, OfferStatus, Patient, Procedure, VisitMode
from aftercare.security import hash_token
from aftercare.settings import Settings

MAX_TIMES = 60
EXTRA_DAYS = timedelta(days=14)


@dataclass
class TimeChoice:
    value: str  # what the form posts back
    label: str  # the patient's wall clock
    clinic_label: str | None  # the clinic's, when the zones differ


@dataclass
class DayChoices:
    label: str
    times: list[TimeChoice]


@dataclass
class PageView:
    state: str  # choose, booked, cancelled, past, gone
    offer: BookingOffer
    scope: Scope
    text: dict[str, str]
    language: str
    days: list[DayChoices] = field(default_factory=list)
    appointment: Appointment | None = None
    when: str = ""
    mode_label: str = ""
    video_link: str | None = None
    zone: str = ""
    clinic_phone: str = ""
    emergency_number: str = ""
    message: str | None = None  # an answer to the last action (e.g. that time was just taken)

    def say(self, key: str, **values: str) -> str:
        return self.text[key].format(**values)


def find(session: Session, token: str) -> BookingOffer | None:
    """The offer behind a link token (None: malformed or unknown)."""
    if not tokens.well_formed(token):
        return None
    return session.exec(select(BookingOffer).where(BookingOffer.token_hash == hash_token(token))).first()


def scope_of(session: Session, settings: Settings, offer: BookingOffer) -> Scope:
    patient = session.get(Patient, offer.patient_id)
    assert patient is not None
    procedure = session.get(Procedure, offer.procedure_id) if offer.procedure_id else None
    return scopes.load(session, settings, patient=patient, procedure=procedure)


def value_of(slot: Slot) -> str:
    return f"{slot.starts_at.astimezone(UTC).strftime('%Y%m%dT%H%MZ')}.{slot.physician_id}"


def _mode_label(mode: VisitMode, text: dict[str, str]) -> str:
    return {VisitMode.in_person: text["in_person"], VisitMode.video: text["video_mode"],
            VisitMode.phone: text["phone_mode"]}[mode]


def _booked(session: Session, offer: BookingOffer) -> Appointment | None:
    return session.get(Appointment, offer.appointment_id) if offer.appointment_id else None


def open_times(session: Session, scope: Scope, offer: BookingOffer, now: datetime,
               around: Appointment | None = None) -> list[Slot]:
    """The times this page may offer now: in the offer's range (or a fortnight past a booked visit)."""
    calendar = scope.calendar
    if calendar is None:
        return []
    soonest = now + timedelta(hours=calendar.offers.min_notice_hours)
    latest = offer.latest_at if around is None else max(offer.latest_at, around.starts_at + EXTRA_DAYS)
    earliest = max(offer.earliest_at if around is None else soonest, soonest)
    physicians = scope.for_visit(offer.physician_id)
    found = open_slots(session, calendar=calendar, zone=scope.zone, physicians=physicians, mode=offer.mode,
                       start=earliest, end=latest)
    if not found and around is None:
        found = open_slots(session, calendar=calendar, zone=scope.zone, physicians=physicians,
                           mode=offer.mode, start=soonest, end=latest + EXTRA_DAYS, limit=MAX_TIMES)
    target = offer.target_at if around is None else around.starts_at
    nearest = sorted(found, key=lambda s: (abs((s.starts_at - target).total_seconds()), s.starts_at))[:MAX_TIMES]
    return sorted(nearest)  # the times nearest the visit's target date, in time order


def _days(slots: list[Slot], scope: Scope, language: str, text: dict[str, str]) -> list[DayChoices]:
    zone = scope.patient.timezone
    differ = ZoneInfo(zone).key != scope.zone.key
    days: list[DayChoices] = []
    for slot in slots:
        local = slot.starts_at.astimezone(ZoneInfo(zone))
        label = format_when(slot.starts_at, zone, language, with_time=False)
        if not days or days[-1].label != label:
            days.append(DayChoices(label, []))
        at_clinic = text["clinic_time"].format(time=clock(slot.starts_at.astimezone(scope.zone), language)) \
            if differ and slot.starts_at.astimezone(scope.zone).strftime("%H:%M") != local.strftime("%H:%M") else None
        days[-1].times.append(TimeChoice(value_of(slot), clock(local, language), at_clinic))
    return days


def view(session: Session, settings: Settings, offer: BookingOffer, now: datetime) -> PageView:
    scope = scope_of(session, settings, offer)
    language = scope.patient.language.value
    text = PAGE_TEXT[language]
    base = patient_context(clinic=scope.clinic, patient=scope.patient)
    page = PageView("gone", offer, scope, text, language, zone=zone_label(now, scope.patient.timezone),
                    clinic_phone=base["clinic_phone"], emergency_number=base["emergency_number"])
    appointment = _booked(session, offer)
    if appointment is not None:
        page.appointment = appointment
        page.when = format_when(appointment.starts_at, scope.patient.timezone, language)
        page.zone = zone_label(appointment.starts_at, scope.patient.timezone)
        page.mode_label = _mode_label(appointment.mode, text)
        page.video_link = notify.video_link(appointment, scope.calendar)
        if appointment.status == AppointmentStatus.cancelled:
            page.state = "cancelled"
        elif appointment.starts_at <= now or appointment.status != AppointmentStatus.booked:
            page.state = "past"
        else:
            page.state = "booked"
            page.days = _days(open_times(session, scope, offer, now, around=appointment), scope, language, text)
        return page
    if offer.status == OfferStatus.open and offer.expires_at > now and offers.bookable(scope) is None:
        page.state = "choose"
        page.mode_label = _mode_label(offer.mode, text)
        page.days = _days(open_times(session, scope, offer, now), scope, language, text)
    return page


def _slot(page: PageView, value: str, session: Session, now: datetime) -> Slot:
    """The open time the form names; InputError when it is not one of the times open now."""
    offer = page.offer
    around = page.appointment if page.state == "booked" else None
    for slot in open_times(session, page.scope, offer, now, around=around):
        if value_of(slot) == value:
            return slot
    raise InputError("slot", "that time is not open (any more)")


def choose(session: Session, page: PageView, value: str, now: datetime) -> str:
    """Book the chosen time from an open offer: booked, taken (the page shows what is left) or gone."""
    if page.state != "choose":
        return "gone"
    try:
        slot = _slot(page, value, session, now)
    except InputError:
        return "taken"
    answer = offers.accept(session, page.scope, page.offer, slot, source="web", now=now, renew_if_taken=False)
    return {"booked": "booked", "already_booked": "booked", "taken": "taken"}.get(answer.outcome, "gone")


def move(session: Session, page: PageView, value: str, now: datetime) -> str:
    """Move the booked visit to another open time: moved, taken or gone."""
    if page.state != "booked" or page.appointment is None:
        return "gone"
    try:
        slot = _slot(page, value, session, now)
    except InputError:
        return "taken"
    try:
        service.move(session, page.scope.settings, appointment=page.appointment, starts_at=slot.starts_at,
                     physician_id=slot.physician_id, actor=f"patient:{page.scope.patient_id}", source="web", now=now)
    except service.SlotTaken:
        return "taken"
    audit.record(session, actor=f"patient:{page.scope.patient_id}", action="booking.moved_on_page",
                 entity_type="booking_offer", entity_id=page.offer.id)
    return "moved"


def cancel(session: Session, page: PageView, now: datetime) -> str:
    """Cancel the booked visit from its page: cancelled or gone. The coordinator gets a task."""
    if page.state != "booked" or page.appointment is None:
        return "gone"
    appointment = page.appointment
    service.cancel(session, page.scope.settings, appointment=appointment, actor=f"patient:{page.scope.patient_id}",
                   reason="cancelled by the patient (booking page)", now=now)
    tasks.open_task(
        session, kind="visit_cancelled_by_patient", title="Patient cancelled a follow-up visit online",
        clinic_id=page.scope.clinic_id, patient_id=page.scope.patient_id,
        detail=f"Visit {appointment.visit} on {appointment.starts_at:%Y-%m-%d %H:%M} UTC was cancelled on the "
               "booking page; its time is free again. Follow up if the visit is still needed.",
        dedupe_key=f"visit_cancelled_by_patient:{appointment.id}",
    )
    return "cancelled"


def invite(session: Session, page: PageView) -> str | None:
    """The booked visit as an .ics file (None: nothing booked)."""
    if page.appointment is None or page.state not in ("booked", "past", "cancelled"):
        return None
    return notify.invite(page.appointment, page.scope, uid_of=offers.chain_root(session, page.appointment),
                         clinic_phone=page.clinic_phone)["content"]
