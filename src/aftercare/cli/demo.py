"""`aftercare demo seed [--reset]`: the demo clinic, for development."""

from __future__ import annotations

import typer

from aftercare import demo, migrate
from aftercare.db import session_scope
from aftercare.protocols import ProtocolError, ProtocolRegistry
from aftercare.settings import Settings, get_settings

demo_app = typer.Typer(help="The demo clinic (development only).", no_args_is_help=True)


def box(lines: list[str]) -> str:
    """Lines framed in a box, for the things a developer must not miss at start."""
    width = max(len(line) for line in lines)
    rule = "─" * (width + 2)
    body = "\n".join(f"│ {line.ljust(width)} │" for line in lines)
    return f"╭{rule}╮\n{body}\n╰{rule}╯"


def credential_lines(creds: demo.Credentials, base_url: str) -> list[str]:
    lines = [f"Demo clinic: {creds.clinic_name} (development only)", "Staff logins (email / password):"]
    width = max((len(login.email) for login in creds.logins), default=0)
    for login in creds.logins:
        note = f"{login.role.value}{', on call' if login.on_call else ''}"
        lines.append(f"  {login.email.ljust(width)}  {login.password}   {login.name} ({note})")
    if creds.api_token:
        lines += [
            f"API token of {creds.token_owner} ({base_url}/docs):",
            f"  Authorization: Bearer {creds.api_token}",
        ]
    return lines


def _registry(settings: Settings) -> ProtocolRegistry:
    try:
        return ProtocolRegistry.from_dir(settings.config_dir / "protocols")
    except ProtocolError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@demo_app.command("seed")
def seed(
    reset: bool = typer.Option(
        False, "--reset", help="first delete every row of the database (refused if it holds a non-demo clinic)"
    ),
) -> None:
    """Create the demo clinic, its staff and a dozen patients with real care plans. Idempotent."""
    settings = get_settings()
    registry = _registry(settings)
    migrate.upgrade(settings.database_url)
    try:
        with session_scope() as session:
            if reset:
                demo.reset(session, settings=settings)
            result = demo.seed(session, settings=settings, registry=registry)
            creds = demo.credentials(session, settings)
    except demo.DemoRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"demo clinic {result.clinic.name!r}: {result.staff_created} staff, {result.patients_created} patients, "
        f"{result.procedures_created} procedures and {result.touchpoints_written} touchpoints added"
        + (" (all there already)" if not result.procedures_created and not result.staff_created else "")
    )
    if creds is not None:
        typer.echo(box(credential_lines(creds, settings.public_base_url)))


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
