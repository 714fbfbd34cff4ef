"""`aftercare staff create|token` and `aftercare clinic create|list`: accounts from the command line."""

from __future__ import annotations

import typer
from sqlmodel import col, select

from aftercare import accounts
from aftercare.cli.common import ACTOR, errors
from aftercare.db import session_scope
from aftercare.models import Clinic, Role

staff_app = typer.Typer(help="Staff accounts and their API tokens.", no_args_is_help=True)
clinic_app = typer.Typer(help="Clinics.", no_args_is_help=True)

_STAFF_OPTIONS = {"email": "--email", "name": "--name", "role": "--role", "password": "--password",
                  "phone": "--phone", "clinic": "--clinic"}
_CLINIC_OPTIONS = {"slug": "--slug", "name": "--name", "timezone": "--timezone", "phone": "--phone",
                   "country": "--country", "send_window_start": "--send-window-start",
                   "send_window_end": "--send-window-end"}


@staff_app.command("create")
def create_staff(
    email: str = typer.Option(..., "--email", help="the login; also how physicians are named in imports"),
    name: str = typer.Option(..., "--name", help="full name, as patients and colleagues see it"),
    role: str = typer.Option(..., "--role", help=", ".join(r.value for r in Role)),
    clinic: str | None = typer.Option(None, "--clinic", help="clinic slug (default: the only clinic)"),
    phone: str | None = typer.Option(None, "--phone", help="for urgent pages (physicians)"),
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
        help=f"at least {accounts.MIN_PASSWORD_LENGTH} characters (asked for when not given)",
    ),
) -> None:
    """Create a staff account that can log in to the staff app."""
    with errors(_STAFF_OPTIONS, conflict="--email"), session_scope() as session:
        found = accounts.find_clinic(session, clinic)
        staff = accounts.create_staff(session, clinic=found, email=email, name=name, role=role, password=password,
                                      phone=phone, actor=ACTOR)
    typer.echo(f"created {staff.role.value} {staff.email} ({staff.name}) at {found.slug}, id {staff.id}")


@staff_app.command("token")
def token(
    email: str = typer.Option(..., "--email", help="the staff account the token acts as"),
    name: str = typer.Option(..., "--name", help="what the token is for, e.g. ehr-sync"),
) -> None:
    """Issue an API token (Authorization: Bearer ...). It is printed once; only its hash is stored."""
    with errors(_STAFF_OPTIONS, conflict="--email"), session_scope() as session:
        issued = accounts.issue_token(session, email=email, name=name, actor=ACTOR)
    typer.echo(issued.secret)
    typer.echo(f"API token {issued.token.name!r} for {issued.staff.email} ({issued.staff.role.value}): "
               "store it now, it is not shown again", err=True)


@clinic_app.command("create")
def create_clinic(
    slug: str = typer.Option(..., "--slug", help="short id, e.g. cabo-knee (used by --clinic)"),
    name: str = typer.Option(..., "--name"),
    timezone: str = typer.Option(..., "--timezone", help="IANA zone of the clinic, e.g. America/Mazatlan"),
    phone: str = typer.Option(..., "--phone", help="the number patients call"),
    country: str = typer.Option("US", "--country", help="two-letter code; also the region of local phone numbers"),
    send_window_start: str = typer.Option("08:00", "--send-window-start", help="no messages before (patient time)"),
    send_window_end: str = typer.Option("20:00", "--send-window-end", help="no messages after (patient time)"),
) -> None:
    """Create a clinic."""
    with errors(_CLINIC_OPTIONS, conflict="--slug"), session_scope() as session:
        clinic = accounts.create_clinic(
            session, slug=slug, name=name, timezone=timezone, phone=phone, country=country,
            send_window_start=send_window_start, send_window_end=send_window_end, actor=ACTOR,
        )
    typer.echo(f"created clinic {clinic.slug} ({clinic.name}), {clinic.timezone}, {clinic.phone}, id {clinic.id}")


@clinic_app.command("list")
def list_clinics() -> None:
    """Every clinic: slug, name, zone, phone, send window."""
    with errors(), session_scope() as session:
        clinics = session.exec(select(Clinic).order_by(col(Clinic.slug))).all()
    for c in clinics:
        typer.echo(f"{c.slug}\t{c.name}\t{c.timezone}\t{c.phone}\t{c.send_window_start}-{c.send_window_end}")
    if not clinics:
        typer.echo("no clinic yet: `aftercare clinic create --slug ... --name ... --timezone ... --phone ...`",
                   err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(staff_app, name="staff")
    app.add_typer(clinic_app, name="clinic")
