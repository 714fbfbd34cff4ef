"""Message templates: every message in both languages, the SMS lint, minimum-necessary PHI, the context builder."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from aftercare import orchestration, procedures
from aftercare.messaging import gsm
from aftercare.messaging.context import (
    contexts,
    emergency_number,
    format_when,
    patient_context,
    phrases,
    touchpoint_context,
    visit_details,
)
from aftercare.messaging.render import Rendered, TemplateMissing, TemplateRenderError, available, render
from aftercare.models import Channel, Clinic, Language, Patient, Touchpoint, TouchpointKind
from aftercare.protocols import Protocol, ProtocolRegistry
from aftercare.settings import Settings
from tests.factories import make_clinic, procedure_in

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
PROTOCOLS = ProtocolRegistry.from_dir(ROOT / "config" / "protocols")
LANGUAGES = ("en", "es")

EXTRA = {
    "survey_reminder", "booking_confirmation", "booking_reminder", "opt_out_confirmation", "opt_in_confirmation",
    "help_reply", "unknown_number_reply", "channel_switch_notice",
}
SMS_ONLY = {"unknown_number_reply"}  # an answer to a text from a number we do not know
NO_OPT_OUT_LINE = {"opt_out_confirmation", "unknown_number_reply"}  # replies to someone who opted out / is unknown
EMERGENCY_LINE = {"checkin_invite", "discharge", "help_reply", "unknown_number_reply"}
# With first name "Maximiliano-Alejandro", the demo clinic name and a 44-character link these fit one segment.
ONE_SEGMENT = {
    "help_reply", "opt_out_confirmation", "opt_in_confirmation", "unknown_number_reply", "channel_switch_notice",
    "survey_invite",
}
STOP_LINE = {"en": "Reply STOP to opt out", "es": "Responda STOP para no recibir mas"}  # "más", folded to GSM-7
NOT_FOR_EMERGENCIES = {"en": "Not for emergencies: call 911.", "es": "No es para emergencias: llame al 911."}

# Minimum necessary PHI: no diagnosis, procedure, product, body side or joint in any message.
FORBIDDEN = re.compile(
    r"stem[ -]?cell|c[ée]lulas? madre|injec|inyec|infiltra|\bMSC\b|\bPRP\b|\bBMAC\b|bone marrow|m[ée]dula|platelet|"
    r"plaqueta|arthritis|artritis|artrosis|osteo|cartilag|cart[íi]lago|ligament|tend[oó]n|menisc|diagnos|"
    r"\bknees?\b|\brodillas?\b|\b(left|right) (leg|side)\b|izquierd|derech|orthobiolog|regenerat",
    re.IGNORECASE,
)
# Spanish copy speaks to the patient as "usted".
TU_FORMS = re.compile(
    r"\b(tú|tu|tus|te|ti|contigo|responde|contesta|llama|puedes|tienes|quieres|necesitas|estás|eres|sientes)\b",
    re.IGNORECASE,
)

LONG_NAME = "Maximiliano-Alejandro"
LONG_CLINIC = "Northside Orthopedic & Sports Clinic"
LONG_LINK = "https://care.example.org/s/Ab3dEf6hIj9kLm2nOp5qRs"
DEMO_CLINIC = "Clínica Demo Los Cabos"
LINK_44 = "https://c.example.org/s/AbCdEfGhIjKlMnOpQrSt"


def expected_names() -> set[str]:
    names = {tp.template for protocol in PROTOCOLS.all() for tp in protocol.touchpoints}
    if any(protocol.followup_visits for protocol in PROTOCOLS.all()):
        names.add("visit_offer")
    return names | EXTRA


def _protocol_for(template: str) -> tuple[Protocol, Any]:
    """A protocol and its touchpoint that uses `template` (visit offers and extras get the first protocol)."""
    for protocol in PROTOCOLS.all():
        for item in protocol.touchpoints:
            if item.template == template:
                return protocol, item
    return PROTOCOLS.all()[0], None


def _clinic(name: str = DEMO_CLINIC, country: str = "MX", phone: str = "+526241234567") -> Clinic:
    return Clinic(id=1, slug="c", name=name, timezone="America/Mazatlan", phone=phone, country=country)


def _patient(language: str, first_name: str = "Ana", phone: str | None = "+14165550199") -> Patient:
    return Patient(id=1, clinic_id=1, first_name=first_name, last_name="López", phone_e164=phone,
                   email="ana@example.org", language=Language(language), timezone="America/Toronto")


def context_for(name: str, language: str, *, first_name: str = "Ana", clinic: Clinic | None = None,
                link: str | None = None, slots: bool = False) -> dict[str, Any]:
    """The context the dispatcher would build for this template (touchpoint-based where the protocol has it)."""
    protocol, item = _protocol_for(name)
    now = datetime(2026, 9, 28, 14, 0, tzinfo=UTC)
    payload: dict[str, Any] = {}
    kind = TouchpointKind.message
    if item is not None:
        kind = TouchpointKind(item.kind)
        if item.survey:
            payload["survey"] = item.survey
        if item.phase:
            payload["phase"] = item.phase
    if name in ("survey_reminder",):
        kind, payload["survey"] = TouchpointKind.survey, "wk6"
    if name in ("visit_offer", "booking_confirmation", "booking_reminder"):
        kind = TouchpointKind.visit_offer
        payload.update(visit="visit_2w", mode="video_or_phone", target=(now + timedelta(days=7)).isoformat())
    touchpoint = Touchpoint(id=7, procedure_id=1, patient_id=1, key=name, kind=kind, template=name,
                            channel=Channel.sms, planned_at=now, due_at=now, window_end=now + timedelta(days=3),
                            payload=payload)
    extra = {"slots": ["Tue Oct 6, 10:00 AM", "Wed Oct 7, 2:30 PM", "Thu Oct 8, 9:00 AM"]} if slots else None
    return touchpoint_context(touchpoint, patient=_patient(language, first_name), clinic=clinic or _clinic(),
                              protocol=protocol, link=link, extra=extra, templates_dir=TEMPLATES)


def _sms(name: str, language: str, **kw: Any) -> str:
    return render(name, Channel.sms, language, context_for(name, language, **kw), templates_dir=TEMPLATES).text


SMS_CASES = [(name, lang) for name in sorted(expected_names()) for lang in LANGUAGES]


# -- completeness --------------------------------------------------------------------------------


def test_every_message_has_sms_and_email_templates_in_both_languages() -> None:
    sms, email = available(Channel.sms, TEMPLATES), available(Channel.email, TEMPLATES)

    for name in sorted(expected_names()):
        assert sms.get(name) == set(LANGUAGES), f"templates/sms/{name}.<en|es>.txt"
        if name not in SMS_ONLY:
            assert email.get(name) == set(LANGUAGES), f"templates/email/{name}.<en|es>.subject.txt/.txt/.html"


def test_every_protocol_id_has_patient_labels_in_both_languages() -> None:
    labels = phrases(TEMPLATES)
    for protocol in PROTOCOLS.all():
        for phase in protocol.rehab_phases:
            for exercise in phase.exercises:
                for lang in LANGUAGES:
                    label = labels["exercises"].get(exercise.id, {}).get(lang, {})
                    assert label.get("name") and label.get("short") and label.get("how"), (exercise.id, lang)
                if exercise.dose:
                    assert labels["doses"].get(exercise.dose, {}).get("es"), f"Spanish dose for {exercise.dose!r}"
            for item in phase.avoid:
                assert all(labels["avoid"].get(item, {}).get(lang) for lang in LANGUAGES), item
        for visit in protocol.followup_visits:
            assert all(labels["visit_modes"].get(visit.mode, {}).get(lang) for lang in LANGUAGES), visit.mode
        analgesic = str(protocol.settings.get("allowed_analgesic", "acetaminophen"))
        assert all(labels["analgesics"].get(analgesic, {}).get(lang) for lang in LANGUAGES), analgesic


# -- SMS lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "lang"), SMS_CASES)
def test_sms_source_is_gsm7_once_folded(name: str, lang: str) -> None:
    source = (TEMPLATES / "sms" / f"{name}.{lang}.txt").read_text(encoding="utf-8")
    assert gsm.is_gsm7(gsm.fold(source)), f"characters with no GSM-7 stand-in: {gsm.non_gsm7(gsm.fold(source))}"


@pytest.mark.parametrize(("name", "lang"), SMS_CASES)
def test_sms_with_long_names_is_gsm7_and_never_over_two_segments(name: str, lang: str) -> None:
    for link in (LONG_LINK, None):
        for slots in (True, False):
            text = _sms(name, lang, first_name=LONG_NAME, clinic=_clinic(LONG_CLINIC), link=link, slots=slots)
            assert gsm.is_gsm7(text), gsm.non_gsm7(text)
            assert gsm.septets(text) <= 2 * gsm.GSM_PART <= 320, f"{gsm.septets(text)} septets: {text}"
            assert gsm.segments(text) <= 2


@pytest.mark.parametrize("name", sorted(ONE_SEGMENT))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_short_messages_fit_one_segment_even_with_a_long_first_name(name: str, lang: str) -> None:
    for link in (LINK_44, None):
        text = _sms(name, lang, first_name=LONG_NAME, link=link)
        assert gsm.septets(text) <= gsm.GSM_SINGLE, f"{gsm.septets(text)}: {text}"


@pytest.mark.parametrize(("name", "lang"), SMS_CASES)
def test_sms_carries_the_opt_out_line(name: str, lang: str) -> None:
    text = _sms(name, lang, link=LINK_44)
    if name in NO_OPT_OUT_LINE:
        assert "STOP" not in text
    else:
        assert text.endswith(STOP_LINE[lang]), text


@pytest.mark.parametrize("name", sorted(EMERGENCY_LINE))
@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("phone", ["+14165550199", "+12125550123", "+526241234567"], ids=["CA", "US", "MX"])
def test_not_for_emergencies_line_with_the_number_of_the_patients_country(name: str, lang: str, phone: str) -> None:
    protocol, _ = _protocol_for(name)
    patient = _patient(lang, phone=phone)
    context = patient_context(clinic=_clinic(country="GB", phone="+442079460000"), patient=patient)
    context.update(context_for(name, lang) | {"emergency_number": context["emergency_number"]})

    text = render(name, Channel.sms, lang, context, templates_dir=TEMPLATES).text

    assert context["emergency_number"] == "911"
    assert NOT_FOR_EMERGENCIES[lang] in text


def test_emergency_number_by_country() -> None:
    assert [emergency_number(c) for c in ("US", "CA", "MX", "GB", "ES", None)] == ["911", "911", "911", "999",
                                                                                 "112", "112"]
    without_phone = patient_context(clinic=_clinic(country="GB", phone="+442079460000"),
                                    patient=_patient("en", phone=None))
    assert without_phone["emergency_number"] == "999"  # falls back to the clinic's country


def test_checkin_invite_offers_the_one_character_answer() -> None:
    assert "Reply 0 if all is well, 1 if we should call" in _sms("checkin_invite", "en")
    assert "Responda 0 si todo va bien, 1 si necesita que le llamemos" in _sms("checkin_invite", "es")


# -- minimum necessary PHI and tone --------------------------------------------------------------


def test_no_template_or_label_contains_forbidden_words() -> None:
    files = sorted((TEMPLATES / "sms").glob("*")) + sorted((TEMPLATES / "email").glob("*"))
    assert len(files) > 150
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yaml":
            text = yaml.safe_dump(yaml.safe_load(text), allow_unicode=True)
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
            text = re.sub(r"^\s*[a-z_]+:\s*$", "", text, flags=re.MULTILINE)  # the protocol ids themselves
            text = re.sub(r"^\s*[a-z_]+:(?=\s)", "", text, flags=re.MULTILINE)
        hit = FORBIDDEN.search(text)
        assert hit is None, f"{path.name}: {hit.group(0)!r}"


@pytest.mark.parametrize("protocol_id", PROTOCOLS.ids())
@pytest.mark.parametrize("lang", LANGUAGES)
def test_rendered_plan_messages_contain_no_forbidden_words(protocol_id: str, lang: str) -> None:
    protocol = PROTOCOLS.get(protocol_id)
    for item in protocol.touchpoints:
        context = context_for(item.template, lang, link=LINK_44)
        for channel in (Channel.sms, Channel.email):
            rendered = render(item.template, channel, lang, context, templates_dir=TEMPLATES)
            for part in (rendered.subject, rendered.text, rendered.html):
                hit = FORBIDDEN.search(part or "")
                assert hit is None, f"{item.template} {channel} {lang}: {hit.group(0)!r}"


def test_spanish_copy_uses_usted() -> None:
    for path in sorted(TEMPLATES.glob("*/*.es.*")):
        words = re.sub(r"{[{%#].*?[}%#]}", " ", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        hit = TU_FORMS.search(words)
        assert hit is None, f"{path.name}: {hit.group(0)!r}"
    assert all(TU_FORMS.search(label) is None for label in _spanish_labels(phrases(TEMPLATES)))


def _spanish_labels(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        return [s for key, value in tree.items() for s in (
            [value] if key == "es" and isinstance(value, str) else _spanish_labels(value) if key != "en" else [])]
    return []


# -- rendering -----------------------------------------------------------------------------------


def test_email_has_subject_text_and_html_with_the_guidance() -> None:
    rendered = render("discharge", Channel.email, "en", context_for("discharge", "en", link=LINK_44),
                      templates_dir=TEMPLATES)

    assert rendered.subject == f"{DEMO_CLINIC}: your care guide for the coming days"
    for needle in ("strongest on days 2 to 3", "acetaminophen (Tylenol)", "No baths, swimming pools or hot tubs for 48",
                   "if it helps, use an ice pack", "Ankle pumps (2x10)", "38.0 C (100.4 F)", "Call 911 now", LINK_44):
        assert needle in rendered.text, needle
    assert rendered.html is not None and rendered.html.startswith("<!doctype html>")
    assert "Ankle pumps</strong> &middot; 2x10" in rendered.html and f'href="{LINK_44}"' in rendered.html


def test_email_follows_the_protocol_settings() -> None:
    context = context_for("discharge", "es")
    context["settings"] = dict(context["settings"], ice_policy="avoid_72h", weight_bearing="protected_days_0_3",
                               no_submersion_hours=24)

    text = render("discharge", Channel.email, "es", context, templates_dir=TEMPLATES).text

    assert "no use hielo durante los primeros 3 días" in text
    assert "use muletas o bastón" in text and "durante 24 horas" in text
    assert "Flexión de pierna sentado (2 series de 10)" in text


def test_ligament_rehab_email_lists_its_own_phase() -> None:
    text = render("rehab_lig_p3", Channel.email, "en", context_for("rehab_lig_p3", "en"), templates_dir=TEMPLATES).text

    assert "Slow step-downs (2x15 at pain <= 2-3/10)" in text
    assert "check your progress at about 3 months" in text


def test_html_is_escaped_and_text_is_not() -> None:
    context = context_for("help_reply", "en", clinic=_clinic("Smith & Jones <Care>"))

    rendered = render("help_reply", Channel.email, "en", context, templates_dir=TEMPLATES)

    assert rendered.html is not None and "Smith &amp; Jones &lt;Care&gt;" in rendered.html
    assert "<Care>" not in rendered.html
    assert rendered.subject == "Smith & Jones <Care>: how to reach us"


def test_replies_render_without_a_patient() -> None:
    context = patient_context(clinic=_clinic(), language="es")
    for name in ("help_reply", "opt_out_confirmation", "opt_in_confirmation", "unknown_number_reply"):
        assert render(name, Channel.sms, "es", context, templates_dir=TEMPLATES).text.startswith("Clinica Demo")
    assert render("help_reply", Channel.email, "es", context, templates_dir=TEMPLATES).text.startswith("Hola:")


def test_sms_text_is_one_folded_line() -> None:
    text = _sms("visit_offer", "es", slots=True)

    assert "\n" not in text and "  " not in text
    assert text.startswith("Clinica Demo Los Cabos: Hola Ana, agende su cita de seguimiento (por video o teléfono).")
    assert "1) Tue Oct 6, 10:00 AM 2) Wed Oct 7, 2:30 PM 3) Thu Oct 8, 9:00 AM" in text


def test_a_missing_template_says_which_file() -> None:
    with pytest.raises(TemplateMissing, match=r"templates/sms/no_such_message\.en\.txt; no language has it"):
        render("no_such_message", Channel.sms, "en", {}, templates_dir=TEMPLATES)
    with pytest.raises(TemplateMissing, match=r"'unknown_number_reply' in 'es'.*email/unknown_number_reply\.es"):
        render("unknown_number_reply", Channel.email, "es", {}, templates_dir=TEMPLATES)


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(TemplateRenderError, match=r"sms/checkin_invite\.en\.txt: 'first_name' is undefined"):
        render("checkin_invite", Channel.sms, "en", {"clinic_name": "X"}, templates_dir=TEMPLATES)


def test_dates_in_the_patients_zone_and_language() -> None:
    instant = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    assert format_when(instant, "America/Toronto", "en") == "Tuesday, March 3, 10:00 AM"
    assert format_when(instant, "America/Mazatlan", "es") == "martes 3 de marzo, 08:00"
    assert format_when(instant, "America/Toronto", "es", with_time=False, weekday=False) == "3 de marzo"
    assert visit_details(instant, "video", "America/Toronto", "es")["mode"] == "por video"


# -- the context builder against the database ----------------------------------------------------


def test_contexts_for_a_recorded_plan_render_every_message(session: Session, registry: ProtocolRegistry,
                                                            settings: Settings) -> None:
    clinic = make_clinic(session)
    result = procedures.record(session, clinic=clinic, data=procedure_in(), registry=registry, settings=settings,
                               actor="test", source="test")
    session.commit()
    orchestration.start_plan_flow([result.procedure.id], settings)  # flow_mode=off: built in-process
    session.expire_all()
    touchpoints = list(session.exec(select(Touchpoint).where(Touchpoint.procedure_id == result.procedure.id)))
    assert len(touchpoints) > 20

    built = contexts(session=session, touchpoints=touchpoints, links={touchpoints[0].id or 0: LINK_44})

    assert set(built) == {tp.id for tp in touchpoints}
    first = built[touchpoints[0].id or 0]
    assert first["link"] == LINK_44 and first["first_name"] == "Ana" and first["clinic_name"] == clinic.name
    assert first["emergency_number"] == "911" and first["clinic_phone"] == "+52 624 123 4567"
    for tp in touchpoints:
        rendered: Rendered = render(tp.template, tp.channel, "es", built[tp.id or 0], templates_dir=TEMPLATES)
        assert rendered.text
    rehab = next(tp for tp in touchpoints if tp.key == "rehab_p2")
    phase = built[rehab.id or 0]["phase"]
    assert phase["number"] == 2 and phase["exercises"][0]["name"] == "Sentadilla en la pared"
    survey = next(tp for tp in touchpoints if tp.key == "survey_mo3")
    assert built[survey.id or 0]["survey"]["id"] == "mo3"
    visit = next(tp for tp in touchpoints if tp.key == "visit_6w_offer")
    assert built[visit.id or 0]["visit"]["mode"] == "presencial"
