"""Words for bookings: short slot labels for SMS, visit names for staff, and the patient page's phrases."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from aftercare.models import VisitMode

_DAYS = {"en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
         "es": ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"]}
_MONTHS = {"en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
           "es": ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"]}
MODE_LABELS = {VisitMode.in_person: "in person", VisitMode.video: "video", VisitMode.phone: "phone"}


def clock(local: datetime, language: str) -> str:
    if language == "es":
        return f"{local:%H:%M}"
    return local.strftime("%I:%M").lstrip("0") + (" AM" if local.hour < 12 else " PM")


def slot_label(instant: datetime, zone: str, language: str) -> str:
    """`Tue Oct 6, 10:00 AM` / `mar 6 oct, 10:00`: short enough for three in one SMS, in the reader's zone."""
    lang = language if language in _DAYS else "en"
    local = instant.astimezone(ZoneInfo(zone))
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "es":
        return f"{day} {local.day} {month}, {clock(local, lang)}"
    return f"{day} {month} {local.day}, {clock(local, lang)}"


def zone_label(instant: datetime, zone: str) -> str:
    """The zone's abbreviation at that instant (EST, EDT, MST), or the offset when it has none."""
    name = instant.astimezone(ZoneInfo(zone)).tzname() or ""
    return name if re.fullmatch(r"[A-Z]{2,5}", name) else f"UTC{name}" if name else zone


_VISIT = re.compile(r"^visit_(\d+)(w|mo)$")


def visit_label(visit: str) -> str:
    """`visit_6w` -> `6-week follow-up`, `urgent` -> `Urgent visit` (staff pages)."""
    if match := _VISIT.match(visit):
        number, unit = match.groups()
        return f"{number}-{'week' if unit == 'w' else 'month'} follow-up"
    if visit == "urgent":
        return "Urgent visit"
    return visit.replace("_", " ").capitalize()


PAGE_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Book your follow-up visit",
        "choose": "Choose a time that suits you. Times are shown in your time zone ({zone}).",
        "clinic_time": "{time} at the clinic",
        "book": "Book this time",
        "no_times": "There are no open times online right now. Please call us at {phone} to book.",
        "booked_title": "Your visit is booked",
        "booked": "Your follow-up visit ({mode}) is on {when}.",
        "video": "Join the video visit at this address at the time of the visit:",
        "phone": "We will call you at the time of the visit.",
        "add": "Add to my calendar (.ics)",
        "change": "Choose another time",
        "move": "Move my visit to this time",
        "cancel": "Cancel my visit",
        "cancel_confirm": "Yes, cancel the visit",
        "cancelled_title": "Your visit is cancelled",
        "cancelled": "Your visit was cancelled. To book again, call us at {phone}.",
        "taken": "Sorry, that time was just taken. Please choose another.",
        "gone_title": "This link has expired",
        "gone": "This booking link can no longer be used. Please call us at {phone}.",
        "past_title": "This visit has passed",
        "past": "The visit this link was for has already taken place. Questions? Call us at {phone}.",
        "invalid_title": "Link not valid",
        "invalid": "This link is not valid. Please use the link in our most recent message, or call the clinic.",
        "pick": "Please choose one of the times.",
        "emergency": "Not for emergencies: in an emergency call {number}.",
        "in_person": "in person", "video_mode": "by video", "phone_mode": "by phone",
    },
    "es": {
        "title": "Agende su cita de seguimiento",
        "choose": "Elija el horario que más le convenga. Las horas están en su zona horaria ({zone}).",
        "clinic_time": "{time} en la clínica",
        "book": "Agendar este horario",
        "no_times": "Ahora no hay horarios disponibles en línea. Llámenos al {phone} para agendar.",
        "booked_title": "Su cita está agendada",
        "booked": "Su cita de seguimiento ({mode}) es el {when}.",
        "video": "A la hora de la cita, entre a la videoconsulta en esta dirección:",
        "phone": "Le llamaremos a la hora de la cita.",
        "add": "Agregar a mi calendario (.ics)",
        "change": "Elegir otro horario",
        "move": "Cambiar mi cita a este horario",
        "cancel": "Cancelar mi cita",
        "cancel_confirm": "Sí, cancelar la cita",
        "cancelled_title": "Su cita está cancelada",
        "cancelled": "Su cita fue cancelada. Para agendar de nuevo, llámenos al {phone}.",
        "taken": "Lo sentimos, ese horario acaba de ocuparse. Por favor elija otro.",
        "gone_title": "Este enlace ya no es válido",
        "gone": "Este enlace para agendar ya no se puede usar. Por favor llámenos al {phone}.",
        "past_title": "Esta cita ya pasó",
        "past": "La cita de este enlace ya tuvo lugar. ¿Preguntas? Llámenos al {phone}.",
        "invalid_title": "Enlace no válido",
        "invalid": "Este enlace no es válido. Use el enlace de nuestro mensaje más reciente o llame a la clínica.",
        "pick": "Por favor elija uno de los horarios.",
        "emergency": "No es para emergencias: en una emergencia llame al {number}.",
        "in_person": "presencial", "video_mode": "por video", "phone_mode": "por teléfono",
    },
}
