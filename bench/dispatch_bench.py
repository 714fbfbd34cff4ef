"""Dispatching due messages through the real Twilio and SendGrid SDKs against the local fake (PostgreSQL).

Setup: a fresh, migrated PostgreSQL database; the fake Twilio + SendGrid server (tests/fakes) in its own
process, answering every call after `--latency` (50 ms); N due touchpoints, 80% SMS and 20% email, one per
patient, clinical (no daily cap) and in a zone where it is midday (no quiet hours), rendered from the real
templates. Three measurements:

1. baseline: a plain sequential SDK loop (`client.messages.create`, `sg.client.mail.send.post`) over the
   same fake with the same mix and bodies, on a sample (`--sample`, 500) and extrapolated to N messages
   (the loop is latency-bound, so its rate does not depend on N; it is reported as extrapolated);
2. unthrottled: one `dispatch_due` run (one process, `--workers` threads) until all N are sent;
   messages/s and the ratio to the loop (target >= 8x);
3. throttled: `--rate-messages` more SMS with AFTERCARE_SMS_RATE_PER_SECOND = `--rate`; the achieved rate
   is measured from the stored send times (first to last) over the configured one (target >= 0.9).

Every touchpoint is checked afterwards: sent exactly once, with a provider id.

    python -m bench dispatch                                   # 50,000 messages
    python -m bench dispatch -- --messages 5000 --rate-messages 1000 --no-save
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "dispatch.json"
ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_RATIO = 8.0
TARGET_RATE_SHARE = 0.9
EMAIL_SHARE = 0.2
FAKE_SERVER = """
import sys, time
from tests.fakes import FakeProviders
fake = FakeProviders(latency=float(sys.argv[1]), record_requests=False).start()
print(fake.url, flush=True)
while True:
    time.sleep(3600)
"""


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The fake in its own process, so its work is not charged to the dispatcher's interpreter."""
    process = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, str(latency)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def settings_for(url: str, fake_url: str, **overrides: Any) -> Any:
    from aftercare.settings import Settings
    from tests.fakes import ACCOUNT_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDGRID_API_KEY

    return Settings(
        database_url=url, environment="test", public_base_url="https://aftercare.example",
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
        twilio_messaging_service_sid=MESSAGING_SERVICE_SID, twilio_api_base_url=fake_url,
        sendgrid_api_key=SENDGRID_API_KEY, sendgrid_from_email="care@clinic.example",
        sendgrid_api_base_url=fake_url, dispatch_max_seconds=24 * 3600, **overrides,
    )


def seed(engine: Any, clinic_id: int, count: int, email_share: float, tag: str) -> None:
    """`count` due touchpoints, one per consenting patient, in a zone where it is now midday."""
    from sqlalchemy import insert

    from aftercare.models import (
        Channel,
        ConsentEvent,
        KneeSide,
        Language,
        Patient,
        Procedure,
        ProcedureStatus,
        Touchpoint,
        TouchpointKind,
        TouchpointStatus,
    )

    now = datetime.now(UTC)
    offset = ((12 - now.hour + 11) % 24) - 11
    zone = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    every_email = round(1 / email_share) if email_share else 0
    chunk = 5000
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        with engine.begin() as conn:
            patients = [
                {"clinic_id": clinic_id, "first_name": "Ana", "last_name": f"{tag}{start + i}",
                 "phone_e164": f"+1212{(start + i) % 10_000_000:07d}", "email": f"{tag}{start + i}@example.org",
                 "language": Language.en if i % 3 else Language.es, "timezone": zone,
                 "preferred_channel": Channel.sms, "created_at": now, "updated_at": now}
                for i in range(size)
            ]
            patient_ids = list(conn.execute(insert(Patient).returning(Patient.id), patients).scalars())
            conn.execute(insert(ConsentEvent), [
                {"patient_id": pid, "channel": ch, "granted": True, "source": "form", "recorded_by": "bench",
                 "recorded_at": now} for pid in patient_ids for ch in Channel])
            procedure_ids = list(conn.execute(insert(Procedure).returning(Procedure.id), [
                {"clinic_id": clinic_id, "patient_id": pid, "external_id": f"{tag}-{start + i}",
                 "protocol_id": "msc-knee-injection", "protocol_version": "1.0.0", "knee_side": KneeSide.left,
                 "performed_at": now - timedelta(days=1), "baseline_nrs": 6, "status": ProcedureStatus.active,
                 "created_at": now, "updated_at": now} for i, pid in enumerate(patient_ids)]).scalars())
            conn.execute(insert(Touchpoint), [
                {"procedure_id": proc, "patient_id": pid, "key": f"{tag}_rest_d1", "kind": TouchpointKind.message,
                 "template": "rest_guidance_d1",
                 "channel": Channel.email if every_email and (start + i) % every_email == 0 else Channel.sms,
                 "clinical": True, "planned_at": now - timedelta(minutes=1), "due_at": now - timedelta(minutes=1),
                 "window_end": now + timedelta(hours=6), "status": TouchpointStatus.scheduled, "attempts": 0,
                 "payload": {"phase": "P0"}, "created_at": now, "updated_at": now}
                for i, (pid, proc) in enumerate(zip(patient_ids, procedure_ids, strict=True))])


