"""The `aftercare` command. Each command group lives in its own module with a `register(app)`."""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(help="aftercare: follow-up after outpatient procedures.", no_args_is_help=True)

# Command-group modules, in help order. Each defines `register(app: typer.Typer) -> None`.
_GROUPS = ("serve", "db", "procedure", "protocol", "staff", "demo", "flows", "dispatch", "surveys", "triage", "report")


def _load_groups() -> None:
    for name in _GROUPS:
        qualified = f"aftercare.cli.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue  # that group is not part of this build yet
            raise
        module.register(app)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="log at DEBUG")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


_load_groups()
