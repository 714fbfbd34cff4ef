"""The patient's survey form behind a signed link: GET /s/{token} shows it, POST /s/{token} saves it.

Public pages (no staff login), in the patient's language (en/es; `?lang=` switches). GET and HEAD
change nothing, so link-preview bots and mail scanners cannot use a link up. POST needs the form's
nonce (tied to the token): "save" keeps the answers given so far (the same link works again until the
survey closes), "send" also checks every required question and completes the survey (scores stored, the
link used up). An unknown or tampered link answers 404, an expired, used or closed one 410, each with a
clear page and the clinic's phone number; nothing here answers 500 for anything a patient can send.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from aftercare.messaging.context import display_phone, emergency_number, format_when, patient_context
from aftercare.models import Clinic, Language, Patient, SurveyResponse, SurveyStatus, TouchpointKind
from aftercare.settings import Settings
from aftercare.surveys import form, items, store, tokens
from aftercare.surveys.conversation import needs_help
from aftercare.surveys.tokens import LinkState, Lookup
from aftercare.timeutil import utcnow

log = logging.getLogger(__name__)
router = APIRouter(tags=["surveys"], include_in_schema=False)
HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store"}
MAX_FORM_FIELDS = 200

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "checkin": "Your check-in", "survey": "Your survey", "open_until": "Open until {until}.",
        "intro": "Hi {name}, please answer these questions. You can save and finish later with the same link.",
        "save": "Save and finish later", "send": "Send my answers", "saved": "Saved. You can finish later with the "
        "same link until {until}.", "fix": "Please check the questions marked below.",
        "emergency": "Not for emergencies: if you have chest pain or trouble breathing, call {emergency} now.",
        "call": "Questions? Call us at {phone}.", "other": "Español", "thanks_title": "Thank you",
        "thanks": "Thank you, {name}. We have your answers.",
        "help_coming": "You told us you need help: someone from {clinic} will call you soon, or call us at {phone}.",
        "unknown_title": "We cannot find this survey",
        "unknown": "This link is not complete or not valid. Please open the link from your message again.",
        "expired_title": "This survey has closed", "expired": "The time to answer this survey has passed.",
        "used_title": "Already answered", "used": "You have already answered this survey. Thank you!",
        "closed_title": "This survey has closed", "closed": "This survey is no longer open.",
        "stale_title": "Please open the link again",
        "stale": "This form is out of date. Please open the link from your message again; your saved answers "
        "are kept.",
        "reach": "If you need us, call {clinic} at {phone}.", "reach_any": "If you need us, call your clinic.",
        "emergency_any": "In an emergency, call your local emergency number.", "optional": "optional",
        "only_if": "Only if you answered \u201cyes\u201d above.",
    },
    "es": {
        "checkin": "Su control", "survey": "Su encuesta", "open_until": "Abierta hasta el {until}.",
        "intro": "Hola {name}, responda estas preguntas. Puede guardar y terminar después con el mismo enlace.",
        "save": "Guardar y terminar después", "send": "Enviar mis respuestas", "saved": "Guardado. Puede terminar "
        "después con el mismo enlace hasta el {until}.", "fix": "Revise las preguntas marcadas abajo.",
        "emergency": "No es para emergencias: si tiene dolor de pecho o le cuesta respirar, llame ya al {emergency}.",
        "call": "¿Preguntas? Llámenos al {phone}.", "other": "English", "thanks_title": "Gracias",
        "thanks": "Gracias, {name}. Recibimos sus respuestas.",
        "help_coming": "Nos dijo que necesita ayuda: alguien de {clinic} le llamará pronto, o llámenos al {phone}.",
        "unknown_title": "No encontramos esta encuesta",
        "unknown": "Este enlace no está completo o no es válido. Abra otra vez el enlace de su mensaje.",
        "expired_title": "Esta encuesta ya cerró", "expired": "Ya pasó el plazo para responder esta encuesta.",
        "used_title": "Ya respondida", "used": "Ya respondió esta encuesta. ¡Gracias!",
        "closed_title": "Esta encuesta ya cerró", "closed": "Esta encuesta ya no está abierta.",
        "stale_title": "Abra otra vez el enlace",
        "stale": "Este formulario está desactualizado. Abra otra vez el enlace de su mensaje; sus respuestas "
        "guardadas se conservan.",
        "reach": "Si nos necesita, llame a {clinic} al {phone}.", "reach_any": "Si nos necesita, llame a su clínica.",
        "emergency_any": "En una emergencia, llame a su número local de emergencias.", "optional": "opcional",
        "only_if": "Solo si respondió \u201csí\u201d arriba.",
    },
}


@lru_cache(maxsize=4)
def _templates(directory: Path) -> Jinja2Templates:
    """Templates of their own: no staff session, no CSRF cookie (opening the page sets nothing)."""
    return Jinja2Templates(directory=directory)


def _language(request: Request, patient: Patient | None) -> str:
    asked = request.query_params.get("lang")
    if asked in ("en", "es"):
        return asked
    if patient is not None:
        return Language(patient.language).value
    accept = request.headers.get("accept-language", "").lower()
    return "es" if accept.startswith("es") else "en"


def _render(request: Request, name: str, status: int, **context: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    templates = _templates(settings.templates_dir / "web")
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def _people(session: Session, response: SurveyResponse | None) -> tuple[Patient | None, Clinic | None]:
    if response is None:
        clinics = list(session.exec(select(Clinic).limit(2)))
        return None, clinics[0] if len(clinics) == 1 else None
    patient = session.get(Patient, response.patient_id)
    return patient, session.get(Clinic, patient.clinic_id) if patient else None


def _contact(clinic: Clinic | None, patient: Patient | None, lang: str) -> dict[str, str]:
    words = TEXT[lang]
    if clinic is None:
        return {"reach": words["reach_any"], "emergency_line": words["emergency_any"]}
    if patient is not None:  # in the form the patient dials from their own country
        context = patient_context(clinic=clinic, patient=patient)
        phone, number = str(context["clinic_phone"]), str(context["emergency_number"])
    else:
        phone, number = display_phone(clinic.phone, None), emergency_number(clinic.country)  # reader unknown
    return {"reach": words["reach"].format(clinic=clinic.name, phone=phone),
            "emergency_line": words["emergency"].format(emergency=number), "phone": phone}


def _gone(request: Request, session: Session, found: Lookup, *, status: int | None = None, why: str | None = None
          ) -> HTMLResponse:
    patient, clinic = _people(session, found.response)
    lang = _language(request, patient)
    kind = why or found.state.value
    code = status or (404 if found.state == LinkState.unknown else 410)
    words = TEXT[lang]
    also = None
    if patient is None:  # whose link this was is unknown, so is their language: say it in both
        other = "es" if lang == "en" else "en"
        also = {"lang": other, "title": TEXT[other][f"{kind}_title"], "message": TEXT[other][kind],
                **_contact(clinic, None, other)}
    return _render(request, "survey_gone.html", code, lang=lang, title=words[f"{kind}_title"],
                   message=words[kind], also=also, **_contact(clinic, patient, lang))


def _form_page(
    request: Request, session: Session, found: Lookup, token: str, *, status: int = 200,
    submitted: dict[str, str] | None = None, errors: dict[str, str] | None = None, notice: str | None = None,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    response, link = found.response, found.link
    assert response is not None and link is not None and response.id is not None
    patient, clinic = _people(session, response)
    assert patient is not None and clinic is not None
    lang = _language(request, patient)
    words = TEXT[lang]
    registry = items.instrument_registry(settings.config_dir)
    contact = _contact(clinic, patient, lang)
    sections = form.page(
        registry, response, items.protocol_settings(session, response), language=lang,
        emergency=str(patient_context(clinic=clinic, patient=patient)["emergency_number"]),
        answers=items.current_answers(session, response.id), submitted=submitted, errors=errors,
    )
    until = format_when(response.closes_at - timedelta(minutes=1), patient.timezone, lang)  # 23:59, not 00:00
    return _render(
        request, "survey_form.html", status, lang=lang, words=words, sections=sections,
        title=words["checkin" if response.kind == TouchpointKind.checkin else "survey"],
        intro=words["intro"].format(name=patient.first_name), until=words["open_until"].format(until=until),
        notice=notice.format(until=until) if notice else None, has_errors=bool(errors),
        action=f"{tokens.PATH_PREFIX}{token}" + (f"?lang={request.query_params['lang']}"
                                                 if request.query_params.get("lang") in ("en", "es") else ""),
        switch=f"{tokens.PATH_PREFIX}{token}?lang={'es' if lang == 'en' else 'en'}",
        nonce=tokens.form_nonce(settings.secret_key.get_secret_value(), link.token_hash),
        call=words["call"].format(phone=contact["phone"]), **contact,
    )


@router.api_route("/s/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def survey_page(request: Request, token: str) -> HTMLResponse:
    """The form (read-only: nothing is written, whoever opens it)."""
    with Session(request.app.state.engine) as session:
        found = tokens.lookup(session, token, now=utcnow())
        if found.state != LinkState.usable:
            return _gone(request, session, found)
        return _form_page(request, session, found, token)


@router.post("/s/{token}", response_class=HTMLResponse)
async def survey_submit(request: Request, token: str) -> HTMLResponse:
    """Save (partial) or send (complete) the answers."""
    raw = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
    fields = {key: value.replace("\x00", "\ufffd") for key, value in raw.items() if isinstance(value, str)}  # NUL: no
    from starlette.concurrency import run_in_threadpool

    for attempt in range(3):  # SQLite may be busy for a moment under concurrent writers
        try:
            return await run_in_threadpool(_submit, request, token, fields)
        except OperationalError:
            if attempt == 2:
                raise
            log.warning("survey form: database busy, trying again")
    raise AssertionError("unreachable")


def _submit(request: Request, token: str, fields: dict[str, str]) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    now = utcnow()
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        found = tokens.lookup(session, token, now=now)
        if found.state != LinkState.usable:
            return _gone(request, session, found)
        assert found.response is not None and found.link is not None and found.response.id is not None
        if not tokens.nonce_ok(settings.secret_key.get_secret_value(), found.link.token_hash, fields.get("nonce")):
            return _gone(request, session, found, status=403, why="stale")
        from aftercare.surveys.responses import locked

        response = locked(session, found.response.id)
        if response is None or response.id is None or response.status != SurveyStatus.open:
            session.rollback()
            return _gone(request, session, tokens.lookup(session, token, now=now))
        found = Lookup(found.state, found.link, response)
        patient, _clinic = _people(session, response)
        assert patient is not None
        lang = _language(request, patient)
        registry = items.instrument_registry(settings.config_dir)
        protocol_settings = items.protocol_settings(session, response)
        saved = items.current_answers(session, response.id)
        reading = form.read(registry, response, protocol_settings, fields, language=lang, saved=saved)
        for name, (si, raw_text, result) in reading.answers.items():
            if name in saved and saved[name] == result.value:
                continue
            store.record_answer(session, response, si, raw=raw_text, value=result.value, outcome=result.outcome.value,
                                reason=result.reason, counts=True, source="web", now=now)
            if result.handoff:
                needs_help(session, response=response, patient=patient, via="web", now=now)
        answers = items.current_answers(session, response.id)
        errors = dict(reading.errors)
        finishing = fields.get("action") == "send"
        if finishing and not errors:
            errors = form.missing_errors(registry, response, protocol_settings, answers, language=lang)
        if errors:
            session.commit()
            return _form_page(request, session, found, token, status=422, submitted=reading.submitted,
                              errors=errors, notice=TEXT[lang]["fix"])
        if not finishing:
            session.commit()
            return _form_page(request, session, found, token, notice=TEXT[lang]["saved"])
        store.complete(session, response, settings=settings, now=now, link=found.link, via="web")
        session.commit()
        return _thanks(request, session, response, lang)


def _thanks(request: Request, session: Session, response: SurveyResponse, lang: str) -> HTMLResponse:
    patient, clinic = _people(session, response)
    assert patient is not None and clinic is not None
    words = TEXT[lang]
    contact = _contact(clinic, patient, lang)
    helped = response.handoff_at is not None
    return _render(request, "survey_done.html", 200, lang=lang, title=words["thanks_title"],
                   message=words["thanks"].format(name=patient.first_name),
                   help_coming=words["help_coming"].format(clinic=clinic.name, phone=contact["phone"])
                   if helped else None, **contact)
