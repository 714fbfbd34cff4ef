"""The `aftercare` command, driven through Typer's CliRunner against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from aftercare.cli import app
from aftercare.models import (
    ApiToken,
    AuditEvent,
    Clinic,
    ConsentEvent,
    Patient,
    Procedure,
    ProcedureStatus,
    Role,
    StaffUser,
    Touchpoint,
    TouchpointStatus,
)
from aftercare.security import verify_password
from aftercare.timeutil import utcnow
from aftercare.web.auth import staff_for_token
from tests.factories import make_clinic, make_staff

runner = CliRunner()


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _when(days: int) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT10:30")


def record_args(**changes: str) -> list[str]:
    values = {
        "--external-id": "EHR-1", "--first-name": "Ana", "--last-name": "López", "--phone": "(416) 555-0199",
        "--email": "ana@example.org", "--language": "es", "--timezone": "America/Toronto", "--knee": "left",
        "--performed-at": _when(7), "--baseline-nrs": "6", "--baseline-koos-jr": "48.5",
    }
    values.update(changes)
    args = ["procedure", "record", "--consent-sms"]
    for option, value in values.items():
        if value:
            args += [option, value]
    return args


def _count(session: Session, model: type) -> int:
    session.expire_all()
    return int(session.exec(select(func.count()).select_from(model)).one())


@pytest.fixture
def clinic(session: Session) -> Clinic:
    clinic = make_clinic(session)
    make_staff(session, clinic, Role.physician, email="dr.reyes@example.org")
    return clinic


def test_record_stores_the_procedure_and_builds_its_plan(session: Session, clinic: Clinic) -> None:
    code, out, err = run(*record_args(), "--physician-email", "Dr.Reyes@example.org")

    assert code == 0, err
    assert out.startswith("recorded: procedure ")
    assert "plan: 2" in out and "touchpoints" in out
    procedure = session.exec(select(Procedure)).one()
    assert (procedure.external_id, procedure.knee_side.value, procedure.baseline_nrs) == ("EHR-1", "left", 6)
    assert procedure.status == ProcedureStatus.active and procedure.physician_id is not None
    patient = session.get(Patient, procedure.patient_id)
    assert patient is not None and patient.phone_e164 == "+14165550199"
    assert _count(session, Touchpoint) >= 25
    assert [c.channel.value for c in session.exec(select(ConsentEvent))] == ["sms"]
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "procedure.recorded")).one()
    assert audit.actor == "cli"

    again = run(*record_args(), "--physician-email", "dr.reyes@example.org")
    assert again[0] == 0 and again[1].startswith("already recorded: procedure ")
    assert _count(session, Procedure) == 1


@pytest.mark.parametrize(
    ("change", "option", "problem"),
    [
        ({"--phone": "555-01"}, "--phone", "not a valid phone number"),
        ({"--timezone": "Mars/Olympus"}, "--timezone", "unknown time zone"),
        ({"--knee": "middle"}, "--knee", "'left', 'right' or 'bilateral'"),
        ({"--performed-at": _when(4000)}, "--performed-at", "days in the future"),
        ({"--performed-at": "last tuesday"}, "--performed-at", "valid datetime"),
        ({"--baseline-nrs": "11"}, "--baseline-nrs", "less than or equal to 10"),
        ({"--protocol": "hip-replacement"}, "--protocol", "unknown protocol 'hip-replacement'"),
        ({"--physician-email": "nobody@example.org"}, "--physician-email", "no physician"),
        ({"--phone": "", "--email": ""}, "--phone", "a phone number or an email address is required"),
    ],
)
def test_bad_record_input_names_the_option_and_stores_nothing(
    session: Session, clinic: Clinic, change: dict[str, str], option: str, problem: str
) -> None:
    code, out, err = run(*record_args(**change))

    assert code == 2
    assert err.startswith(f"error: {option}: ") and problem in err, err
    assert out == ""
    assert _count(session, Procedure) == _count(session, Patient) == 0


def test_the_clinic_must_be_named_when_there_are_several(session: Session, clinic: Clinic) -> None:
    make_clinic(session, slug="tulum", name="Tulum")
    code, _, err = run(*record_args())
    assert code == 2 and err.startswith("error: --clinic: there are several clinics") and "cabo, tulum" in err
    code, _, err = run(*record_args(), "--clinic", "nowhere")
    assert code == 2 and "no clinic 'nowhere'" in err
    code, out, _ = run(*record_args(), "--clinic", "tulum")
    assert code == 0
    assert session.exec(select(Procedure)).one().clinic_id != clinic.id


def test_cancel_and_move(session: Session, clinic: Clinic) -> None:
    run(*record_args())
    procedure = session.exec(select(Procedure)).one()
    before = procedure.performed_at

    code, out, err = run("procedure", "move", str(procedure.id), "--performed-at", _when(9))
    assert code == 0, err
    assert "touchpoint(s) not yet sent rescheduled" in out
    session.expire_all()
    moved = session.get(Procedure, procedure.id)
    assert moved is not None and moved.performed_at - before == timedelta(days=2)

    code, out, err = run("procedure", "cancel", str(procedure.id), "--reason", "patient moved away")
    assert code == 0, err
    open_left = session.exec(
        select(Touchpoint).where(Touchpoint.procedure_id == procedure.id,
                                 Touchpoint.status == TouchpointStatus.scheduled)
    ).all()
    assert open_left == []
    cancelled = session.exec(select(Touchpoint).where(Touchpoint.status == TouchpointStatus.cancelled)).all()
    assert cancelled and all("patient moved away" in (tp.cancel_reason or "") for tp in cancelled)

    assert run("procedure", "move", str(procedure.id), "--performed-at", _when(10))[2] == (
        "error: id: a cancelled procedure cannot be moved\n"
    )
    assert run("procedure", "cancel", "999", "--reason", "x")[:3:2] == (2, "error: id: no procedure 999\n")
    assert run("procedure", "cancel", str(procedure.id), "--reason", " ")[:3:2] == (
        2, "error: --reason: a reason is required to cancel a procedure\n")
    code, out, _ = run("procedure", "cancel", str(procedure.id), "--reason", "again")
    assert code == 0 and out.endswith("was already cancelled (patient moved away)\n")
    code, _, err = run("procedure", "move", str(procedure.id), "--performed-at", "soon")
    assert code == 2 and err.startswith("error: --performed-at: ")


CSV_HEADER = "external_id;mrn;first_name;last_name;phone;email;language;timezone;consent_sms;knee_side;performed_at;" \
             "baseline_nrs\n"


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "procedures.csv"
    path.write_text(CSV_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8-sig")
    return path


def test_import_good_file_then_again(session: Session, clinic: Clinic, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        f"E-1;M-1;Ana;López;+1 416 555 0199;;es;America/Toronto;sí;left;{_when(3)};5",
        f"E-2;M-1;Ana;López;+1 416 555 0199;;es;America/Toronto;yes;right;{_when(3)};5",
        f"E-3;;Bob;Lee;;bob@example.org;en;America/Denver;no;bilateral;{_when(-5)};7",
    )
    code, out, err = run("procedure", "import", str(path))
    assert code == 1 and "line 2: consent_sms: expected yes/no" in out  # 'sí' is not a boolean
    assert _count(session, Procedure) == 0

    path = _csv(tmp_path, *(line.replace(";sí;", ";yes;") for line in path.read_text("utf-8-sig").splitlines()[1:]))
    code, out, err = run("procedure", "import", str(path), "--dry-run")
    assert code == 0 and out.startswith("dry run: 3 row(s) valid (3 new, 0 already recorded)")
    assert _count(session, Procedure) == 0

    code, out, err = run("procedure", "import", str(path))
    assert code == 0, err
    assert "3 row(s), 3 new procedure(s), 0 already recorded" in out
    assert _count(session, Patient) == 2
    assert {p.status for p in session.exec(select(Procedure))} == {ProcedureStatus.active}
    touchpoints = _count(session, Touchpoint)
    assert touchpoints >= 75

    code, out, _ = run("procedure", "import", str(path))
    assert code == 0 and "0 new procedure(s), 3 already recorded" in out, out
    assert (_count(session, Procedure), _count(session, Touchpoint)) == (3, touchpoints)


def test_import_reports_every_bad_row_and_stores_nothing(session: Session, clinic: Clinic, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        f"E-1;;Ana;López;+1 416 555 0199;;es;America/Toronto;yes;left;{_when(3)};5",
        f"E-2;;Bo;Lee;12;;en;America/Denver;no;sideways;{_when(3)};5",
        f"E-1;;Cy;Day;;cy@example.org;en;Atlantis/Main;no;right;{_when(3)};12",
    )
    code, out, err = run("procedure", "import", str(path))

    assert code == 1
    assert out.splitlines() == [
        "line 3: knee_side: Input should be 'left', 'right' or 'bilateral'",
        "line 4: baseline_nrs: Input should be less than or equal to 10",
        "line 4: external_id: 'E-1' is duplicated in this file (first on line 2)",
    ]
    assert err == f"error: {path}: 3 problem(s) on 2 line(s); nothing was imported\n"
    assert _count(session, Procedure) == _count(session, Patient) == _count(session, AuditEvent) == 0


def test_import_file_problems(session: Session, clinic: Clinic, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    assert run("procedure", "import", str(missing))[:3:2] == (2, f"error: {missing}: No such file or directory\n")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(CSV_HEADER.encode() + "E-1;;Ana;López".encode("latin-1"))
    code, _, err = run("procedure", "import", str(latin))
    assert code == 2 and "not UTF-8 text" in err
    no_knee = _csv(tmp_path)
    no_knee.write_text(CSV_HEADER.replace("knee_side;", ""), encoding="utf-8")
    code, out, _ = run("procedure", "import", str(no_knee))
    assert code == 1 and out == "line 1: knee_side: required column is missing\n"


def test_staff_create_and_token(session: Session, clinic: Clinic) -> None:
    code, out, err = run("staff", "create", "--email", "Coord@Example.org", "--name", "Cora Ord", "--role",
                         "coordinator", "--password", "correct horse battery")
    assert code == 0, err
    staff = session.exec(select(StaffUser).where(StaffUser.email == "coord@example.org")).one()
    assert staff.role == Role.coordinator and verify_password(staff.password_hash, "correct horse battery")

    code, out, err = run("staff", "token", "--email", "coord@example.org", "--name", "ehr-sync")
    assert code == 0 and "not shown again" in err
    secret = out.strip()
    assert staff_for_token(session, secret).id == staff.id
    stored = session.exec(select(ApiToken)).one()
    assert stored.token_hash != secret and stored.name == "ehr-sync"

    assert run("staff", "token", "--email", "nobody@example.org", "--name", "x")[:3:2] == (
        2, "error: id: no staff account 'nobody@example.org'\n")
    assert run("staff", "create", "--email", "coord@example.org", "--name", "Again", "--role", "admin",
               "--password", "another long one")[:3:2] == (
        2, "error: --email: a staff account 'coord@example.org' already exists\n")
    code, _, err = run("staff", "create", "--email", "a@example.org", "--name", "A", "--role", "boss",
                       "--password", "another long one")
    assert code == 2 and err.startswith("error: --role: 'boss'")
    code, _, err = run("staff", "create", "--email", "b@example.org", "--name", "B", "--role", "admin",
                       "--password", "short")
    assert code == 2 and err == "error: --password: at least 10 characters\n"


def test_staff_password_is_asked_for_when_not_given(session: Session, clinic: Clinic) -> None:
    code, _, err = run("staff", "create", "--email", "adm@example.org", "--name", "Ad Min", "--role", "admin",
                       input="a long passphrase\na long passphrase\n")
    assert code == 0, err
    staff = session.exec(select(StaffUser).where(StaffUser.email == "adm@example.org")).one()
    assert verify_password(staff.password_hash, "a long passphrase")


def test_clinic_create_and_list(session: Session, database_url: str) -> None:
    code, _, err = run("procedure", "cancel", "1", "--reason", "x")
    assert code == 2 and err.startswith("error: --clinic: no clinic yet")
    code, out, err = run("clinic", "create", "--slug", "cabo-knee", "--name", "Cabo Knee", "--timezone",
                         "America/Mazatlan", "--phone", "624 123 4567", "--country", "mx")
    assert code == 0, err
    clinic = session.exec(select(Clinic)).one()
    assert (clinic.slug, clinic.phone, clinic.country) == ("cabo-knee", "+526241234567", "MX")
    assert run("clinic", "list")[1].startswith("cabo-knee\tCabo Knee\tAmerica/Mazatlan")
    for args, option in [
        (["--slug", "Bad Slug!"], "--slug"),
        (["--timezone", "Nowhere"], "--timezone"),
        (["--phone", "12"], "--phone"),
        (["--send-window-start", "21:00"], "--send-window-end"),
        (["--slug", "cabo-knee"], "--slug"),
    ]:
        values = {"--slug": "other", "--name": "Other", "--timezone": "UTC", "--phone": "+1 212 555 0100"}
        values.update(dict(zip(args[::2], args[1::2], strict=True)))
        code, _, err = run("clinic", "create", *[x for pair in values.items() for x in pair])
        assert code == 2 and err.startswith(f"error: {option}: "), (args, err)
    assert _count(session, Clinic) == 1


def test_db_commands(database_url: str, tmp_path: Path) -> None:
    code, out, _ = run("db", "current")
    assert code == 0 and out.rstrip().endswith("up to date")
    heads = run("db", "heads")[1].split()
    assert len(heads) == 1 and heads[0] in out

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert "never migrated" in run("db", "current", "--database-url", fresh)[1]
    code, out, _ = run("db", "upgrade", "--database-url", fresh)
    assert code == 0 and out.strip().endswith(f"is at {heads[0]}")
    assert run("db", "downgrade", "base", "--database-url", fresh, input="n\n")[0] == 1  # declined
    code, out, _ = run("db", "downgrade", "base", "--yes", "--database-url", fresh)
    assert code == 0 and out.strip().endswith("is at base")


def test_protocol_list_and_validate(tmp_path: Path) -> None:
    code, out, _ = run("protocol", "list")
    assert code == 0 and "msc-knee-injection" in out and "msc-knee-ligament" in out
    code, out, _ = run("protocol", "validate")
    assert code == 0 and out.count("ok: ") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: one\ntitle: t\nprocedure: p\ntouchpoints: []\n", encoding="utf-8")
    code, _, err = run("protocol", "validate", str(bad))
    assert code == 2 and err.startswith(f"error: {bad}: ") and "version" in err and "touchpoints" in err
