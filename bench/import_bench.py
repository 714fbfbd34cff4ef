"""Bulk import of procedures through `aftercare.imports.import_csv`, plans included, on SQLite and PostgreSQL.

For each database: a fresh, migrated database; one clinic with three physicians; a generated CSV of N
procedures (a realistic mix of zones, languages, channels, consents, both protocols, past and future
dates, some patients with both knees). Timed: parse + validate, bulk insert + commit, and building
every plan (the body of the `procedure-aftercare` flow, run in-process with AFTERCARE_FLOW_MODE=off).
Rows written are counted in the database afterwards. Then the same file is imported again (a no-op).

    python -m bench import                       # 10,000 procedures on SQLite and PostgreSQL
    python -m bench import -- --procedures 2000 --db sqlite --no-save
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "import.json"
README = Path(__file__).parent / "README.md"
TABLE_START, TABLE_END = "<!-- import-results -->", "<!-- /import-results -->"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET = 500.0

# (zone, phone prefix, digits after it, share of Spanish speakers, weight)
ZONES = [
    ("America/New_York", "+1 212 555", 4, 0.15, 18),
    ("America/Chicago", "+1 312 555", 4, 0.15, 12),
    ("America/Denver", "+1 303 555", 4, 0.1, 6),
    ("America/Phoenix", "+1 602 555", 4, 0.3, 6),
    ("America/Los_Angeles", "+1 213 555", 4, 0.35, 14),
    ("America/Anchorage", "+1 907 555", 4, 0.05, 1),
    ("Pacific/Honolulu", "+1 808 555", 4, 0.05, 1),
    ("America/Toronto", "+1 416 555", 4, 0.05, 6),
    ("America/Vancouver", "+1 604 555", 4, 0.05, 3),
    ("America/Mexico_City", "+52 55 1", 7, 0.95, 10),
    ("America/Mazatlan", "+52 624 1", 6, 0.8, 12),
    ("America/Tijuana", "+52 664 1", 6, 0.85, 6),
    ("Europe/Madrid", "+34 612 3", 5, 0.97, 5),
]
FIRST = ["Ana", "Luis", "María", "José", "Emma", "Liam", "Olivia", "Noah", "Sofía", "Mateo", "Grace", "Ethan"]
LAST = ["García", "Smith", "López", "Johnson", "Martínez", "Brown", "Hernández", "Davis", "Ruiz", "Wilson"]
HEADER = [
    "external_id", "mrn", "first_name", "last_name", "phone", "email", "language", "timezone", "preferred_channel",
    "consent_sms", "consent_email", "protocol_id", "knee_side", "performed_at", "physician_email", "baseline_nrs",
    "baseline_koos_jr",
]
PHYSICIANS = ["dr.reyes@example.org", "dr.chen@example.org", "dr.ortiz@example.org"]


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


def make_csv(count: int, seed: int = 7) -> str:
    """`count` procedures; about 5% are a patient's second knee (same MRN, same day or weeks later)."""
    rng = random.Random(seed)
    weights = [z[4] for z in ZONES]
    now = datetime.now(UTC)
    lines = [",".join(HEADER)]
    patient = 0
    previous: list[str] | None = None
    for index in range(count):
        if previous is not None and previous[1] and rng.random() < 0.05:
            row = list(previous)
            row[12] = "right" if row[12] == "left" else "left"
        else:
            patient += 1
            zone, prefix, digits, spanish, _ = rng.choices(ZONES, weights)[0]
            local = f"{patient:0{digits}d}"[-digits:]
            has_phone, has_email = rng.random() < 0.92, rng.random() < 0.75
            has_email = has_email or not has_phone
            first, last = rng.choice(FIRST), rng.choice(LAST)
            row = [
                "",
                f"MRN-{patient:06d}" if rng.random() < 0.7 else "",
                first,
                last,
                f"{prefix}{local}" if has_phone else "",
                f"{_ascii(first)}.{patient}@example.org" if has_email else "",
                "es" if rng.random() < spanish else "en",
                zone,
                "email" if has_email and (not has_phone or rng.random() < 0.15) else "",
                rng.choice(["yes", "yes", "yes", "no"]) if has_phone else "no",
                rng.choice(["yes", "true", "1", "no"]) if has_email else "no",
                "msc-knee-ligament" if rng.random() < 0.2 else "msc-knee-injection",
                rng.choice(["left", "right", "right", "bilateral"]),
                "",
                rng.choice(PHYSICIANS) if rng.random() < 0.5 else "",
                str(rng.randint(3, 9)),
                f"{rng.uniform(30, 75):.1f}" if rng.random() < 0.6 else "",
            ]
        day = now + timedelta(days=rng.randint(-30, 60))
        row[0] = f"PROC-{index + 1:06d}"
        row[13] = day.strftime("%Y-%m-%d") + f"T{rng.randint(8, 16):02d}:{rng.choice(['00', '15', '30', '45'])}:00"
        lines.append(",".join(row))
        previous = row
    return "\n".join(lines) + "\n"