def baseline(settings: Any, engine: Any, sample: int) -> dict[str, Any]:
    """A plain sequential loop over the SDKs: one create after the other, nothing else."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail
    from sqlmodel import Session
    from twilio.rest import Client

    from aftercare.dispatch.claim import claim_batch
    from aftercare.dispatch.compose import composer
    from aftercare.messaging.twilio_sms import RedirectingHttpClient
    from aftercare.timeutil import utcnow

    # The same bodies the dispatcher sends (claimed under a throwaway owner, then put back).
    with Session(engine, expire_on_commit=False) as session:
        claimed = claim_batch(session, owner="bench-baseline", now=utcnow(), limit=sample, lease_seconds=600,
                              daily_cap=1)
        session.rollback()
    compose = composer(settings)
    messages = [compose(job) for job in claimed.jobs]
    twilio = Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                    http_client=RedirectingHttpClient(timeout=10, base_url=settings.twilio_api_base_url))
    sendgrid = SendGridAPIClient(settings.sendgrid_api_key.get_secret_value(), host=settings.sendgrid_api_base_url)
    started = time.perf_counter()
    for message in messages:
        if message.channel.value == "sms":
            twilio.messages.create(to=message.to, body=message.body,
                                   messaging_service_sid=settings.twilio_messaging_service_sid)
        else:
            mail = Mail(from_email=settings.sendgrid_from_email, to_emails=message.to, subject=message.subject,
                        plain_text_content=message.body, html_content=message.html)
            sendgrid.client.mail.send.post(request_body=mail.get())
    seconds = time.perf_counter() - started
    return {"sample_messages": len(messages), "sample_seconds": round(seconds, 3),
            "messages_per_s": round(len(messages) / seconds, 2),
            "ms_per_message": round(1000 * seconds / len(messages), 2)}


def run(count: int, sample: int, latency: float, workers: int, batch: int, rate: float, rate_count: int,
        admin: str) -> dict[str, Any]:
    import psycopg
    from sqlalchemy import func, select
    from sqlmodel import Session, col

    from aftercare import migrate, plans
    from aftercare.db import make_engine
    from aftercare.dispatch.service import dispatch_due
    from aftercare.messaging.registry import providers
    from aftercare.models import Clinic, Touchpoint, TouchpointStatus
    from aftercare.protocols import ProtocolRegistry

    name = f"aftercare_bench_dispatch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    url = "postgresql+psycopg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    fake, fake_url = start_fake(latency)
    try:
        migrate.upgrade(url)
        settings = settings_for(url, fake_url, dispatch_workers=workers, dispatch_batch_size=batch)
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as session:
            clinic = Clinic(slug="bench", name="Northside Clinic", timezone="America/New_York", phone="+12125550100")
            session.add(clinic)
            plans.ensure_snapshot(session, ProtocolRegistry.from_dir(settings.config_dir / "protocols")
                                  .get("msc-knee-injection"))
            session.commit()
        started = time.perf_counter()
        seed(engine, clinic.id or 0, count, EMAIL_SHARE, "u")
        seeded = time.perf_counter() - started
        print(f"seeded {count} due touchpoints in {seeded:.1f}s", flush=True)

        loop = baseline(settings, engine, sample)
        print(f"baseline: sequential SDK loop {loop['messages_per_s']} messages/s "
              f"({loop['ms_per_message']} ms each, {loop['sample_messages']} messages)", flush=True)

        cpu, started = time.process_time(), time.perf_counter()
        report = dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        with Session(engine) as session:
            sent = session.execute(select(func.count()).select_from(Touchpoint).where(
                col(Touchpoint.status) == TouchpointStatus.sent, col(Touchpoint.provider_id).is_not(None))).scalar_one()
        rate_unthrottled = count / seconds
        loop_seconds = count / loop["messages_per_s"]
        unthrottled = {
            "messages": count, "sent_with_provider_id": int(sent), "seconds": round(seconds, 2),
            "messages_per_s": round(rate_unthrottled, 1), "dispatcher_cpu_ms_per_message": round(1000 * cpu / count, 2),
            "workers": workers, "batch_size": batch, "counts": report.as_dict(),
            "sequential_loop_seconds_extrapolated": round(loop_seconds, 1),
            "ratio_to_sequential_loop": round(rate_unthrottled / loop["messages_per_s"], 2),
            "target_ratio": TARGET_RATIO,
        }
        unthrottled["target_met"] = unthrottled["ratio_to_sequential_loop"] >= TARGET_RATIO and sent == count
        print(f"unthrottled: {count} messages in {seconds:.1f}s = {rate_unthrottled:.0f} messages/s, "
              f"{unthrottled['ratio_to_sequential_loop']}x the sequential loop "
              f"(which would take ~{loop_seconds:.0f}s); dispatcher CPU "
              f"{unthrottled['dispatcher_cpu_ms_per_message']} ms/message", flush=True)

        throttled = throttled_run(url, fake_url, engine, clinic.id or 0, rate, rate_count, workers, batch)
        return {"database": "postgresql", "server_version": version, "fake_latency_s": latency,
                "mix": {"sms": 1 - EMAIL_SHARE, "email": EMAIL_SHARE}, "seed_seconds": round(seeded, 1),
                "sequential_loop": loop, "unthrottled": unthrottled, "throttled": throttled}
    finally:
        fake.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def throttled_run(url: str, fake_url: str, engine: Any, clinic_id: int, rate: float, count: int, workers: int,
                  batch: int) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlmodel import Session, col

    from aftercare.dispatch.service import dispatch_due
    from aftercare.messaging.registry import providers
    from aftercare.models import Touchpoint, TouchpointStatus

    settings = settings_for(url, fake_url, dispatch_workers=workers, dispatch_batch_size=batch,
                            sms_rate_per_second=rate)
    seed(engine, clinic_id, count, 0.0, "r")
    started = time.perf_counter()
    dispatch_due(settings, engine=engine, providers=providers(settings, engine=engine))
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        first, last, sent = session.execute(
            select(func.min(col(Touchpoint.sent_at)), func.max(col(Touchpoint.sent_at)), func.count()).where(
                col(Touchpoint.status) == TouchpointStatus.sent, col(Touchpoint.key) == "r_rest_d1"
            )
        ).one()
    span = (last - first).total_seconds()
    achieved = (sent - 1) / span if span > 0 else 0.0
    result = {"configured_per_s": rate, "messages": count, "sent": int(sent), "seconds": round(seconds, 2),
              "first_to_last_send_s": round(span, 2), "achieved_per_s": round(achieved, 2),
              "achieved_over_configured": round(achieved / rate, 3), "target": TARGET_RATE_SHARE}
    result["target_met"] = result["achieved_over_configured"] >= TARGET_RATE_SHARE and sent == count
    print(f"throttled at {rate:g}/s: {sent} SMS, first to last send {span:.1f}s = {achieved:.1f}/s "
          f"({result['achieved_over_configured']:.1%} of the configured rate)", flush=True)
    return result


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dispatch", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=500, help="messages the sequential loop sends")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake waits before answering")
    parser.add_argument("--workers", type=int, default=32, help="AFTERCARE_DISPATCH_WORKERS")
    parser.add_argument("--batch", type=int, default=200, help="AFTERCARE_DISPATCH_BATCH_SIZE")
    parser.add_argument("--rate", type=float, default=100.0, help="AFTERCARE_SMS_RATE_PER_SECOND, throttled run")
    parser.add_argument("--rate-messages", type=int, default=3000, help="SMS in the throttled run")
    parser.add_argument("--pg-admin", default=os.environ.get("AFTERCARE_BENCH_PG", PG_ADMIN),
                        help="libpq URL of a database we may CREATE DATABASE from")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/dispatch.json")
    args = parser.parse_args(argv)
    for name in ("TWILIO_REGION", "TWILIO_EDGE"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))  # tests.fakes
    load_at_start = round(os.getloadavg()[0], 2)
    result = {"benchmark": "dispatch", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average_1min_at_start": load_at_start,
              **run(args.messages, args.sample, args.latency, args.workers, args.batch, args.rate,
                    args.rate_messages, args.pg_admin), "machine": machine()}
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0 if result["unthrottled"]["target_met"] and result["throttled"]["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
