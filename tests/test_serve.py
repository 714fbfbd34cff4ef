"""`aftercare serve` as a real process: demo seed, embedded Prefect, ticker, web app, clean shutdown."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aftercare import embedded
from aftercare.cli import app
from aftercare.demo import DEMO_PASSWORD
from aftercare.settings import Settings, get_settings
from aftercare.timeutil import utcnow

REPO = Path(__file__).resolve().parents[1]
TOKEN = re.compile(r"Bearer (ac_demo_[0-9a-f]{40})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _readers(pid: int) -> list[int]:
    """`aftercare inbound` children of `pid`."""
    return [child for child in _children(pid)
            if b"aftercare\x00inbound" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str
    prefect_port: int
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def _wait_healthy(served: Served, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"aftercare serve exited with {served.process.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"aftercare serve did not answer /healthz within {timeout} s:\n{served.output()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(*args: str, prefect_port: int | None = None, **env: str) -> Served:
        port, prefect_port = _free_port(), prefect_port or _free_port()
        run_dir = tmp_path / f"serve-{len(started)}"
        run_dir.mkdir()
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("AFTERCARE_", "PREFECT_"))
        } | {
            "AFTERCARE_ENVIRONMENT": "development",
            "AFTERCARE_DATABASE_URL": f"sqlite:///{run_dir / 'app.db'}",
            "AFTERCARE_PORT": str(port),
            "AFTERCARE_PREFECT_PORT": str(prefect_port),
            "AFTERCARE_PREFECT_HOME": str(tmp_path / "prefect"),
            "AFTERCARE_FLOW_MODE": "inline",
            "AFTERCARE_DEMO_SEED": "true",
            "AFTERCARE_SCHEDULER_ENABLED": "true",
            "AFTERCARE_PREFECT_START_TIMEOUT": "150",
            "PREFECT_HOME": str(run_dir / "prefect-client"),
            **env,
        }
        stdout, stderr = run_dir / "stdout.txt", run_dir / "stderr.txt"
        process = subprocess.Popen(
            [sys.executable, "-c", "from aftercare.cli import app; app()", "serve", *args],
            cwd=run_dir,
            env=environment,
            stdout=stdout.open("wb"),
            stderr=stderr.open("wb"),
        )
        served = Served(process, f"http://127.0.0.1:{port}", prefect_port, stdout, stderr)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(10)
        for child in _children(served.process.pid):
            os.kill(child, signal.SIGKILL)


def _record(served: Served, token: str, external_id: str) -> int:
    response = httpx.post(
        f"{served.base_url}/api/v1/procedures",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "external_id": external_id,
            "patient": {
                "first_name": "Hannah",
                "last_name": "Serve",
                "phone": "+1 416 555 0177",
                "timezone": "America/Toronto",
                "language": "en",
                "consent_sms": True,
            },
            "knee_side": "left",
            "performed_at": (utcnow() + timedelta(days=20)).isoformat(),
            "baseline_nrs": 6,
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["procedure_id"])


def _procedure(served: Served, token: str, procedure_id: int) -> dict[str, Any]:
    response = httpx.get(
        f"{served.base_url}/api/v1/procedures/{procedure_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _stop(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0, served.output()


@pytest.mark.slow
@pytest.mark.prefect
def test_serve_runs_the_whole_service_on_embedded_prefect(serve: Any) -> None:
    began = time.monotonic()
    served: Served = serve()
    _wait_healthy(served, timeout=150)  # ~25 s on an idle 2-core box (fresh Prefect DB); CI may be busier
    startup = time.monotonic() - began
    prefect_children = [
        pid for pid in _children(served.process.pid) if b"prefect" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(prefect_children) == 1, served.output()
    readers = _readers(served.process.pid)
    assert len(readers) == 1, served.output()  # `aftercare inbound --ticker`: inbound SMS, triage, the ticker
    assert b"--ticker" in Path(f"/proc/{readers[0]}/cmdline").read_bytes()

    out = served.output()
    assert f"Staff app:   {served.base_url}/" in out
    assert f"Prefect UI:  http://127.0.0.1:{served.prefect_port}" in out
    assert "coordinator.demo@example.org" in out and DEMO_PASSWORD in out
    token_match = TOKEN.search(out)
    assert token_match, out
    token = token_match.group(1)

    login_page = httpx.get(f"{served.base_url}/login")
    assert login_page.status_code == 200
    patients = httpx.get(f"{served.base_url}/api/v1/patients", headers={"Authorization": f"Bearer {token}"})
    assert patients.status_code == 200 and len(patients.json()) >= 12

    recorded_at = time.monotonic()
    procedure_id = _record(served, token, "SERVE-1")
    prefect_api = f"http://127.0.0.1:{served.prefect_port}/api"
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        runs = httpx.post(
            f"{prefect_api}/flow_runs/filter",
            json={
                "flows": {"name": {"any_": ["procedure-aftercare"]}},
                "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}, "name": {"any_": [f"plan-{procedure_id}"]}},
            },
        ).json()
        if runs:
            break
        time.sleep(0.5)
    assert len(runs) == 1, served.output()
    stored = _procedure(served, token, procedure_id)
    assert stored["status"] == "active"
    assert stored["flow_run_id"] == runs[0]["id"]  # the plan was built by the run the local server recorded

    flow_seconds = time.monotonic() - recorded_at

    os.kill(readers[0], signal.SIGKILL)  # the reader dies: serve starts another
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _readers(served.process.pid) in ([], readers):
        time.sleep(0.3)
    restarted = _readers(served.process.pid)
    assert len(restarted) == 1 and restarted != readers, served.output()
    assert "the inbound SMS reader exited" in served.output()
    readers = [*readers, *restarted]

    # A second service finds the healthy Prefect server on its port, reuses it, and leaves it running.
    second: Served = serve("--no-scheduler", prefect_port=served.prefect_port)
    _wait_healthy(second, timeout=60)
    assert "already running, reused" in second.output()
    assert _children(second.process.pid) == _readers(second.process.pid)  # no Prefect server of its own
    _stop(second)
    assert embedded.is_healthy(prefect_api)
    stopping = time.monotonic()
    _stop(served)
    print(f"startup {startup:.1f} s, flow {flow_seconds:.1f} s, stop {time.monotonic() - stopping:.1f} s")
    assert "stopping the embedded Prefect server" in served.output()
    assert not any(_alive(pid) for pid in [*prefect_children, *readers])
    assert not embedded.port_in_use(served.prefect_port)


@pytest.mark.slow
def test_serve_without_prefect_builds_plans_in_process(serve: Any) -> None:
    served: Served = serve("--no-prefect", "--no-scheduler")
    _wait_healthy(served, timeout=60)
    out = served.output()
    assert "Prefect:     off" in out and "Ticker:      off" in out
    assert _children(served.process.pid) == _readers(served.process.pid)  # only the inbound reader
    token_match = TOKEN.search(out)
    assert token_match, out
    procedure_id = _record(served, token_match.group(1), "SERVE-2")
    stored = _procedure(served, token_match.group(1), procedure_id)
    assert stored["status"] == "active" and stored["flow_run_id"] is None
    readers = _readers(served.process.pid)
    served.process.kill()  # serve killed outright: its reader (and ticker) must not live on alone
    served.process.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in readers) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not any(_alive(pid) for pid in readers), "the inbound reader outlived serve"


class _NotPrefect(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: Any) -> None: ...


@pytest.fixture
def busy_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _NotPrefect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_port_held_by_something_else_is_a_clear_error(busy_port: int, tmp_path: Path) -> None:
    assert embedded.port_in_use(busy_port)
    assert not embedded.is_healthy(embedded.api_url_for(busy_port))
    settings = Settings(prefect_port=busy_port, prefect_home=tmp_path / "prefect")
    with pytest.raises(embedded.PrefectStartError, match=f"port {busy_port} is in use.*AFTERCARE_PREFECT_PORT"):
        embedded.start_server(settings)
    assert not (tmp_path / "prefect").exists()


def test_serve_refuses_a_busy_app_port(busy_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_PORT", "1")  # restored after the test; serve overwrites it with --port
    result = CliRunner().invoke(app, ["serve", "--port", str(busy_port)])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"port {busy_port} on 127.0.0.1 is in use" in result.output
