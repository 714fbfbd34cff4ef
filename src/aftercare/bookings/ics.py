"""iCalendar files built with the `icalendar` library: a patient's invite and a physician's private feed.

Times are written in UTC (every calendar app shows them in its reader's zone). Patient invites use
METHOD:PUBLISH ("add to calendar", no organizer needed); a moved visit keeps its UID chain by SEQUENCE
and a cancelled one is sent with STATUS:CANCELLED. The physician feed names no patient: each event is
"Follow-up #<id>" with a link to the staff page (calendar apps are third parties; minimum necessary).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from aftercare.models import Appointment, AppointmentStatus, Clinic, VisitMode
from aftercare.timeutil import utcnow

PRODID = "-//aftercare//bookings//EN"
_SUMMARY = {"en": "Follow-up visit", "es": "Cita de seguimiento"}
_MODE = {
    "en": {VisitMode.in_person: "in person", VisitMode.video: "by video", VisitMode.phone: "by phone"},
    "es": {VisitMode.in_person: "presencial", VisitMode.video: "por video", VisitMode.phone: "por teléfono"},
}
_CHANGE = {"en": "To change or cancel, call {phone}.", "es": "Para cambiarla o cancelarla, llame al {phone}."}
_JOIN = {"en": "Join the video visit: {link}", "es": "Entre a la videoconsulta: {link}"}
_PHONE = {"en": "We will call you at the time of the visit.", "es": "Le llamaremos a la hora de la cita."}


def uid(appointment: Appointment, base_url: str) -> str:
    """Stable per visit chain: a moved visit keeps the UID of the first one so calendars update it."""
    host = urlsplit(base_url).hostname or "aftercare.local"
    return f"visit-{appointment.id}@{host}"


def _calendar(method: str | None, name: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
    return cal


def patient_event(
    appointment: Appointment,
    *,
    clinic: Clinic,
    language: str,
    base_url: str,
    clinic_phone: str,
    location: str | None = None,
    video_link: str | None = None,
    uid_of: Appointment | None = None,
    now: datetime | None = None,
) -> Event:
    lang = language if language in _SUMMARY else "en"
    event = Event()
    event.add("uid", uid(uid_of or appointment, base_url))
    event.add("dtstamp", now or utcnow())
    event.add("dtstart", appointment.starts_at)
    event.add("dtend", appointment.ends_at)
    event.add("sequence", appointment.sequence)
    event.add("summary", f"{_SUMMARY[lang]} ({_MODE[lang][appointment.mode]}) - {clinic.name}")
    lines = []
    if appointment.mode == VisitMode.video and video_link:
        lines.append(_JOIN[lang].format(link=video_link))
        event.add("url", video_link)
        event.add("location", video_link)
    elif appointment.mode == VisitMode.phone:
        lines.append(_PHONE[lang])
    elif location:
        event.add("location", location)
    lines.append(_CHANGE[lang].format(phone=clinic_phone))
    event.add("description", "\n".join(lines))
    cancelled = appointment.status in (AppointmentStatus.cancelled, AppointmentStatus.moved)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    return event


def patient_invite(appointment: Appointment, **kwargs: object) -> str:
    """One visit as an .ics file for the patient (attachment of the confirmation, download on the page)."""
    cal = _calendar("PUBLISH")
    cal.add_component(patient_event(appointment, **kwargs))  # type: ignore[arg-type]
    return cal.to_ical().decode("utf-8")


def physician_feed(
    appointments: Iterable[Appointment], *, name: str, base_url: str, now: datetime | None = None
) -> str:
    """A physician's visits as a subscribable calendar: no patient names, a link to each staff page."""
    cal = _calendar(None, name)
    cal.add("x-published-ttl", "PT15M")
    stamp = now or utcnow()
    for appointment in appointments:
        event = Event()
        event.add("uid", f"staff-visit-{appointment.id}@{urlsplit(base_url).hostname or 'aftercare.local'}")
        event.add("dtstamp", stamp)
        event.add("dtstart", appointment.starts_at)
        event.add("dtend", appointment.ends_at)
        event.add("sequence", appointment.sequence)
        event.add("summary", f"Follow-up #{appointment.id} ({_MODE['en'][appointment.mode]})")
        link = f"{base_url.rstrip('/')}/visits/{appointment.id}"
        event.add("url", link)
        event.add("description", f"Details (staff sign-in): {link}")
        event.add("status", "CONFIRMED" if appointment.status != AppointmentStatus.cancelled else "CANCELLED")
        cal.add_component(event)
    return cal.to_ical().decode("utf-8")