def _counts(session: Any) -> dict[str, int]:
    from sqlalchemy import func, select
    from sqlmodel import SQLModel

    return {
        table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
        for table in SQLModel.metadata.sorted_tables
    }


def run_once(kind: str, url: str, count: int) -> dict[str, Any]:
    """Import `count` procedures into the fresh database at `url`; then the same file again."""
    os.environ.update({"AFTERCARE_DATABASE_URL": url, "AFTERCARE_FLOW_MODE": "off", "AFTERCARE_ENVIRONMENT": "test"})
    from sqlalchemy import text as sql
    from sqlmodel import Session

    from aftercare import db, imports, migrate
    from aftercare.models import Clinic, Role, StaffUser
    from aftercare.protocols import ProtocolRegistry
    from aftercare.security import hash_password
    from aftercare.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    migrate.upgrade(url)
    registry = ProtocolRegistry.from_dir(settings.config_dir / "protocols")
    engine = db.get_engine()
    with Session(engine, expire_on_commit=False) as session:
        clinic = Clinic(slug="bench", name="Bench Clinic", timezone="America/Mazatlan", phone="+526241234567",
                        country="MX")
        session.add(clinic)
        session.flush()
        assert clinic.id is not None
        password = hash_password("bench-password")
        for email in PHYSICIANS:
            session.add(StaffUser(clinic_id=clinic.id, email=email, name=email, role=Role.physician,
                                  password_hash=password))
        session.commit()
        before = _counts(session)
    csv_text = make_csv(count)

    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        report = imports.import_csv(session, clinic=clinic, text=csv_text, registry=registry, settings=settings,
                                    actor="bench")
        if not report.ok:
            raise SystemExit(f"bench data rejected: {report.rejected[:5]}")
        commit_started = time.perf_counter()
        session.commit()
        commit_seconds = time.perf_counter() - commit_started
    plan_started = time.perf_counter()
    imports.plan_imported(report.procedure_ids_to_plan, settings, wait=True)
    plan_seconds = time.perf_counter() - plan_started
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu_started

    with Session(engine) as session:
        after = _counts(session)
        planned = int(session.execute(sql("SELECT count(*) FROM procedure WHERE status = 'active'")).scalar_one())
    written = {table: after[table] - before[table] for table in after if after[table] != before[table]}
    inserted = sum(written.values())

    again_started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        again = imports.import_csv(session, clinic=clinic, text=csv_text, registry=registry, settings=settings,
                                   actor="bench")
        session.commit()
    imports.plan_imported(again.procedure_ids_to_plan, settings, wait=True)
    again_seconds = time.perf_counter() - again_started
    with Session(engine) as session:
        unchanged_after_reimport = _counts(session) == {**after, "audit_event": after["audit_event"] + 1}

    db._engine_for.cache_clear()
    engine.dispose()
    if planned != count:
        raise SystemExit(f"only {planned} of {count} plans were built")
    return {
        "database": kind,
        "procedures": count,
        "seconds": round(total, 3),
        "procedures_per_s": round(count / total, 1),
        "rows_inserted": written,
        "rows_inserted_total": inserted,
        "rows_updated": {"patient": report.rows_written.get("patient", 0) - written.get("patient", 0),
                         "procedure (status -> active)": planned},
        "rows_per_s": round(inserted / total, 1),
        "touchpoints_per_procedure": round(written.get("touchpoint", 0) / count, 1),
        "split_seconds": {
            "parse_and_validate": round(report.timings["validate"], 3),
            "bulk_insert": round(report.timings["insert"], 3),
            "commit": round(commit_seconds, 3),
            "plan_materialise": round(plan_seconds, 3),
        },
        "reimport_same_file_seconds": round(again_seconds, 3),
        "reimport_wrote_nothing_but_its_audit_event": unchanged_after_reimport,
        "cpu_seconds_this_process": round(cpu, 3),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target_met": count / total >= TARGET,
    }


