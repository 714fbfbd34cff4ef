"""`aftercare protocol migrate`: preview, then apply, moving enrolled procedures to a new protocol version."""

from __future__ import annotations

from datetime import datetime

import typer

from aftercare import protocol_migration
from aftercare.cli.common import ACTOR, errors, registry
from aftercare.protocol_migration import MigrationReport, ProcedureMigration
from aftercare.settings import get_settings


def _when(value: datetime | None) -> str:
    return value.strftime("%a %Y-%m-%d %H:%M %Z") if value else ""


def render_procedure(item: ProcedureMigration) -> list[str]:
    lines = [
        f"procedure {item.procedure_id} ({item.external_id}), patient {item.patient_id}, {item.timezone}: "
        f"{item.from_version} -> {item.to_version}"
    ]
    key_width = max((len(c.key) for c in item.changes), default=0)
    for change in item.changes:
        times = f"{_when(change.old_due):>24} -> {_when(change.new_due)}".rstrip()
        if change.change == "removed":
            times = f"{_when(change.old_due):>24} -> (cancelled)"
        note = f"  [{change.note}]" if change.note else ""
        lines.append(f"  {change.change:<8} {change.key:<{key_width}}  {change.channel:<5} {times}{note}")
    if not item.changes:
        lines.append("  no change to anything not yet sent")
    lines.append(f"  ({item.kept_history} touchpoint(s) already sent, answered or skipped: unchanged)")
    return lines


def render(report: MigrationReport) -> list[str]:
    mode = "dry run, nothing is written" if report.dry_run else "applied, one transaction per procedure"
    lines = [
        f"protocol {report.protocol_id}: {len(report.procedures)} active procedure(s) on an older version "
        f"-> {report.to_version} ({mode})",
        "",
    ]
    for item in report.procedures:
        lines += [*render_procedure(item), ""]
    totals = ", ".join(
        f"{sum(p.count(kind) for p in report.procedures)} {kind}" for kind in ("moved", "added", "removed", "changed")
    )
    lines.append(f"total: {totals}")
    if report.not_yet_planned:
        lines.append(
            f"{report.not_yet_planned} procedure(s) still waiting for their first plan keep their recorded version; "
            "run this again once they are planned"
        )
    if report.dry_run and report.procedures:
        lines.append("run again without --dry-run to apply")
    return lines


def migrate(
    protocol: str = typer.Option(..., "--protocol", help="protocol id, e.g. msc-knee-injection"),
    to_version: str | None = typer.Option(
        None, "--to-version", help="target version (default: the version in the protocol file)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change; write nothing"),
) -> None:
    """Move active procedures on an older version of a protocol to a new one (unsent touchpoints only)."""
    with errors({"to_version": "--to-version"}, conflict="protocol"):
        current = registry(get_settings()).get(protocol)
        report = protocol_migration.migrate(protocol=current, to_version=to_version, dry_run=dry_run, actor=ACTOR)
    for line in render(report):
        typer.echo(line)
