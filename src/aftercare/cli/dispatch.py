"""`aftercare dispatch`: send what is due from the command line (once, or every tick until Ctrl-C)."""

from __future__ import annotations

import time

import typer

from aftercare.settings import get_settings


def dispatch(
    once: bool = typer.Option(False, "--once", help="one run, print the counts and exit"),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", min=1, help="stop claiming after this long (default: AFTERCARE_DISPATCH_MAX_SECONDS)"
    ),
) -> None:
    """Reconcile maybe-sent messages, send SMS replies, then claim and send due touchpoints.

    Safe next to the ticker or Prefect workers: every claim is leased, so nothing is sent twice.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from aftercare.dispatch.service import dispatch_due
    from aftercare.messaging.registry import ProviderConfigError, describe

    settings = get_settings()
    channels = ", ".join(f"{channel} via {provider}" for channel, provider in describe(settings).items())
    typer.echo(f"dispatching ({channels})")
    try:
        while True:
            report = dispatch_due(settings, max_seconds=max_seconds)
            for name, value in report.as_dict().items():
                typer.echo(f"{name:>18}: {value}")
            if once:
                return
            time.sleep(settings.tick_seconds)
    except ProviderConfigError as exc:
        typer.echo(f"cannot send: {exc}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        where = settings.database_url.split("@")[-1]
        problem = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        typer.echo(f"database {where}: {problem} (is it up and migrated? `aftercare db upgrade`)", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopped; claims in flight are settled by the next run")


def register(app: typer.Typer) -> None:
    app.command("dispatch")(dispatch)
