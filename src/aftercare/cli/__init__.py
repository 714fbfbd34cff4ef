"""The `aftercare` command. Each command group lives in its own module with a `register(app)`."""

from __future__ import annotations

import logging

import typer

from aftercare.cli import db, demo, dispatch, flows, inbound, procedure, protocol, serve, staff, surveys, triage, web

app = typer.Typer(help="aftercare: follow-up after outpatient procedures.", no_args_is_help=True)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="log at DEBUG")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# In help order.
for _group in (serve, web, inbound, db, procedure, protocol, staff, demo, flows, dispatch, surveys, triage):
    _group.register(app)
