"""`aftercare protocol list|validate`: the care-plan protocols in config/protocols/.

Each subcommand is a function registered on `protocol_app`; add new ones the same way.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aftercare.cli.common import fail
from aftercare.cli.protocol_migrate import migrate
from aftercare.protocols import Protocol, ProtocolError, ProtocolRegistry, load_protocol_file
from aftercare.settings import get_settings

protocol_app = typer.Typer(help="Care-plan protocols (config/protocols/*.yaml).", no_args_is_help=True)


def _folder() -> Path:
    return get_settings().config_dir / "protocols"


def _describe(protocol: Protocol) -> str:
    return (f"{protocol.id} {protocol.version}: {protocol.title} ({len(protocol.touchpoints)} touchpoints, "
            f"{len(protocol.followup_visits)} follow-up visits)")


@protocol_app.command("list")
def list_protocols() -> None:
    """Every protocol a procedure can be recorded with, and its current version."""
    try:
        registry = ProtocolRegistry.from_dir(_folder())
    except ProtocolError as exc:
        fail("protocol", str(exc))
    for protocol in registry.all():
        typer.echo(_describe(protocol))
    if not registry.ids():
        typer.echo(f"no protocol in {_folder()}", err=True)


@protocol_app.command()
def validate(
    files: list[Path] = typer.Argument(None, help="protocol files (default: every file in config/protocols/)"),
) -> None:
    """Check protocol files against the schema; each problem names the file, the field and what is wrong."""
    paths = files or sorted(_folder().glob("*.y*ml"))
    if not paths:
        fail("protocol", f"no protocol file in {_folder()}")
    problems = 0
    for path in paths:
        try:
            typer.echo(f"ok: {path}: {_describe(load_protocol_file(path))}")
        except ProtocolError as exc:
            problems += 1
            typer.echo(f"error: {exc}", err=True)
    if not files:
        try:
            ProtocolRegistry.from_dir(_folder())  # also catches an id defined in two files
        except ProtocolError as exc:
            problems += 1
            typer.echo(f"error: {exc}", err=True)
    if problems:
        raise typer.Exit(2)


protocol_app.command("migrate")(migrate)  # preview/apply moving enrolled procedures to a new version


def register(app: typer.Typer) -> None:
    app.add_typer(protocol_app, name="protocol")
