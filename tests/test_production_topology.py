"""Production: the docker-compose file is checked statically, then the same topology runs without Docker.

The slow test starts `prefect server start` on the local PostgreSQL, `aftercare db upgrade`, `aftercare deploy-flows`,
one process worker, the app (`aftercare web`, 2 processes) and `aftercare inbound`; it records a procedure through
the REST API and waits for the worker's flow run to build the plan in the app database, then texts a red flag and
waits for the reader to triage it. Everything is torn down, databases dropped.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from aftercare.models import (
    InboundMessage,
    Patient,
    Procedure,
    ProcedureStatus,
    Role,
    Touchpoint,
    TriageRequest,
    TriageStatus,
)
from aftercare.orchestration import PLAN_DEPLOYMENT
from aftercare.settings import Settings
from tests.factories import make_api_token, make_clinic, make_staff, procedure_in
from tests.fakes import FakeProviders
from tests.fakes.signing import twilio_inbound

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("AFTERCARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_VAR = re.compile(r"\$\{(\w+)(?:(:?[?-])([^}]*))?\}")

# ---------------------------------------------------------------------------------------------- the compose file


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if op and op.endswith("?") and not current:
            raise ValueError(f"{name}: {arg}")
        if op and op.endswith("-") and not current:
            return arg
        return current

    return _VAR.sub(one, value)


def _service_env(service: str, env: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][service].get("environment", {})
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def _command(service: str) -> str:
    command = _compose()["services"][service]["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


SECRETS = {
    "POSTGRES_PASSWORD": "pg-" + "x" * 20,
    "AFTERCARE_SECRET_KEY": "k" * 48,
    "AFTERCARE_PUBLIC_BASE_URL": "https://aftercare.example.org",
    "PREFECT_AUTH": "admin:" + "p" * 20,
}


def test_compose_runs_postgres_prefect_server_workers_and_the_app() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "prefect-server", "worker", "app", "inbound"}
    assert "./deploy/initdb:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    assert _command("prefect-server").startswith("prefect server start --host 0.0.0.0")
    assert _command("worker").startswith("prefect worker start --pool ${AFTERCARE_PREFECT_WORK_POOL:-aftercare}")
    assert "--type process" in _command("worker")
    assert "replicas" in services["worker"]["deploy"]
    app = _command("app")
    assert app.index("aftercare db upgrade") < app.index("aftercare deploy-flows") < app.index("exec aftercare web")
    assert "--workers ${AFTERCARE_WEB_WORKERS:-2}" in app
    assert services["inbound"]["command"][:2] == ["aftercare", "inbound"]
    assert services["inbound"]["depends_on"]["app"] == {"condition": "service_healthy"}  # migrated first
    for name in ("prefect-server", "worker", "app", "inbound"):
        assert services[name]["image"] == "${AFTERCARE_IMAGE:-aftercare:latest}" and services[name]["build"] == "."
        assert "healthcheck" in services[name]
    assert services["app"]["depends_on"]["prefect-server"] == {"condition": "service_healthy"}
    assert services["prefect-server"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert all(p.startswith("127.0.0.1:") for p in services["prefect-server"]["ports"])  # no public Prefect UI


def test_compose_environment_names_real_settings() -> None:
    """A typo in an AFTERCARE_*/PREFECT_* name would be silently ignored at run time."""
    import prefect.settings

    fields = {f"AFTERCARE_{name.upper()}" for name in Settings.model_fields}
    for name in ("prefect-server", "worker", "app", "inbound"):
        for key in _compose()["services"][name]["environment"]:
            if key.startswith("AFTERCARE_"):
                assert key in fields, f"{name}: {key} is not a Settings field"
            else:
                assert key.startswith("PREFECT_") and hasattr(prefect.settings, key), f"{name}: unknown {key}"


def test_compose_secrets_are_required_and_make_valid_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for secret in SECRETS:
        with pytest.raises(ValueError, match=f"{secret}: set {secret}"):
            _service_env("app", {k: v for k, v in SECRETS.items() if k != secret})
    app_env, worker_env = _service_env("app", SECRETS), _service_env("worker", SECRETS)
    assert app_env == worker_env  # workers run the flows with the app's settings
    server_env = _service_env("prefect-server", SECRETS)
    assert make_url(server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]).drivername == "postgresql+asyncpg"
    assert make_url(server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]).database == "prefect"
    assert server_env["PREFECT_SERVER_API_AUTH_STRING"] == app_env["PREFECT_API_AUTH_STRING"]

    for key in [k for k in os.environ if k.startswith("AFTERCARE_")]:
        monkeypatch.delenv(key)
    for key, value in app_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "production" and settings.flow_mode == "deployment"
    assert not settings.scheduler_enabled and not settings.demo_seed and not settings.embedded_prefect
    assert settings.twilio_account_sid is None  # empty means unset
    url = make_url(settings.database_url)
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "postgres", "aftercare")
    assert app_env["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_image_and_initdb_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.splitlines()[3] == "FROM python:3.11-slim"
    assert "RUN pip install ." in dockerfile
    assert re.search(r"^USER aftercare$", dockerfile, re.M)
    for source in re.findall(r"^COPY (.+) \./", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists() or path == "README.md", path
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"src", "flows", "config", "templates", "pyproject.toml"} & set(ignored)
    sql = (ROOT / "deploy/initdb/01-prefect.sql").read_text()
    assert "CREATE DATABASE prefect;" in sql and "CREATE EXTENSION IF NOT EXISTS pg_trgm;" in sql


def test_every_subpackage_is_in_the_installed_package() -> None:
    """The image installs non-editable: a subpackage missing from pyproject's list would be missing there."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("aftercare", *p.parent.relative_to(ROOT / "src/aftercare").parts))
        for p in (ROOT / "src/aftercare").rglob("__init__.py")
    } | {"aftercare_flows"}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["aftercare"]
    data = [
        p.relative_to(ROOT / "src/aftercare").as_posix()
        for p in (ROOT / "src/aftercare").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    unshipped = [d for d in data if not any(fnmatch.fnmatch(d, pattern) for pattern in patterns)]
    assert unshipped == [], f"add to [tool.setuptools.package-data] aftercare: {unshipped}"


# ------------------------------------------------------------------------------------- the topology, for real


@dataclass
class Topology:
    env: dict[str, str]
    app_port: int
    prefect_port: int
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: list[TextIO] = field(default_factory=list)

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    def start(self, name: str, *argv: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.files.append(log)
        self.procs[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.logs
        )

    def run(self, *argv: str) -> str:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, cwd=self.logs)
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                pytest.fail(f"{name} exited {self.procs[name].returncode}:\n{self.tail(name)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"{name} not ready at {url} after {timeout} s:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-40:])

    def stop(self, name: str, grace: float = 20) -> None:
        """SIGTERM the process group (the worker's flow-run children too), SIGKILL after `grace` seconds."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # stragglers left in the group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_admin() -> Any:
    try:
        import psycopg

        return psycopg.connect(make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(False),
                               autocommit=True, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(PG_ADMIN).host}:{make_url(PG_ADMIN).port} ({exc})")


def _process_groups_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.killpg(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            alive.append(pid)
    return alive


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    admin = _pg_admin()
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    app_db, prefect_db = f"aftercare_topo_{tag}", f"prefect_topo_{tag}"
    base = make_url(PG_ADMIN)
    admin.execute(f'CREATE DATABASE "{app_db}"')
    pids: list[int] = []
    topo: Topology | None = None
    try:
        # the compose init script, with this run's database name
        sql = (ROOT / "deploy/initdb/01-prefect.sql").read_text().replace(" prefect", f" {prefect_db}")
        subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-q", "-h", str(base.host), "-p", str(base.port or 5432),
             "-U", str(base.username), "-d", str(base.database)],
            input=sql, text=True, check=True, capture_output=True, timeout=60,
        )
        prefect_port, app_port = _free_port(), _free_port()
        auth = "admin:" + secrets.token_urlsafe(12)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AFTERCARE_", "PREFECT_"))}
        env.update(
            {
                "AFTERCARE_ENVIRONMENT": "production",
                "AFTERCARE_SECRET_KEY": secrets.token_urlsafe(48),
                "AFTERCARE_DATABASE_URL": base.set(database=app_db).render_as_string(False),
                "AFTERCARE_FLOW_MODE": "deployment",
                "AFTERCARE_SCHEDULER_ENABLED": "false",
                "AFTERCARE_EMBEDDED_PREFECT": "false",
                "AFTERCARE_DEMO_SEED": "false",
                "AFTERCARE_CONFIG_DIR": str(ROOT / "config"),
                "AFTERCARE_TEMPLATES_DIR": str(ROOT / "templates"),
                "PREFECT_HOME": str(tmp_path / "prefect-home"),
                "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
                "PREFECT_API_AUTH_STRING": auth,
                "PREFECT_SERVER_API_AUTH_STRING": auth,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": base.set(
                    drivername="postgresql+asyncpg", database=prefect_db
                ).render_as_string(False),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "1",  # poll fast so the test is quick (default 10)
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        topo = Topology(env, app_port, prefect_port, tmp_path)
        yield topo
    finally:
        if topo is not None:
            pids = [p.pid for p in topo.procs.values()]
            for name in ("app", "inbound", "worker", "prefect-server"):  # workers before the server (prefect.md)
                topo.stop(name)
            for handle in topo.files:
                handle.close()
        from aftercare import db as db_module

        db_module._engine_for(base.set(database=app_db).render_as_string(False)).dispose()
        for name in (app_db, prefect_db):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        assert _process_groups_alive(pids) == [], "processes left behind"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_procedure_recorded_through_the_api_is_planned_by_a_worker(
    topology: Topology, fake_providers: FakeProviders
) -> None:
    started = time.monotonic()
    t = topology
    t.env.update({**fake_providers.settings_env(), "AFTERCARE_PUBLIC_BASE_URL": t.app_url})
    t.start("prefect-server", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(t.prefect_port))
    t.run("aftercare", "db", "upgrade")
    t.wait_http("prefect-server", t.prefect_url + "/health", timeout=120)
    server_ready = time.monotonic() - started
    deployed = t.run("aftercare", "deploy-flows")
    assert f"deployed {PLAN_DEPLOYMENT}" in deployed
    t.start("worker", "prefect", "worker", "start", "--pool", "aftercare", "--type", "process", "--limit", "2")
    t.start("app", "aftercare", "web", "--port", str(t.app_port), "--workers", "2")
    t.wait_http("app", t.app_url + "/healthz", timeout=60)

    from aftercare.db import _engine_for

    engine = _engine_for(t.env["AFTERCARE_DATABASE_URL"])
    with Session(engine, expire_on_commit=False) as session:
        clinic = make_clinic(session)
        token = make_api_token(session, make_staff(session, clinic, Role.coordinator))
    body = procedure_in(external_id="TOPO-1").model_dump(mode="json")
    recorded_at = time.monotonic()
    response = httpx.post(
        t.app_url + "/api/v1/procedures", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 201, response.text
    procedure_id = response.json()["procedure_id"]

    procedure = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with Session(engine) as session:
            procedure = session.get(Procedure, procedure_id)
            if procedure is not None and procedure.status == ProcedureStatus.active:
                break
        time.sleep(0.5)
    else:
        pytest.fail(f"plan not built by the worker in 90 s\nworker:\n{t.tail('worker')}\napp:\n{t.tail('app')}")
    planned_in = time.monotonic() - recorded_at
    assert procedure is not None and procedure.flow_run_id
    with Session(engine) as session:
        touchpoints = session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure_id)).all()
    assert len(touchpoints) > 20

    auth = tuple(t.env["PREFECT_API_AUTH_STRING"].split(":", 1))
    with httpx.Client(base_url=t.prefect_url, auth=auth, timeout=10) as prefect:  # type: ignore[arg-type]
        deadline = time.monotonic() + 30  # the plan is committed a moment before the run reports Completed
        while (run := prefect.get(f"/flow_runs/{procedure.flow_run_id}").json())["state"]["type"] == "RUNNING":
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
        deployment = prefect.get(f"/deployments/name/{PLAN_DEPLOYMENT}").json()
        assert prefect.get("/health").status_code == 200
        assert httpx.get(t.prefect_url + "/flow_runs/" + procedure.flow_run_id).status_code == 401  # auth is on
    assert run["state"]["type"] == "COMPLETED"
    assert run["deployment_id"] == deployment["id"] and run["work_pool_name"] == "aftercare"
    assert run["parameters"] == {"procedure_ids": [procedure_id]}

    api = httpx.get(f"{t.app_url}/api/v1/procedures/{procedure_id}", headers={"Authorization": f"Bearer {token}"})
    assert api.json()["status"] == "active"

    # The patient texts a red flag: the app stores and answers; `aftercare inbound` reads and triages it.
    t.start("inbound", "aftercare", "inbound")
    with Session(engine) as session:
        patient = session.get(Patient, procedure.patient_id)
    assert patient is not None and patient.phone_e164
    form, headers = twilio_inbound(t.app_url + "/webhooks/twilio/sms", patient.phone_e164,
                                   "I have a fever of 39.4 and chills since last night")
    posted = time.monotonic()
    answer = httpx.post(t.app_url + "/webhooks/twilio/sms", data=form, headers=headers, timeout=10)
    assert answer.status_code == 200 and "<Response" in answer.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Session(engine) as session:
            message = session.exec(select(InboundMessage).where(InboundMessage.message_sid == form["MessageSid"])).one()
            request = session.exec(select(TriageRequest).where(TriageRequest.source_id == message.id)).first()
            if request is not None and request.status == TriageStatus.done:
                break
        time.sleep(0.3)
    else:
        pytest.fail(f"the SMS was not read and triaged in 60 s\ninbound:\n{t.tail('inbound')}\napp:\n{t.tail('app')}")
    assert (message.queued, message.patient_id, request.severity) == (False, patient.id, "urgent")
    assert request.flag_id is not None
    triaged_in = time.monotonic() - posted
    engine.dispose()
    print(f"\nproduction topology: server ready {server_ready:.1f} s, planned {planned_in:.1f} s after the POST, "
          f"SMS triaged {triaged_in:.1f} s after the webhook, total {time.monotonic() - started:.1f} s")
