"""Inbound SMS webhook under load, and the time from an urgent message to the physician's page (PostgreSQL).

Setup: a fresh, migrated PostgreSQL database with one clinic, its on-call physicians (a rota in a generated
on-call file) and N patients, each with a procedure 1 to 20 days ago; the fake Twilio + SendGrid
(tests/fakes) in its own process; the app started with `aftercare serve` (uvicorn, one worker, the ticker, and
by default the embedded Prefect server with AFTERCARE_FLOW_MODE=inline, as `make run` does).

Load: N signed inbound SMS (X-Twilio-Signature computed like Twilio does), one per patient, posted open-loop at
`--rate` requests/s (each at its scheduled instant, whatever the earlier ones are doing). The message mix:
urgent red flags (fever, calf, pus, pain 10/10, in English and Spanish), emergencies, review findings, and
everyday free text, HELP and numbers.

Measured:
1. webhook latency, client side: from the request's scheduled instant to the full response (p50, p90, p99, max),
   so waiting on our side for a connection when the server falls behind is counted too;
2. urgent message -> page handed to the provider: from the client sending the SMS to the `sent_at` of the
   physician's SMS page (stored when the fake Twilio accepted it), for every urgent or emergency message;
3. completeness: every message stored and triaged, every red flag flagged, every page sent once.

    python -m bench webhook                                      # 2,000 messages at 200/s, Prefect inline
    python -m bench webhook -- --messages 400 --no-save
    python -m bench webhook -- --flow-mode off                   # triage in-process, no Prefect server
    python -m bench webhook -- --topology uvicorn --workers 2    # as docker-compose.yml runs the app
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any

RESULTS = Path(__file__).parent / "results" / "webhook.json"
ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_WEBHOOK_P99_MS = 100.0
TARGET_PAGE_P95_S = 5.0
SMS_PATH = "/webhooks/twilio/sms"
SLUG = "bench"
DOCTORS = (("dr.primary@bench.example", "+12125559001"), ("dr.backup@bench.example", "+12125559002"))
ADMIN = ("admin@bench.example", "+12125559000")
FAKE_SERVER = """
import sys, time
from tests.fakes import FakeProviders
fake = FakeProviders(latency=float(sys.argv[1]), record_requests=False).start()
print(fake.url, flush=True)
while True:
    time.sleep(3600)
"""

# (kind, text): urgent and emergency texts must be flagged at that tier; the rest must not page anyone.
URGENT = [
    "I have a fever of 38.9 since last night", "tengo fiebre de 39 y escalofríos",
    "my calf is swollen and it hurts a lot", "me duele mucho la pantorrilla derecha y está hinchada",
    "there is pus coming out of the wound", "sale pus de la herida",
    "pain is 10/10, I can't stand it", "el dolor es insoportable, un 10",
    "I can't put any weight on the leg at all", "chills and 101.5 F this morning",
]
EMERGENCY = ["I can't breathe and my chest hurts", "no puedo respirar bien y me duele el pecho",
             "my lips and throat are swelling up"]
REVIEW = ["I fell in the bathroom yesterday", "me caí ayer en la calle", "please call me when you can"]
EVERYDAY = [
    "Thanks, all good today", "gracias, todo bien", "what time is my appointment?", "¿a qué hora es mi cita?",
    "feeling better every day", "ok", "I did the exercises", "ya hice los ejercicios", "HELP", "AYUDA", "5", "2",
]
SHARES = (("urgent", 0.10), ("emergency", 0.02), ("review", 0.08))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, str(latency)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def messages(count: int, seed: int = 5) -> list[tuple[str, str]]:
    """(kind, text) per patient, in a shuffled order."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for kind, share in SHARES:
        pool = {"urgent": URGENT, "emergency": EMERGENCY, "review": REVIEW}[kind]
        out += [(kind, pool[i % len(pool)]) for i in range(round(count * share))]
    out += [("everyday", EVERYDAY[i % len(EVERYDAY)]) for i in range(count - len(out))]
    rng.shuffle(out)
    return out


