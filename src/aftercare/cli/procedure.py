"""`aftercare procedure record|import|cancel|move`: procedures from the command line.

Recording commits first, then starts the `procedure-aftercare` flow and (in inline or off flow mode)
waits for it, so the plan printed is the plan stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from aftercare import accounts, imports, orchestration, procedures
from aftercare.cli.common import ACTOR, errors, fail, registry
from aftercare.db import session_scope
from aftercare.models import Patient, Procedure, Touchpoint, TouchpointStatus
from aftercare.procedures import ProcedureIn
from aftercare.settings import get_settings

procedure_app = typer.Typer(help="Record, import, move and cancel procedures.", no_args_is_help=True)

# Service field -> the option it came from, so errors name what the user typed.
OPTIONS = {
    "external_id": "--external-id",
    "patient.mrn": "--mrn",
    "patient.first_name": "--first-name",
    "patient.last_name": "--last-name",
    "patient.phone": "--phone",
    "patient.email": "--email",
    "patient.language": "--language",
    "patient.timezone": "--timezone",
    "patient.preferred_channel": "--preferred-channel",
    "protocol_id": "--protocol",
    "knee_side": "--knee",
    "performed_at": "--performed-at",
    "physician_email": "--physician-email",
    "baseline_nrs": "--baseline-nrs",
    "baseline_koos_jr": "--baseline-koos-jr",
    "clinic": "--clinic",
    "reason": "--reason",
}
_CLINIC = typer.Option(None, "--clinic", help="clinic slug (default: the only clinic)")


def _local(value: datetime, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _plan_summary(session: Session, procedure_id: int) -> str:
    touchpoints = session.exec(
        select(Touchpoint).where(Touchpoint.procedure_id == procedure_id).order_by(col(Touchpoint.due_at))
    ).all()
    if not touchpoints:
        return "plan: queued for the procedure-aftercare flow (the ticker builds it if the flow does not run)"
    counts: dict[str, int] = {}
    for tp in touchpoints:
        counts[tp.status.value] = counts.get(tp.status.value, 0) + 1
    upcoming = [tp for tp in touchpoints if tp.status in (TouchpointStatus.scheduled, TouchpointStatus.held)]
    patient = session.get(Patient, touchpoints[0].patient_id)
    first = (
        f"; next: {upcoming[0].key} by {upcoming[0].channel.value} at "
        f"{_local(upcoming[0].due_at, patient.timezone if patient else 'UTC')}"
        if upcoming
        else ""
    )
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"plan: {len(touchpoints)} touchpoints ({detail}){first}"


@procedure_app.command()
def record(
    external_id: str = typer.Option(..., "--external-id", help="the clinic's id of the procedure"),
    first_name: str = typer.Option(..., "--first-name"),
    last_name: str = typer.Option(..., "--last-name"),
    phone: str | None = typer.Option(None, "--phone", help="any common format, stored as E.164 (phone or email)"),
    email: str | None = typer.Option(None, "--email"),
    mrn: str | None = typer.Option(None, "--mrn", help="the clinic's patient id"),
    language: str | None = typer.Option(None, "--language", help="en or es (default AFTERCARE_DEFAULT_LANGUAGE)"),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone (default AFTERCARE_DEFAULT_TIMEZONE)"),
    preferred_channel: str | None = typer.Option(None, "--preferred-channel", help="sms or email"),
    consent_sms: bool = typer.Option(False, "--consent-sms/--no-consent-sms", help="the patient agreed to SMS"),
    consent_email: bool = typer.Option(False, "--consent-email/--no-consent-email", help="agreed to email"),
    protocol: str = typer.Option("msc-knee-injection", "--protocol", help="protocol id"),
    knee: str = typer.Option(..., "--knee", help="left, right or bilateral"),
    performed_at: str = typer.Option(..., "--performed-at", help="ISO 8601; without an offset, the clinic's zone"),
    baseline_nrs: str = typer.Option(..., "--baseline-nrs", help="pain 0-10 before the procedure"),
    baseline_koos_jr: str | None = typer.Option(None, "--baseline-koos-jr", help="KOOS JR interval score 0-100"),
    physician_email: str | None = typer.Option(None, "--physician-email", help="the treating physician"),
    clinic: str | None = _CLINIC,
) -> None:
    """Record one procedure and build its care plan. Recording the same external id again is a no-op
    (a new --performed-at reschedules it)."""
    settings = get_settings()
    protocols = registry(settings)
    patient = {
        "mrn": mrn, "first_name": first_name, "last_name": last_name, "phone": phone, "email": email,
        "language": language and language.lower(), "timezone": timezone,
        "preferred_channel": preferred_channel and preferred_channel.lower(),
        "consent_sms": consent_sms, "consent_email": consent_email,
    }
    values: dict[str, Any] = {
        "external_id": external_id, "protocol_id": protocol, "knee_side": knee.lower(), "performed_at": performed_at,
        "baseline_nrs": baseline_nrs, "baseline_koos_jr": baseline_koos_jr, "physician_email": physician_email,
        "patient": {k: v for k, v in patient.items() if v is not None},
    }
    with errors(OPTIONS, conflict="--external-id"):
        data = ProcedureIn.model_validate({k: v for k, v in values.items() if v is not None})
        with session_scope() as session:
            recorded = procedures.record(
                session, clinic=accounts.find_clinic(session, clinic), data=data, registry=protocols,
                settings=settings, actor=ACTOR, source="cli",
            )
            procedure_id = recorded.procedure.id
    assert procedure_id is not None
    if recorded.needs_plan:
        orchestration.start_plan_flow([procedure_id], settings, wait=True)
    with session_scope() as session:
        procedure = session.get(Procedure, procedure_id)
        assert procedure is not None
        owner = session.get(Patient, procedure.patient_id)
        assert owner is not None
        what = "recorded" if recorded.created else ("rescheduled" if recorded.rescheduled else "already recorded")
        typer.echo(
            f"{what}: procedure {procedure.id} ({procedure.external_id}) for patient {owner.id} "
            f"{owner.first_name} {owner.last_name}, {procedure.knee_side.value} knee, "
            f"{_local(procedure.performed_at, owner.timezone)}, {procedure.protocol_id} {procedure.protocol_version}"
        )
        typer.echo(_plan_summary(session, procedure_id))


def _count_touchpoints(session: Session, procedure_ids: Sequence[int]) -> int:
    total = 0
    for start in range(0, len(procedure_ids), 500):
        chunk = procedure_ids[start : start + 500]
        total += int(session.exec(
            select(func.count()).select_from(Touchpoint).where(col(Touchpoint.procedure_id).in_(chunk))
        ).one())
    return total


@procedure_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV file with a header row (columns: see `aftercare.imports`)"),
    clinic: str | None = _CLINIC,
    dry_run: bool = typer.Option(False, "--dry-run", help="validate every row and report; write nothing"),
) -> None:
    """Import procedures from a CSV file: every row is validated first, and if any row is rejected
    nothing is imported (exit 1, each problem listed with its line and column)."""
    settings = get_settings()
    protocols = registry(settings)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        fail(str(file), exc.strerror or str(exc))
    except UnicodeDecodeError as exc:
        fail(str(file), f"not UTF-8 text (byte {exc.start}); save it as \"CSV UTF-8\"")
    started = time.perf_counter()
    with errors(OPTIONS, conflict=str(file)), session_scope() as session:
        report = imports.import_csv(
            session, clinic=accounts.find_clinic(session, clinic), text=text, registry=protocols, settings=settings,
            actor=ACTOR, dry_run=dry_run,
        )
        if not report.ok:
            for problem in report.rejected:
                typer.echo(f"line {problem.line}: {problem.field}: {problem.message}")
            lines = len({p.line for p in report.rejected})
            typer.echo(f"error: {file}: {len(report.rejected)} problem(s) on {lines} line(s); nothing was imported",
                       err=True)
            raise typer.Exit(1)  # rolls the (empty) transaction back
    unchanged = len(report.accepted) - report.new
    if dry_run:
        typer.echo(f"dry run: {len(report.accepted)} row(s) valid ({report.new} new, {unchanged} already recorded); "
                   "nothing was written")
        return
    written = time.perf_counter() - started
    imports.plan_imported(report.procedure_ids_to_plan, settings, wait=True)
    with session_scope() as session:
        touchpoints = _count_touchpoints(session, [a.procedure_id for a in report.accepted if a.procedure_id])
    typer.echo(f"imported {file}: {len(report.accepted)} row(s), {report.new} new procedure(s), "
               f"{unchanged} already recorded (unchanged); {touchpoints} touchpoints planned "
               f"({written:.1f} s to validate and write, {time.perf_counter() - started - written:.1f} s to plan)")


@procedure_app.command()
def cancel(
    procedure_id: int = typer.Argument(..., help="procedure id"),
    reason: str = typer.Option(..., "--reason", help="why; kept on the procedure and its touchpoints"),
    clinic: str | None = _CLINIC,
) -> None:
    """Cancel a procedure: everything not yet sent is cancelled, with the reason kept."""
    with errors(OPTIONS, conflict="id"), session_scope() as session:
        procedure = procedures.get(session, accounts.find_clinic(session, clinic).id or 0, procedure_id)
        already = procedure.cancel_reason if procedure.status.value == "cancelled" else None
        count = procedures.cancel(session, procedure, reason, actor=ACTOR)
    if already is not None:
        typer.echo(f"procedure {procedure_id} ({procedure.external_id}) was already cancelled ({already})")
    else:
        typer.echo(f"cancelled procedure {procedure_id} ({procedure.external_id}): {count} touchpoint(s) not yet "
                   f"sent are cancelled ({reason.strip()})")


@procedure_app.command()
def move(
    procedure_id: int = typer.Argument(..., help="procedure id"),
    performed_at: str = typer.Option(..., "--performed-at", help="the new date; without an offset, the clinic's zone"),
    clinic: str | None = _CLINIC,
) -> None:
    """Move a procedure to a new date: every touchpoint not yet sent moves with it."""
    settings = get_settings()
    try:
        when = TypeAdapter(datetime).validate_python(performed_at)
    except ValidationError as exc:
        fail("--performed-at", exc.errors()[0]["msg"])
    with errors(OPTIONS, conflict="id"), session_scope() as session:
        procedure = procedures.get(session, accounts.find_clinic(session, clinic).id or 0, procedure_id)
        moved = procedures.move(session, procedure, when, settings, actor=ACTOR)
        zone = session.get(Patient, procedure.patient_id)
        shown = _local(procedure.performed_at, zone.timezone if zone else "UTC")
    typer.echo(f"moved procedure {procedure_id} ({procedure.external_id}) to {shown}: "
               f"{moved} touchpoint(s) not yet sent rescheduled")


def register(app: typer.Typer) -> None:
    app.add_typer(procedure_app, name="procedure")
