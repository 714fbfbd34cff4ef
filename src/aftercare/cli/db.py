"""`aftercare db upgrade|downgrade|current|heads`: the database schema, through Alembic."""

from __future__ import annotations

import typer

from aftercare import migrate
from aftercare.cli.common import errors
from aftercare.settings import get_settings

db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)

_URL = typer.Option(None, "--database-url", help="default: AFTERCARE_DATABASE_URL")


def _url(url: str | None) -> str:
    return url or get_settings().database_url


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = f"{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else rest
    return f"{scheme}://{rest}"


@db_app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision"), database_url: str | None = _URL) -> None:
    """Migrate the database up to REVISION (default: the newest). Safe to run on every start."""
    url = _url(database_url)
    with errors():
        migrate.upgrade(url, revision)
        typer.echo(f"{_shown(url)} is at {', '.join(migrate.current(url)) or 'base'}")


@db_app.command()
def downgrade(
    revision: str = typer.Argument(..., help="target revision: an id, -1 for one step back, or base (drops all)"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    database_url: str | None = _URL,
) -> None:
    """Migrate the database down to REVISION. Tables dropped on the way lose their data."""
    url = _url(database_url)
    if not yes:
        typer.confirm(f"downgrade {_shown(url)} to {revision}? data in dropped tables is lost", abort=True)
    with errors():
        migrate.downgrade(url, revision)
        typer.echo(f"{_shown(url)} is at {', '.join(migrate.current(url)) or 'base'}")


@db_app.command()
def current(database_url: str | None = _URL) -> None:
    """The revision the database is at, and whether that is the newest."""
    url = _url(database_url)
    with errors():
        at = migrate.current(url)
    newest = migrate.heads()
    state = "up to date" if sorted(at) == sorted(newest) else f"behind {', '.join(newest)}: run `aftercare db upgrade`"
    typer.echo(f"{', '.join(at) or 'base (never migrated)'}  {state}")


@db_app.command()
def heads() -> None:
    """The newest revision(s) this release ships."""
    for head in migrate.heads():
        typer.echo(head)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
