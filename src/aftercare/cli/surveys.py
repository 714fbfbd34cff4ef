"""`aftercare surveys tick`: survey housekeeping from the command line (the ticker runs it every tick)."""

from __future__ import annotations

from datetime import datetime

import typer

from aftercare.settings import get_settings

surveys_app = typer.Typer(help="Survey conversations, reminders and windows.", no_args_is_help=True)


@surveys_app.command("tick")
def tick_command(
    now: str | None = typer.Option(
        None, "--now", help="run as if it were this instant (ISO 8601 with a zone, e.g. 2026-12-01T17:00:00Z)"
    ),
    no_send: bool = typer.Option(False, "--no-send", help="queue the questions; leave sending to the dispatcher"),
) -> None:
    """Open sent invitations, close windows (missed surveys, coordinator tasks), create due reminders and
    text pending first questions. Safe next to the ticker."""
    from sqlalchemy.exc import SQLAlchemyError

    from aftercare.surveys.service import tick

    at = None
    if now is not None:
        try:
            at = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            typer.echo(f"--now: not an ISO 8601 date and time: {now!r}", err=True)
            raise typer.Exit(2) from None
        if at.tzinfo is None:
            typer.echo("--now: give a time zone (e.g. Z or +00:00)", err=True)
            raise typer.Exit(2)
    settings = get_settings()
    try:
        report = tick(settings, now=at, send=not no_send)
    except SQLAlchemyError as exc:
        where = settings.database_url.split("@")[-1]
        problem = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        typer.echo(f"database {where}: {problem} (is it up and migrated? `aftercare db upgrade`)", err=True)
        raise typer.Exit(1) from None
    for name, value in report.as_dict().items():
        typer.echo(f"{name:>10}: {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(surveys_app, name="surveys")
