"""CSV import: good files stored and planned in bulk; any bad row means nothing stored; re-imports are no-ops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from aftercare import imports
from aftercare.imports import RowError, import_csv
from aftercare.models import (
    AuditEvent,
    Channel,
    Clinic,
    ConsentEvent,
    Language,
    Patient,
    Procedure,
    ProcedureStatus,
    Role,
    Touchpoint,
)
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic, make_staff

HEADER = (
    "external_id,mrn,first_name,last_name,phone,email,language,timezone,preferred_channel,consent_sms,"
    "consent_email,protocol_id,knee_side,performed_at,physician_email,baseline_nrs,baseline_koos_jr"
)


def _day(days: int) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT10:00:00")


def good_rows() -> list[str]:
    return [
        f"P-1,MRN-1,Ana,López,+1 416 555 0199,ana@example.org,es,America/Toronto,sms,yes,yes,"
        f"msc-knee-injection,left,{_day(5)},physician@example.org,6,52.4",
        # the same patient (MRN-1), the other knee: one patient, two plans
        f"P-2,MRN-1,Ana,López,+1 416 555 0199,ana@example.org,es,America/Toronto,sms,yes,yes,"
        f"msc-knee-injection,right,{_day(5)},,6,",
        f"P-3,,Bob,Smith,(212) 555-0123,,EN,America/New_York,,1,0,msc-knee-ligament,Bilateral,{_day(-2)},,4,61",
        f"P-4,MRN-4,Carla,Ruiz,,carla@example.org,es,Europe/Madrid,email,no,true,,right,{_day(30)},,7,",
    ]


def _csv(rows: list[str], header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


@pytest.fixture
def clinic(session: Session) -> Clinic:
    clinic = make_clinic(session)
    make_staff(session, clinic, Role.physician)
    return clinic


def _import(session: Session, clinic: Clinic, registry: ProtocolRegistry, settings: Settings, text: str,
            **kw: bool) -> imports.ImportReport:
    report = import_csv(session, clinic=clinic, text=text, registry=registry, settings=settings, actor="test", **kw)
    if report.ok:
        session.commit()
    else:
        session.rollback()
    return report


def test_good_file_is_stored_and_planned(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                         settings: Settings) -> None:
    report = _import(session, clinic, registry, settings, _csv(good_rows()))

    assert report.rejected == []
    assert [(a.line, a.external_id, a.new) for a in report.accepted] == [
        (2, "P-1", True), (3, "P-2", True), (4, "P-3", True), (5, "P-4", True)
    ]
    assert len(report.procedure_ids_to_plan) == 4
    assert report.rows_written["patient"] == 3 and report.rows_written["procedure"] == 4

    imports.plan_imported(report.procedure_ids_to_plan, settings, wait=True)
    session.expire_all()
    procedures = {p.external_id: p for p in session.exec(select(Procedure))}
    assert {p.status for p in procedures.values()} == {ProcedureStatus.active}
    assert procedures["P-1"].patient_id == procedures["P-2"].patient_id
    assert procedures["P-3"].protocol_id == "msc-knee-ligament"
    assert procedures["P-1"].baseline_koos_jr == pytest.approx(52.4)
    assert procedures["P-1"].physician_id is not None and procedures["P-2"].physician_id is None
    for procedure in procedures.values():
        touchpoints = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure.id)).all()
        assert len(touchpoints) >= 25
    # two plans of Ana: the same message on the same day goes out once
    assert _count_merged(session, procedures["P-2"].id) > 0

    ana = session.get(Patient, procedures["P-1"].patient_id)
    assert ana is not None
    assert (ana.phone_e164, ana.language, ana.timezone) == ("+14165550199", Language.es, "America/Toronto")
    bob = session.get(Patient, procedures["P-3"].patient_id)
    assert bob is not None and bob.phone_e164 == "+12125550123" and bob.preferred_channel == Channel.sms
    assert bob.language == Language.en
    carla = session.get(Patient, procedures["P-4"].patient_id)
    assert carla is not None and carla.phone_e164 is None and carla.preferred_channel == Channel.email
    # naive performed_at is read in the clinic's zone (America/Mazatlan, UTC-7)
    assert procedures["P-4"].performed_at.hour == 17

    consents = {(c.patient_id, c.channel) for c in session.exec(select(ConsentEvent))}
    assert consents == {(ana.id, Channel.sms), (ana.id, Channel.email), (bob.id, Channel.sms),
                        (carla.id, Channel.email)}
    actions = [a.action for a in session.exec(select(AuditEvent))]
    assert actions.count("procedure.recorded") == 4
    assert actions.count("consent.granted") == 4
    assert actions.count("procedures.imported") == 1


def _count_merged(session: Session, procedure_id: int | None) -> int:
    rows = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure_id,
                                                 Touchpoint.status == "merged"))
    return len(rows.all())


def test_reimport_of_the_same_file_stores_nothing_twice(session: Session, clinic: Clinic,
                                                        registry: ProtocolRegistry, settings: Settings) -> None:
    text = _csv(good_rows())
    first = _import(session, clinic, registry, settings, text)
    imports.plan_imported(first.procedure_ids_to_plan, settings, wait=True)
    before = {m: _count(session, m) for m in (Patient, Procedure, ConsentEvent, Touchpoint)}

    again = _import(session, clinic, registry, settings, text)

    assert again.rejected == []
    assert [a.new for a in again.accepted] == [False] * 4
    assert [a.procedure_id for a in again.accepted] == [a.procedure_id for a in first.accepted]
    assert again.procedure_ids_to_plan == []
    imports.plan_imported(again.procedure_ids_to_plan, settings, wait=True)
    assert {m: _count(session, m) for m in (Patient, Procedure, ConsentEvent, Touchpoint)} == before


def test_new_rows_join_known_patients(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                      settings: Settings) -> None:
    _import(session, clinic, registry, settings, _csv(good_rows()[2:3]))
    # Bob again, matched on phone + last name; a repeat injection, now with email consent and an email address
    repeat = f"P-9,,Bob,Smith,+12125550123,bob@example.org,en,America/Chicago,,,yes,,left,{_day(90)},,3,"
    report = _import(session, clinic, registry, settings, _csv([repeat]))

    assert report.rejected == [] and report.rows_written["patient"] == 1
    patients = session.exec(select(Patient)).all()
    assert len(patients) == 1
    assert (patients[0].email, patients[0].timezone) == ("bob@example.org", "America/Chicago")
    channels = sorted(c.channel for c in session.exec(select(ConsentEvent)))
    assert channels == [Channel.email, Channel.sms]


BAD_ROWS = {
    "phone": "B-1,,Dan,Doe,+1 555,dan@example.org,en,America/New_York,,,,,left,{d},,5,",
    "timezone": "B-2,,Eve,Doe,,eve@example.org,en,Mars/Olympus,,,,,left,{d},,5,",
    "protocol_id": "B-3,,Fay,Doe,,fay@example.org,en,,,,,hip-replacement,left,{d},,5,",
    "knee_side": "B-4,,Gus,Doe,,gus@example.org,en,,,,,,middle,{d},,5,",
    "performed_at": "B-5,,Hal,Doe,,hal@example.org,en,,,,,,left,{far},,5,",
    "baseline_nrs": "B-6,,Ivy,Doe,,ivy@example.org,en,,,,,,left,{d},,11,",
    "external_id": "P-1,,Jon,Doe,,jon@example.org,en,,,,,,left,{d},,5,",  # P-1 is also in the good rows
    "consent_sms": "B-8,,Kim,Doe,,kim@example.org,en,,,maybe,,,left,{d},,5,",
    "physician_email": "B-9,,Lou,Doe,,lou@example.org,en,,,,,,left,{d},nobody@example.org,5,",
}


def test_bad_rows_are_all_reported_and_nothing_is_stored(session: Session, clinic: Clinic,
                                                         registry: ProtocolRegistry, settings: Settings) -> None:
    bad = [row.format(d=_day(3), far=_day(4000)) for row in BAD_ROWS.values()]
    text = _csv([*good_rows(), *bad])

    report = _import(session, clinic, registry, settings, text)

    by_line = {e.line: e for e in report.rejected}
    expected = {6 + i: name for i, name in enumerate(BAD_ROWS)}
    assert {line: by_line[line].field for line in expected} == expected
    assert set(by_line) == set(expected)
    assert "duplicated in this file (first on line 2)" in by_line[12].message
    assert "future" in by_line[10].message
    assert "less than or equal to 10" in by_line[11].message
    assert "hip-replacement" in by_line[8].message
    assert report.accepted == [] and report.procedure_ids_to_plan == []
    for model in (Patient, Procedure, ConsentEvent, AuditEvent, Touchpoint):
        assert _count(session, model) == 0, model


def test_a_row_can_have_several_problems(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                         settings: Settings) -> None:
    row = f"X-1,,Max,Doe,12,,fr,Nowhere/City,,,,,up,{_day(1)},,-1,"
    report = _import(session, clinic, registry, settings, _csv([row]))
    assert {e.field for e in report.rejected} == {"language", "knee_side", "baseline_nrs"}  # pydantic first
    row = f"X-1,,Max,Doe,12,,en,Nowhere/City,,,,,left,{_day(1)},,1,"
    report = _import(session, clinic, registry, settings, _csv([row]))
    assert [e.field for e in report.rejected] == ["phone", "timezone"]


def test_missing_or_unknown_columns_reject_the_file(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                                     settings: Settings) -> None:
    header = HEADER.replace("knee_side,", "").replace("baseline_nrs", "nrs")
    report = _import(session, clinic, registry, settings, _csv([], header=header))
    problems = {e.field: e for e in report.rejected}
    assert set(problems) == {"nrs", "knee_side", "baseline_nrs"}
    assert problems["knee_side"] == RowError(1, "knee_side", "required column is missing")
    assert problems["baseline_nrs"] == RowError(1, "baseline_nrs", "required column is missing")
    assert problems["nrs"].line == 1 and "unknown column" in problems["nrs"].message
    assert _import(session, clinic, registry, settings, "").rejected[0].field == "header"
    assert _count(session, Procedure) == 0


def test_stored_procedure_with_different_data_is_rejected(session: Session, clinic: Clinic,
                                                          registry: ProtocolRegistry, settings: Settings) -> None:
    rows = good_rows()
    _import(session, clinic, registry, settings, _csv(rows))
    changed = rows[2].replace(",Bilateral,", ",left,").replace(",4,61", ",5,61")
    report = _import(session, clinic, registry, settings, _csv([changed, rows[3]]))
    assert [(e.line, e.field) for e in report.rejected] == [(2, "baseline_nrs"), (2, "knee_side")]
    assert "already stored with knee_side bilateral" in report.rejected[1].message
    assert _count(session, Procedure) == 4


def test_semicolons_excel_sep_line_bom_and_crlf(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                 settings: Settings) -> None:
    rows = [r.replace(",", ";") for r in good_rows()[2:]]
    rows[0] = rows[0].replace(";Bob;", ';"Bob; Jr";')
    text = "\ufeff" + "\r\n".join(["sep=;", HEADER.replace(",", ";"), *rows, ""])  # as Excel writes it
    report = _import(session, clinic, registry, settings, text)
    assert report.rejected == []
    assert [a.line for a in report.accepted] == [3, 4]
    assert session.exec(select(Patient.first_name).order_by(col(Patient.id))).all() == ["Bob; Jr", "Carla"]


def test_dry_run_validates_but_writes_nothing(session: Session, clinic: Clinic, registry: ProtocolRegistry,
                                              settings: Settings) -> None:
    report = _import(session, clinic, registry, settings, _csv(good_rows()), dry_run=True)
    assert report.ok and len(report.accepted) == 4 and report.procedure_ids_to_plan == []
    assert all(a.procedure_id is None for a in report.accepted)
    assert _count(session, Patient) == 0
