"""The variables a message template may use, built from patient, clinic, protocol and touchpoint.

Every message:  first_name, clinic_name, clinic_phone (display form), emergency_number, link (or None)
Touchpoints add: kind, key, settings (protocol settings over GUIDANCE_DEFAULTS, plus `analgesic`,
                 a label), phase (rehab phase: number, exercises [{name, short, how, dose}], avoid,
                 gated), survey ({id, minutes, until}), visit ({when, mode, mode_key}), slots ([])
Extra keys (e.g. `failed_channel` for channel_switch_notice, `slots` for visit offers, `visit` for
booking messages) are passed in `extra`. A check-in/survey invitation or survey reminder that belongs to
a database session (the dispatcher's claim) gets its signed survey link (`aftercare.surveys.tokens`,
the same link each time it is rendered) unless `link` is given. Only first name and clinic travel: never a diagnosis,
procedure, side or date of birth.

Contexts are plain JSON-able dicts: build them while the rows are at hand, render anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import yaml
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from aftercare.models import Clinic, Language, Patient, Procedure, ProtocolSnapshot, Touchpoint, TouchpointKind
from aftercare.protocols.schema import Protocol
from aftercare.settings import get_settings

GUIDANCE_DEFAULTS: dict[str, Any] = {
    "nsaid_hold_pre_days": 7,
    "nsaid_hold_post_days": 14,
    "allowed_analgesic": "acetaminophen",
    "antithrombotic_policy": "physician_only",
    "ice_policy": "comfort_allowed",
    "no_submersion_hours": 48,
    "weight_bearing": "as_tolerated",
    "pt_start_day": 14,
    "impact_sport_earliest_week": 6,
    "no_eccentrics_before_week": None,
    "reassess_at_months": None,
}

# Emergency numbers by ISO country. 112 is routed to the local service by GSM networks almost everywhere.
EMERGENCY_NUMBERS = {
    "US": "911", "CA": "911", "MX": "911", "PR": "911", "CR": "911", "PA": "911", "SV": "911", "AR": "911",
    "GB": "999", "AU": "000", "NZ": "111", "CO": "123", "CL": "131", "PE": "105", "GT": "110",
}
DEFAULT_EMERGENCY_NUMBER = "112"

_WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "es": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}
_MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
}


@lru_cache(maxsize=4)
def phrases(templates_dir: Path) -> dict[str, Any]:
    """Labels for protocol ids (exercises, things to avoid, visit modes, analgesics, doses) per language."""
    data = yaml.safe_load((templates_dir / "email" / "_phrases.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def emergency_number(country: str | None) -> str:
    return EMERGENCY_NUMBERS.get((country or "").upper(), DEFAULT_EMERGENCY_NUMBER)


def _region(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


def display_phone(phone: str, reader_region: str | None) -> str:
    """National format for a reader in the same country, international otherwise."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    same = reader_region is not None and phonenumbers.region_code_for_number(number) == reader_region
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if same else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return str(phonenumbers.format_number(number, fmt))


def format_when(instant: datetime, zone: str, language: str, with_time: bool = True, weekday: bool = True) -> str:
    """`Tuesday, March 3, 10:00 AM` / `martes 3 de marzo, 10:00` in the reader's zone (`March 3` without both)."""
    local = instant.astimezone(ZoneInfo(zone))
    day_name, month = _WEEKDAYS[language][local.weekday()], _MONTHS[language][local.month - 1]
    if language == "es":
        day = f"{day_name} {local.day} de {month}" if weekday else f"{local.day} de {month}"
        return f"{day}, {local:%H:%M}" if with_time else day
    day = f"{day_name}, {month} {local.day}" if weekday else f"{month} {local.day}"
    hour = local.strftime("%I:%M").lstrip("0") + (" AM" if local.hour < 12 else " PM")
    return f"{day}, {hour}" if with_time else day


