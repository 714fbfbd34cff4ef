"""Booking messages: every one in both languages, GSM-7, never over two segments (320 characters), the STOP
line last, no PHI; the video link and the moved/cancelled wording; short slot labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aftercare.bookings import notify
from aftercare.bookings.texts import slot_label
from aftercare.messaging import gsm
from aftercare.messaging.context import patient_context, visit_details
from aftercare.messaging.render import available, render
from aftercare.models import Channel, Clinic, Language, Patient
from tests.test_templates import FORBIDDEN, LONG_CLINIC, LONG_NAME, STOP_LINE

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SMS = [notify.CONFIRMATION, notify.REMINDER, notify.CANCELLED, notify.NEW_TIMES, notify.UNCLEAR, notify.CLOSED]
EMAIL = [notify.CONFIRMATION, notify.REMINDER, notify.CANCELLED]
WHEN = datetime(2027, 3, 16, 16, 0, tzinfo=UTC)
VIDEO = "https://meet.example.org/cabos-Ab3dEf6hIj9kLm2n"
SLOTS = {lang: [slot_label(datetime(2027, 3, d, 23, 30, tzinfo=UTC), "America/Toronto", lang) for d in (17, 18, 19)]
         for lang in ("en", "es")}


def context(lang: str, *, first: str = "Ana", clinic: str = "Clínica Demo Los Cabos", **extra: Any) -> dict[str, Any]:
    clinic_row = Clinic(id=1, slug="c", name=clinic, timezone="America/Mazatlan", phone="+526241234567", country="MX")
    patient = Patient(id=1, clinic_id=1, first_name=first, last_name="L", phone_e164="+14165550199",
                      language=Language(lang), timezone="America/Toronto")
    values = patient_context(clinic=clinic_row, patient=patient)
    values.update(visit=visit_details(WHEN, "in_person", "America/Toronto", lang, labels=None), slots=SLOTS[lang],
                  reason="taken", link=None)
    values.update(extra)
    return values


def sms(template: str, lang: str, **kw: Any) -> str:
    return render(template, Channel.sms, lang, context(lang, **kw), templates_dir=TEMPLATES).text


def test_every_booking_message_exists_in_both_languages() -> None:
    texts, mails = available(Channel.sms, TEMPLATES), available(Channel.email, TEMPLATES)
    assert all(texts.get(name) == {"en", "es"} for name in SMS)
    assert all(mails.get(name) == {"en", "es"} for name in EMAIL)


@pytest.mark.parametrize("name", SMS)
@pytest.mark.parametrize("lang", ["en", "es"])
def test_booking_sms_is_gsm7_at_most_two_segments_and_ends_with_stop(name: str, lang: str) -> None:
    cases: list[dict[str, Any]] = [
        {}, {"first": LONG_NAME, "clinic": LONG_CLINIC, "video_link": VIDEO, "moved": True},
        {"reason": "expired"}, {"reason": "reschedule"}, {"reason": "declined", "slots": []},
        {"reason": "no_times", "slots": SLOTS[lang][:1]},
    ]
    for case in cases:
        text = sms(name, lang, **case)
        assert gsm.is_gsm7(text), gsm.non_gsm7(text)
        assert gsm.septets(text) <= 320 and gsm.segments(text) <= 2, f"{gsm.septets(text)}: {text}"
        assert text.endswith(STOP_LINE[lang]), text
        assert FORBIDDEN.search(text) is None, text


def test_the_short_answers_fit_one_segment() -> None:
    for lang in ("en", "es"):
        for name, extra in ((notify.CLOSED, {"reason": "declined"}), (notify.CLOSED, {"reason": "unavailable"})):
            text = sms(name, lang, **extra)
            assert gsm.septets(text) <= 160, f"{gsm.septets(text)}: {text}"


def test_what_the_patient_reads() -> None:
    assert sms(notify.CONFIRMATION, "en", video_link=VIDEO) == (
        "Clinica Demo Los Cabos: Hi Ana, your follow-up (in person) is booked: Tuesday, March 16, 12:00 PM. "
        f"Video link: {VIDEO} To change it reply R, to cancel reply C, or call +52 624 123 4567. "
        "Reply STOP to opt out")
    assert "was moved to Tuesday, March 16, 12:00 PM." in sms(notify.CONFIRMATION, "en", moved=True)
    assert "su cita (presencial) se cambio al martes 16 de marzo, 12:00." in sms(notify.CONFIRMATION, "es", moved=True)
    assert sms(notify.NEW_TIMES, "es").startswith(
        "Clinica Demo Los Cabos: Lo sentimos, ese horario acaba de ocuparse. Horarios: 1) mié 17 mar, 19:30 "
        "2) jue 18 mar, 19:30 3) vie 19 mar, 19:30 Responda 1, 2 o 3, o llame al")
    assert "Reply 1 or 2," in sms(notify.NEW_TIMES, "en", slots=SLOTS["en"][:2])
    assert "Reply R to change your visit, C to cancel it, or call" in sms(notify.UNCLEAR, "en", slots=[])
    assert "Sorry, there are no open times to offer by text right now." in sms(notify.CLOSED, "en", reason="no_times")


def test_emails_render_with_the_video_link_and_the_attachment_note() -> None:
    for lang, needle in (("en", "join the video visit here"), ("es", "entre a la videoconsulta")):
        values = context(lang, video_link=VIDEO, link="https://aftercare.example/b/x")
        rendered = render(notify.CONFIRMATION, Channel.email, lang, values, templates_dir=TEMPLATES)
        assert needle in rendered.text and VIDEO in rendered.text and "visit.ics" in rendered.text
        assert rendered.html is not None and f'href="{VIDEO}"' in rendered.html
        cancelled = render(notify.CANCELLED, Channel.email, lang, values, templates_dir=TEMPLATES)
        assert FORBIDDEN.search(cancelled.text) is None and cancelled.subject


def test_slot_labels_are_short() -> None:
    assert max(len(label) for labels in SLOTS.values() for label in labels) <= 20
    assert SLOTS["en"][0] == "Wed Mar 17, 7:30 PM"
