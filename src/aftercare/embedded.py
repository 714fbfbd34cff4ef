"""The embedded Prefect server: `aftercare serve` runs `prefect server start` as a child process.

Why a real server and not Prefect's ephemeral mode: with PREFECT_API_URL unset, every process that calls a
flow starts its own temporary API server on one SQLite file, which gives "database is locked" errors and retry
sleeps under light load, and the scheduler services are off (see shared/prefect.md). One local server, started
once, with its SQLite database under `.data/prefect`, avoids all of that; the app then reports its flow runs to it
exactly as it would to a production server.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from aftercare.settings import Settings

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class PrefectStartError(RuntimeError):
    """The embedded Prefect server could not be started; the message says why and what to do."""


@dataclass
class EmbeddedPrefect:
    """A Prefect server this process uses: one it started (`process` set) or one it found running."""

    api_url: str
    ui_url: str
    home: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log_file: IO[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server answers /api/health, then point this process's Prefect client at it."""
        if self.process is not None:
            _wait_healthy(self, timeout)
        point_client_at(self.api_url, self.home)

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server (its whole process group) if we started it; idempotent."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            log.info("stopping the embedded Prefect server (pid %d)", proc.pid)
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("Prefect server did not stop within %.0f s; killing it", timeout)
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def api_url_for(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when a Prefect server answers `GET /api/health` with `true`."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
        return response.status_code == 200 and response.json() is True
    except (httpx.HTTPError, ValueError):
        return False


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux only)."""
    with suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _server_env(settings: Settings, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": HOST,
            "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
            "PREFECT_UI_API_URL": api_url_for(settings.prefect_port),
        }
    )
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launch(settings: Settings) -> EmbeddedPrefect:
    """Start `prefect server start` on settings.prefect_port without waiting for it (see `wait_ready`).

    Reuses a healthy Prefect server already on that port. Raises PrefectStartError with a clear message.
    """
    port = settings.prefect_port
    api_url = api_url_for(port)
    ui_url = f"http://{HOST}:{port}"
    home = settings.prefect_home.resolve()
    if port_in_use(port):
        if is_healthy(api_url):
            log.info("reusing the Prefect server already running at %s", api_url)
            return EmbeddedPrefect(api_url=api_url, ui_url=ui_url, home=home)
        raise PrefectStartError(
            f"port {port} is in use by something that is not a Prefect server; "
            "set AFTERCARE_PREFECT_PORT to a free port, or run with --no-prefect"
        )
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
        env=_server_env(settings, home),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop it after the app, in order
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return EmbeddedPrefect(
        api_url=api_url, ui_url=ui_url, home=home, process=process, log_path=log_path, _log_file=log_file
    )


def start_server(settings: Settings) -> EmbeddedPrefect:
    """Launch (or reuse) the server and wait until it is healthy; this process's client then reports to it."""
    server = launch(settings)
    try:
        server.wait_ready(settings.prefect_start_timeout)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server


def _wait_healthy(server: EmbeddedPrefect, timeout: float) -> None:
    assert server.process is not None
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise PrefectStartError(
                f"the Prefect server exited with code {server.process.returncode} while starting; "
                f"last lines of {server.log_path}:\n{_tail(server.log_path) if server.log_path else ''}"
            )
        if is_healthy(server.api_url, timeout=1.0):
            log.info("Prefect server healthy at %s (log: %s)", server.api_url, server.log_path)
            return
        time.sleep(0.25)
    raise PrefectStartError(
        f"the Prefect server did not answer {server.api_url}/health within {timeout:.0f} s "
        f"(AFTERCARE_PREFECT_START_TIMEOUT); see {server.log_path}, or run with --no-prefect"
    )


def point_client_at(api_url: str, home: Path | None = None) -> None:
    """Make this process's Prefect client report to `api_url` (and keep its files under `home`).

    Prefect reads its settings from the environment when it is first imported; if it was imported
    already, its global settings are refreshed so flows started afterwards see the new URL.
    """
    os.environ["PREFECT_API_URL"] = api_url
    if home is not None and "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = str(home.resolve())
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def client_api_url() -> Any:
    """The API URL Prefect's client in this process will use (None: ephemeral mode)."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@contextmanager
def running(settings: Settings) -> Iterator[EmbeddedPrefect]:
    """Launch (or reuse) the local Prefect server; stop it on exit. Call `wait_ready` before running flows.

    Launching first lets the caller migrate and seed while the server boots (it takes 7-25 s).
    """
    server = launch(settings)
    try:
        yield server
    finally:
        if server.owned:
            _drain_client()
        server.stop()


def _drain_client() -> None:
    """Send the logs and events this process still holds before the server goes away (no exit noise)."""
    if "prefect.logging.handlers" in sys.modules:
        with suppress(Exception):
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)
    if "prefect.events.worker" in sys.modules:
        with suppress(Exception):
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=5)