def patient_context(
    *, clinic: Clinic, patient: Patient | None = None, language: Language | str | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """The variables of every message. Without a patient (a reply to an unknown number) only the clinic's."""
    region = _region(patient.phone_e164 if patient else None)
    lang = Language(language or (patient.language if patient else get_settings().default_language)).value
    context: dict[str, Any] = {
        "clinic_name": clinic.name,
        "clinic_phone": display_phone(clinic.phone, region or clinic.country),
        "emergency_number": emergency_number(region or clinic.country),
        "link": link,
        "language": lang,
    }
    if patient is not None:
        context["first_name"] = patient.first_name
    return context


def touchpoint_context(
    touchpoint: Touchpoint,
    *,
    patient: Patient,
    clinic: Clinic,
    protocol: Protocol | None,
    link: str | None = None,
    extra: Mapping[str, Any] | None = None,
    templates_dir: Path | None = None,
) -> dict[str, Any]:
    """Everything the touchpoint's template may use (see the module docstring)."""
    lang = Language(patient.language).value
    labels = phrases(templates_dir or get_settings().templates_dir)
    link = link if link is not None else _survey_link(touchpoint)
    context = patient_context(clinic=clinic, patient=patient, link=link)
    settings = {**GUIDANCE_DEFAULTS, **(protocol.settings if protocol else {})}
    analgesic = str(settings["allowed_analgesic"])
    label = labels["analgesics"].get(analgesic, {}).get(lang) or {}
    settings["analgesic"] = label.get("name", analgesic.replace("_", " "))
    settings["analgesic_short"] = label.get("short", settings["analgesic"])
    payload = touchpoint.payload or {}
    context.update(
        kind=TouchpointKind(touchpoint.kind).value,
        key=touchpoint.key,
        settings=settings,
        phase=_phase(protocol, payload.get("phase"), lang, labels),
        survey=_survey(touchpoint, payload, patient.timezone, lang),
        visit=_visit(payload, patient.timezone, lang, labels),
        slots=[],
    )
    context.update(extra or {})
    return context


def _survey_link(touchpoint: Touchpoint) -> str | None:
    """The signed link of a check-in/survey invitation or reminder, issued in the row's own session."""
    session = object_session(touchpoint)
    if session is None or touchpoint.id is None:
        return None
    from aftercare.surveys.tokens import links_for_touchpoints

    return links_for_touchpoints(session, [touchpoint], get_settings()).get(touchpoint.id)  # type: ignore[arg-type]


def _phase(protocol: Protocol | None, phase_id: str | None, lang: str, labels: dict[str, Any]) -> dict[str, Any] | None:
    if not protocol or not phase_id:
        return None
    phase = next((p for p in protocol.rehab_phases if p.id == phase_id), None)
    if phase is None:
        return None
    exercises = []
    for exercise in phase.exercises:
        label = labels["exercises"].get(exercise.id, {}).get(lang) or {}
        name = label.get("name") or exercise.id.replace("_", " ")
        dose = exercise.dose
        if dose and lang != "en":
            dose = labels["doses"].get(dose, {}).get(lang, dose)
        exercises.append({"id": exercise.id, "name": name, "short": label.get("short") or name,
                          "how": label.get("how") or "", "dose": dose})
    avoid = [labels["avoid"].get(item, {}).get(lang, item.replace("_", " ")) for item in phase.avoid]
    return {"id": phase.id, "number": int(phase.id.lstrip("P") or 0), "exercises": exercises, "avoid": avoid,
            "gated": phase.progress_if is not None}


def _survey(touchpoint: Touchpoint, payload: Mapping[str, Any], zone: str, lang: str) -> dict[str, Any] | None:
    if "survey" not in payload:
        return None
    minutes = 2 if touchpoint.kind == TouchpointKind.checkin else 5
    return {"id": payload["survey"], "minutes": minutes,
            "until": format_when(touchpoint.window_end, zone, lang, with_time=False, weekday=False)}


def _visit(payload: Mapping[str, Any], zone: str, lang: str, labels: dict[str, Any]) -> dict[str, Any] | None:
    target = payload.get("target")
    if not target:
        return None
    return visit_details(datetime.fromisoformat(str(target)), str(payload.get("mode") or "in_person"), zone, lang,
                         labels=labels)


def visit_details(
    when: datetime, mode: str, zone: str, language: Language | str, *, labels: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `visit` variable (booking messages pass it in `extra`): when, day, mode label, mode_key."""
    lang = Language(language).value
    labels = labels or phrases(get_settings().templates_dir)
    return {"when": format_when(when, zone, lang), "day": format_when(when, zone, lang, with_time=False),
            "mode": labels["visit_modes"].get(mode, {}).get(lang, mode.replace("_", " ")), "mode_key": mode}


def contexts(
    *, session: Session, touchpoints: Sequence[Touchpoint], links: Mapping[int, str] | None = None
) -> dict[int, dict[str, Any]]:
    """Contexts for many touchpoints at once (a dispatcher batch): a few queries, no query per row."""
    procedure_ids = {tp.procedure_id for tp in touchpoints}
    procedures = {p.id: p for p in session.exec(select(Procedure).where(col(Procedure.id).in_(procedure_ids)))}
    patients = {p.id: p for p in session.exec(
        select(Patient).where(col(Patient.id).in_({tp.patient_id for tp in touchpoints})))}
    clinics = {c.id: c for c in session.exec(
        select(Clinic).where(col(Clinic.id).in_({p.clinic_id for p in procedures.values()})))}
    wanted = {(p.protocol_id, p.protocol_version) for p in procedures.values()}
    protocols: dict[tuple[str, str], Protocol] = {}
    for snapshot in session.exec(select(ProtocolSnapshot).where(
            col(ProtocolSnapshot.protocol_id).in_({w[0] for w in wanted}))):
        if (snapshot.protocol_id, snapshot.version) in wanted:
            protocols[(snapshot.protocol_id, snapshot.version)] = Protocol.model_validate(snapshot.body)
    out: dict[int, dict[str, Any]] = {}
    for tp in touchpoints:
        assert tp.id is not None
        procedure = procedures[tp.procedure_id]
        out[tp.id] = touchpoint_context(
            tp,
            patient=patients[tp.patient_id],
            clinic=clinics[procedure.clinic_id],
            protocol=protocols.get((procedure.protocol_id, procedure.protocol_version)),
            link=(links or {}).get(tp.id),
        )
    return out