def write_oncall(path: Path) -> None:
    import yaml

    every_day = [{"hours": "00:00-24:00", "primary": DOCTORS[0][0], "backup": DOCTORS[1][0]}]
    path.write_text(yaml.safe_dump({"version": 1, "clinics": {SLUG: {
        "admin": ADMIN[0], "rota": every_day, "channels": ["sms", "email"],
        "escalation": {"backup_after_minutes": 60, "admin_after_minutes": 60}}}}), encoding="utf-8")


def seed(url: str, count: int) -> tuple[int, list[str]]:
    """The clinic, its staff and `count` patients with consents and a procedure; returns (clinic id, phones)."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from aftercare import plans
    from aftercare.db import make_engine
    from aftercare.models import (
        Channel,
        Clinic,
        ConsentEvent,
        KneeSide,
        Language,
        Patient,
        Procedure,
        ProcedureStatus,
        Role,
        StaffUser,
    )
    from aftercare.protocols import ProtocolRegistry
    from aftercare.settings import Settings

    engine = make_engine(url)
    now = datetime.now(UTC)
    phones = [f"+1312{n:07d}" for n in range(count)]
    with Session(engine, expire_on_commit=False) as session:
        clinic = Clinic(slug=SLUG, name="Northside Clinic", timezone="America/Chicago", phone="+13125550100")
        session.add(clinic)
        session.flush()
        for email, phone in (*DOCTORS, ADMIN):
            session.add(StaffUser(clinic_id=clinic.id or 0, email=email, name=email.split("@")[0],
                                  role=Role.admin if email == ADMIN[0] else Role.physician,
                                  password_hash="x", phone=phone))
        plans.ensure_snapshot(session, ProtocolRegistry.from_dir(Settings().config_dir / "protocols")
                              .get("msc-knee-injection"))
        session.commit()
        clinic_id = clinic.id or 0
    rng = random.Random(11)
    with engine.begin() as conn:
        patient_ids = list(conn.execute(insert(Patient).returning(Patient.id), [
            {"clinic_id": clinic_id, "first_name": "Ana", "last_name": f"Bench{i}", "phone_e164": phone,
             "email": f"bench{i}@example.org", "language": Language.es if i % 3 == 0 else Language.en,
             "timezone": "America/Chicago", "preferred_channel": Channel.sms, "created_at": now, "updated_at": now}
            for i, phone in enumerate(phones)]).scalars())
        conn.execute(insert(ConsentEvent), [
            {"patient_id": pid, "channel": ch, "granted": True, "source": "form", "recorded_by": "bench",
             "recorded_at": now} for pid in patient_ids for ch in Channel])
        conn.execute(insert(Procedure), [
            {"clinic_id": clinic_id, "patient_id": pid, "external_id": f"B-{i}", "protocol_id": "msc-knee-injection",
             "protocol_version": "1.0.0", "knee_side": KneeSide.left,
             "performed_at": now - timedelta(days=rng.uniform(1, 20)), "baseline_nrs": 6, "baseline_koos_jr": 50.0,
             "status": ProcedureStatus.active, "created_at": now, "updated_at": now}
            for i, pid in enumerate(patient_ids)])
    engine.dispose()
    return clinic_id, phones


def start_reader(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`aftercare inbound` as docker-compose.yml runs it beside the uvicorn app (serve starts its own)."""
    command = [str(Path(sys.executable).parent / "aftercare"), "inbound", "--nice", "5"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_app(env: dict[str, str], log: Path, topology: str, workers: int) -> subprocess.Popen[bytes]:
    """`aftercare serve` (embedded: one web worker; its child `aftercare inbound --ticker` reads the SMS and
    triages; local Prefect), or uvicorn with `workers` processes as in docker-compose.yml (flow mode deployment)."""
    handle = log.open("ab")
    bin_dir = Path(sys.executable).parent
    if topology == "serve":
        command = [str(bin_dir / "aftercare"), "serve"]
    else:
        command = [str(bin_dir / "aftercare"), "web", "--host", "127.0.0.1", "--port", env["AFTERCARE_PORT"],
                   "--workers", str(workers)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_prefect(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """A Prefect server of its own (the uvicorn topology; `aftercare serve` starts its embedded one)."""
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)


class Http11:
    """A minimal keep-alive HTTP/1.1 client for the load (httpx's pool bookkeeping grows with the number of
    waiting requests and, measured, became the bottleneck once the server fell behind)."""

    KEEP_IDLE = 3.0  # seconds; uvicorn closes a connection idle for 5 s

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}",
                *(f"{k}: {v}" for k, v in headers.items())]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self.slots:
            for attempt in (1, 2):  # a reused connection the server just closed: once more on a new one
                reused = self._reuse()
                reader, writer = reused or await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout)
                try:
                    writer.write(request)
                    status = await asyncio.wait_for(self._read(reader), timeout)
                except (asyncio.IncompleteReadError, ConnectionError):
                    writer.close()
                    if reused is None or attempt == 2:
                        raise
                    continue
                except BaseException:
                    writer.close()
                    raise
                self.idle.append((reader, writer, time.monotonic()))
                return status
        raise AssertionError("unreachable")

    def _reuse(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < self.KEEP_IDLE:
                return reader, writer
            writer.close()
        return None

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> int:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next((int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")), 0)
        await reader.readexactly(length)
        return int(head[0].split()[1])

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def fire(base: str, signed: list[tuple[dict[str, str], dict[str, str]]], rate: float) -> list[dict[str, Any]]:
    """Post every message at its scheduled instant (open loop); returns per-request timings.

    Latency counts from the scheduled instant, so time a request waited for a free connection on our side (the
    server being behind) is counted too, not hidden.
    """
    from urllib.parse import urlencode, urlsplit

    parts = urlsplit(base)
    client = Http11(parts.hostname or "127.0.0.1", parts.port or 80, max_connections=512)
    results: list[dict[str, Any]] = [{} for _ in signed]

    async def one(i: int, form: dict[str, str], headers: dict[str, str], due: float) -> None:
        try:
            status: int | str = await client.post(SMS_PATH, urlencode(form).encode(), headers, timeout=120)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            status = f"error: {type(exc).__name__}"
        done = time.perf_counter()
        results[i] = {"sid": form["MessageSid"], "sent_at": wall0 + (due - t0), "status": status,
                      "ms": (done - due) * 1000, "done_at": wall0 + (done - t0)}

    t0 = time.perf_counter() + 0.2
    wall0 = time.time() + 0.2
    tasks = []
    for i, (form, headers) in enumerate(signed):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, form, headers, due)))
    await asyncio.gather(*tasks)
    client.close()
    return results


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def outcome(url: str, sent: list[dict[str, Any]], kinds: dict[str, str], wait: float) -> dict[str, Any]:
    """Wait until everything is triaged and paged, then join the client's timings with what was stored."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from aftercare.db import make_engine
    from aftercare.models import Flag, FlagPage, InboundMessage, TouchpointStatus, TriageRequest, TriageStatus

    engine = make_engine(url)
    deadline = time.monotonic() + wait
    with Session(engine) as session:
        while True:
            open_requests = session.exec(select(func.count()).select_from(TriageRequest).where(
                col(TriageRequest.status).in_((TriageStatus.pending, TriageStatus.running)))).one()
            open_pages = session.exec(select(func.count()).select_from(FlagPage).where(
                col(FlagPage.status).in_((TouchpointStatus.scheduled, TouchpointStatus.sending)))).one()
            unread = session.exec(select(func.count()).select_from(InboundMessage).where(
                col(InboundMessage.queued).is_(True))).one()
            if (open_requests == 0 and open_pages == 0 and unread == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
            session.expire_all()
        inbound = {m.message_sid: m for m in session.exec(select(InboundMessage))}
        requests = {r.source_id: r for r in session.exec(select(TriageRequest).where(
            TriageRequest.source_kind == "message"))}
        flags = {f.id: f for f in session.exec(select(Flag))}
        pages = list(session.exec(select(FlagPage).order_by(col(FlagPage.id))))
    engine.dispose()
    first_page: dict[tuple[int, str], FlagPage] = {}
    for page in pages:
        first_page.setdefault((page.flag_id, page.channel.value), page)
    to_page: list[float] = []
    to_email: list[float] = []
    timeline: list[tuple[float, float, float | None, float | None]] = []  # per red flag: (seconds into the load,
    # seconds to the SMS page, seconds to being read, seconds to being triaged)
    stages: dict[str, list[float]] = {"read": [], "triaged": []}  # seconds from sending to each step, red flags
    missed: list[str] = []
    tiers: dict[str, dict[str, int]] = {}
    for row in sent:
        kind = kinds[row["sid"]]
        message = inbound.get(row["sid"])
        request = requests.get(message.id) if message is not None and message.id is not None else None
        severity = request.severity if request is not None else None
        tiers.setdefault(kind, {}).setdefault(str(severity), 0)
        tiers[kind][str(severity)] += 1
        if kind not in ("urgent", "emergency"):
            continue
        flag = flags.get(request.flag_id) if request is not None and request.flag_id else None
        sms = first_page.get((flag.id or 0, "sms")) if flag is not None else None
        if sms is None or sms.sent_at is None:
            missed.append(row["sid"])
            continue
        to_page.append(sms.sent_at.timestamp() - row["sent_at"])
        read = message.processed_at.timestamp() - row["sent_at"] if message and message.processed_at else None
        triaged = request.triaged_at.timestamp() - row["sent_at"] if request and request.triaged_at else None
        for stage, took in (("read", read), ("triaged", triaged)):
            if took is not None:
                stages[stage].append(took)
        timeline.append((round(row["sent_at"] - sent[0]["sent_at"], 2), round(to_page[-1], 3),
                         None if read is None else round(read, 3), None if triaged is None else round(triaged, 3)))
        email = first_page.get((flag.id or 0, "email"))
        if email is not None and email.sent_at is not None:
            to_email.append(email.sent_at.timestamp() - row["sent_at"])
    pages_sent = sum(1 for p in pages if p.status == TouchpointStatus.sent)
    return {
        "stored": len(inbound), "triage_requests": len(requests),
        "triaged_done": sum(1 for r in requests.values() if r.status == TriageStatus.done),
        "flags": len(flags), "pages": len(pages), "pages_sent": pages_sent,
        "severity_by_kind": tiers, "red_flags_without_a_page": missed,
        "to_sms_page_s": to_page, "to_email_page_s": to_email, "red_flag_timeline": timeline,
        "red_flag_stages_s": {k: {"p50": round(pct(sorted(v), 0.5), 3), "p95": round(pct(sorted(v), 0.95), 3)}
                              for k, v in stages.items()},
    }


def run(count: int, rate: float, flow_mode: str, latency: float, admin: str, keep_log: Path | None, topology: str,
        workers: int, extra_env: dict[str, str] | None = None, settle: float = 0.0) -> dict[str, Any]:
    import psycopg

    from aftercare import migrate
    from tests.fakes import ACCOUNT_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDGRID_API_KEY
    from tests.fakes.signing import twilio_inbound

    name = f"aftercare_bench_webhook_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    url = "postgresql+psycopg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="aftercare-webhook-bench-"))
    fake, fake_url = start_fake(latency)
    app: subprocess.Popen[bytes] | None = None
    reader: subprocess.Popen[bytes] | None = None
    prefect: subprocess.Popen[bytes] | None = None
    log = keep_log or work / "serve.log"
    try:
        migrate.upgrade(url)
        _, phones = seed(url, count)
        write_oncall(work / "oncall.yaml")
        port, prefect_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AFTERCARE_", "PREFECT_", "TWILIO_"))}
        env.update({
            "AFTERCARE_ENVIRONMENT": "test", "AFTERCARE_DATABASE_URL": url, "AFTERCARE_PORT": str(port),
            "AFTERCARE_PUBLIC_BASE_URL": base, "AFTERCARE_DEMO_SEED": "false", "AFTERCARE_FLOW_MODE": flow_mode,
            "AFTERCARE_ONCALL_FILE": str(work / "oncall.yaml"), "AFTERCARE_PREFECT_PORT": str(prefect_port),
            "AFTERCARE_PREFECT_HOME": str(work / "prefect"), "AFTERCARE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "AFTERCARE_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "AFTERCARE_TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
            "AFTERCARE_TWILIO_API_BASE_URL": fake_url, "AFTERCARE_SENDGRID_API_KEY": SENDGRID_API_KEY,
            "AFTERCARE_SENDGRID_FROM_EMAIL": "care@clinic.example", "AFTERCARE_SENDGRID_API_BASE_URL": fake_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT),
        })
        env.update(extra_env or {})
        started = time.perf_counter()
        if topology == "uvicorn" and flow_mode != "off":
            env["PREFECT_HOME"] = str(work / "prefect")
            prefect = start_prefect(env, prefect_port, log)
            wait_healthy(f"http://127.0.0.1:{prefect_port}/api/health", prefect, 180, log)
            env.update({"PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api", "AFTERCARE_FLOW_MODE": "deployment"})
        app = start_app(env, log, topology, workers)
        wait_healthy(base + "/healthz", app, 180, log)
        if topology == "uvicorn":
            reader = start_reader(env, log)
        startup = time.perf_counter() - started
        time.sleep(settle)  # the app warms triage-response up right after it answers (Prefect import, first run)
        print(f"app up in {startup:.1f}s ({topology}, flow mode {env['AFTERCARE_FLOW_MODE']}); seeded {count} "
              "patients", flush=True)

        mix = messages(count)
        signed = [twilio_inbound(base + SMS_PATH, phone, text) for phone, (_, text) in zip(phones, mix, strict=True)]
        kinds = {form["MessageSid"]: kind for (form, _), (kind, _) in zip(signed, mix, strict=True)}
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        gc.collect()
        gc.disable()  # the load generator's own collector pauses would show up as server latency
        try:
            sent = asyncio.run(fire(base, signed, rate))
        finally:
            gc.enable()
        send_seconds = time.perf_counter() - began
        print(f"posted {count} signed SMS in {send_seconds:.1f}s", flush=True)
        stored = outcome(url, sent, kinds, wait=180)
        ms = sorted(r["ms"] for r in sent)
        statuses: dict[str, int] = {}
        for r in sent:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        to_page = sorted(stored.pop("to_sms_page_s"))
        to_email = sorted(stored.pop("to_email_page_s"))
        timeline = stored.pop("red_flag_timeline")
        webhook = {
            "requests": count, "offered_rate_per_s": rate, "achieved_rate_per_s": round(count / send_seconds, 1),
            "answered_per_s": round(statuses.get("200", 0) / (max(r["done_at"] for r in sent)
                                                             - min(r["sent_at"] for r in sent)), 1),
            "status_codes": statuses, "p50_ms": round(pct(ms, 0.50), 1), "p90_ms": round(pct(ms, 0.90), 1),
            "p99_ms": round(pct(ms, 0.99), 1), "max_ms": round(ms[-1], 1), "target_p99_ms": TARGET_WEBHOOK_P99_MS,
        }
        by_second: dict[int, list[float]] = {}
        for r in sent:
            by_second.setdefault(int(r["sent_at"] - sent[0]["sent_at"]), []).append(r["ms"])
        webhook["by_second"] = [{"second": s, "requests": len(v), "p50_ms": round(pct(sorted(v), 0.5), 1),
                                 "p99_ms": round(pct(sorted(v), 0.99), 1)} for s, v in sorted(by_second.items())]
        webhook["target_met"] = webhook["p99_ms"] <= TARGET_WEBHOOK_P99_MS and statuses == {"200": count}
        paging = {
            "red_flag_messages": len(to_page) + len(stored["red_flags_without_a_page"]),
            "paged": len(to_page), "p50_s": round(pct(to_page, 0.50), 3), "p95_s": round(pct(to_page, 0.95), 3),
            "max_s": round(to_page[-1], 3) if to_page else None, "email_page_p95_s": round(pct(to_email, 0.95), 3),
            "target_p95_s": TARGET_PAGE_P95_S,
            "by_send_time": [{"sent_after_s": at, "to_page_s": took, "read_s": read, "triaged_s": triaged}
                             for at, took, read, triaged in sorted(timeline)],
        }
        paging["target_met"] = (paging["p95_s"] <= TARGET_PAGE_P95_S
                                and not stored["red_flags_without_a_page"])
        print(f"webhook: p50 {webhook['p50_ms']} ms, p99 {webhook['p99_ms']} ms, max {webhook['max_ms']} ms "
              f"({statuses}); answered {webhook['answered_per_s']}/s", flush=True)
        print("  by second: " + ", ".join(f"{b['second']}s {b['p50_ms']:.0f}/{b['p99_ms']:.0f}"
                                          for b in webhook["by_second"]), flush=True)
        print(f"urgent -> SMS page handed to the provider: p50 {paging['p50_s']} s, p95 {paging['p95_s']} s, "
              f"max {paging['max_s']} s over {paging['paged']} red-flag messages", flush=True)
        print(f"  red flags, seconds from sending to: {stored['red_flag_stages_s']}", flush=True)
        return {"database": "postgresql", "server_version": version, "topology": topology,
                "uvicorn_workers": 1 if topology == "serve" else workers, "flow_mode": env["AFTERCARE_FLOW_MODE"],
                "fake_latency_s": latency, "serve_startup_s": round(startup, 1), "settle_s": settle,
                "load_average_1min_before_load": round(load_before, 2), "webhook": webhook,
                "urgent_to_page": paging, "stored": stored}
    finally:
        stop(app)
        stop(reader)
        stop(prefect)
        fake.kill()
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
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    parser.add_argument("--flow-mode", choices=("inline", "off"), default="inline",
                        help="inline: triage-response flow runs on a Prefect server; off: no Prefect at all")
    parser.add_argument("--topology", choices=("serve", "uvicorn"), default="serve",
                        help="serve: `aftercare serve` (make run); uvicorn: --workers processes as in docker-compose")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (--topology uvicorn)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake providers wait to answer")
    parser.add_argument("--pg-admin", default=os.environ.get("AFTERCARE_BENCH_PG", PG_ADMIN),
                        help="libpq URL of a database we may CREATE DATABASE from")
    parser.add_argument("--log", type=Path, default=None, help="keep the app's log here")
    parser.add_argument("--no-save", action="store_true", help="do not write the results file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file (default: %(default)s)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between the app answering /healthz and the load (its warm-up runs first)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra setting for the app (repeatable), e.g. AFTERCARE_INBOUND_POLL_SECONDS=0.2")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # tests.fakes
    load_at_start = round(os.getloadavg()[0], 2)
    label = f"{args.messages} SMS at {args.rate:g}/s, {args.topology}" + (
        f" ({args.workers} workers)" if args.topology == "uvicorn" else "") + (
        ", no Prefect" if args.flow_mode == "off" else "")
    result = {"run": label, "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average_1min_at_start": load_at_start,
              **run(args.messages, args.rate, args.flow_mode, args.latency, args.pg_admin, args.log, args.topology,
                    args.workers, dict(item.split("=", 1) for item in args.env), args.settle),
              "machine": machine()}
    if not args.no_save:
        save(result, args.results)
    return 0 if result["webhook"]["target_met"] and result["urgent_to_page"]["target_met"] else 1


def save(result: dict[str, Any], path: Path = RESULTS) -> None:
    """bench/results/webhook.json keeps one entry per kind of run (same messages, rate and topology: replaced)."""
    runs: list[dict[str, Any]] = []
    if path.exists():
        runs = [r for r in json.loads(path.read_text(encoding="utf-8")).get("runs", []) if r["run"] != result["run"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = {"webhook_p99_ms": TARGET_WEBHOOK_P99_MS, "page_p95_s": TARGET_PAGE_P95_S}
    body = {"benchmark": "webhook", "targets": targets, "runs": [*runs, result]}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({result['run']})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