def _sqlite(count: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    try:
        return run_once("sqlite", url, count)
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def _postgres(count: int, admin: str) -> dict[str, Any]:
    import psycopg

    name = f"aftercare_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    url = "postgresql+psycopg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    try:
        result = run_once("postgresql", url, count)
        result["server_version"] = version
        return result
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench import", description=__doc__.splitlines()[0])
    parser.add_argument("--procedures", type=int, default=10_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-admin", default=os.environ.get("AFTERCARE_BENCH_PG", PG_ADMIN),
                        help="libpq URL of a database we may CREATE DATABASE from")
    parser.add_argument("--repeat", type=int, default=3, help="runs per database (fresh database each); median counts")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/import.json or the README")
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    for kind in ("sqlite", "postgresql"):
        if args.db not in (kind, "both"):
            continue
        for attempt in range(1, args.repeat + 1):
            run = _sqlite(args.procedures) if kind == "sqlite" else _postgres(args.procedures, args.pg_admin)
            run["attempt"] = attempt
            runs.append(run)
            _print(run)
    summary = summarise(runs)
    for kind, line in summary.items():
        print(f"{kind:>10}: median {line['median_procedures_per_s']:.0f} procedures/s "
              f"(runs: {', '.join(f'{v:.0f}' for v in line['procedures_per_s'])}); "
              f"target {'met' if line['target_met'] else 'missed'}")
    result = {"benchmark": "import", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "target_procedures_per_s": TARGET, "summary": summary, "runs": runs}
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_readme_table(result)
        print(f"wrote {RESULTS} and the table in {README}")
    return 0 if all(line["target_met"] for line in summary.values()) else 1


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per database: every run's procedures/s and the median, which is what the target is judged on."""
    summary: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r["database"] for r in runs):
        rates = [r["procedures_per_s"] for r in runs if r["database"] == kind]
        median = statistics.median(rates)
        summary[kind] = {"procedures_per_s": rates, "median_procedures_per_s": median, "target_met": median >= TARGET}
    return summary


def table(result: dict[str, Any]) -> str:
    """The results as the Markdown table bench/README.md shows."""
    m = result["machine"]
    lines = [
        f"Measured {result['date']} on {m['cpus']} cores ({m['cpu']}), Python {m['python']}, SQLite {m['sqlite']}"
        + "".join(f", PostgreSQL {v}" for v in dict.fromkeys(r["server_version"] for r in result["runs"]
                                                               if "server_version" in r)) + ".",
        "",
        "| database | run | procedures | seconds | procedures/s | rows written | rows/s | validate | insert | plans "
        "| CPU s (this process) | load avg (1 min) | >= 500/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        split = r["split_seconds"]
        lines.append(
            f"| {r['database']} | {r.get('attempt', 1)} | {r['procedures']:,} | {r['seconds']:.1f} "
            f"| **{r['procedures_per_s']:.0f}** "
            f"| {r['rows_inserted_total']:,} | {r['rows_per_s']:,.0f} | {split['parse_and_validate']:.1f} s "
            f"| {split['bulk_insert'] + split['commit']:.1f} s | {split['plan_materialise']:.1f} s "
            f"| {r['cpu_seconds_this_process']:.1f} "
            f"| {r['load_average_1min'][0]:.1f} -> {r['load_average_1min'][1]:.1f} "
            f"| {'met' if r['target_met'] else 'missed'} |"
        )
    rows = result["runs"][0]["rows_inserted"] if result["runs"] else {}
    lines += ["", "Rows written per run: " + ", ".join(f"{table} {n:,}" for table, n in rows.items()) + "."]
    for kind, line in result.get("summary", {}).items():
        lines.append(f"**{kind}: median {line['median_procedures_per_s']:.0f} procedures/s, target "
                     f"{'met' if line['target_met'] else 'missed'}.**")
    return "\n".join(lines)


def write_readme_table(result: dict[str, Any]) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    README.write_text(text[:start] + "\n" + table(result) + "\n" + text[end:], encoding="utf-8")


def _print(run: dict[str, Any]) -> None:
    split = ", ".join(f"{k} {v:.2f}s" for k, v in run["split_seconds"].items())
    print(
        f"{run['database']:>10}: {run['procedures']} procedures in {run['seconds']:.2f}s = "
        f"{run['procedures_per_s']:.0f} procedures/s, {run['rows_inserted_total']} rows = "
        f"{run['rows_per_s']:.0f} rows/s ({split}); re-import {run['reimport_same_file_seconds']:.2f}s; "
        f"cpu {run['cpu_seconds_this_process']:.1f}s, load {run['load_average_1min']}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
