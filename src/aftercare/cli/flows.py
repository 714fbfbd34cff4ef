"""`aftercare deploy-flows`: register the Prefect deployments production workers run."""

from __future__ import annotations

import typer

from aftercare.settings import get_settings


def deploy_flows(
    work_pool: str | None = typer.Option(
        None, "--work-pool", help="process work pool to deploy to (default: AFTERCARE_PREFECT_WORK_POOL)"
    ),
) -> None:
    """Create the work pool if missing and create or update every deployment. Safe to run on every start."""
    from aftercare_flows.deploy import deploy_flows as register_all
    from prefect.settings import PREFECT_API_URL

    pool = work_pool or get_settings().prefect_work_pool
    api_url = PREFECT_API_URL.value()
    if not api_url:
        typer.echo(
            "PREFECT_API_URL: not set; deploy-flows registers deployments on a running Prefect server "
            "(e.g. PREFECT_API_URL=http://prefect-server:4200/api)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        deployed = register_all(pool)
    except Exception as exc:  # server down, wrong pool type: say so, no traceback
        typer.echo(f"could not register deployments on {api_url} (work pool {pool!r}): {exc}", err=True)
        raise typer.Exit(1) from None
    for item in deployed:
        typer.echo(f"deployed {item.full_name}  id={item.deployment_id}  entrypoint={item.entrypoint}")
    typer.echo(f"work pool {pool!r}: run workers with `prefect worker start --pool {pool} --type process`")


def register(app: typer.Typer) -> None:
    app.command("deploy-flows")(deploy_flows)
