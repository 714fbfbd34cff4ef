"""`aftercare serve`: the whole service in one process, on embedded defaults.

Order: migrate the database, seed the demo clinic into an empty one, start (or reuse) the local Prefect server
and point this process's Prefect client at it, start the background process (`aftercare inbound --ticker`: the
inbound SMS reader and the ticker, which must run exactly once), then run the web app in one uvicorn worker,
which then only answers HTTP. On SIGINT/SIGTERM the app stops first, then the background process, then Prefect.
With AFTERCARE_INBOUND_READER=thread or ticker, the ticker runs in this process instead.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Literal

import typer
from sqlalchemy.engine import make_url

from aftercare import demo, embedded, migrate, scheduler
from aftercare.cli.demo import box, credential_lines
from aftercare.db import session_scope
from aftercare.protocols import ProtocolError, ProtocolRegistry
from aftercare.settings import Settings, get_settings

log = logging.getLogger(__name__)
PrefectUse = Literal["embedded", "external", "none"]
_QUIET_LOGGERS = ("httpx", "apscheduler", "alembic")


class _Stop(SystemExit):
    """Raised by our SIGTERM/SIGHUP handler so every `finally` (ticker, Prefect) runs."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(0)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _apply_overrides(host: str | None, port: int | None, scheduler_off: bool) -> Settings:
    """Command-line options win over the environment, for every part of this process."""
    if host is not None:
        os.environ["AFTERCARE_HOST"] = host
    if port is not None:
        os.environ["AFTERCARE_PORT"] = str(port)
    if scheduler_off:
        os.environ["AFTERCARE_SCHEDULER_ENABLED"] = "false"
    get_settings.cache_clear()
    return get_settings()


def _prefect_use(settings: Settings, no_prefect: bool) -> tuple[PrefectUse, Settings]:
    """Decide where flows report to. Without any Prefect server, plans are built in-process (flow_mode=off)."""
    if settings.flow_mode == "off":
        return "none", settings
    if os.environ.get("PREFECT_API_URL"):
        return "external", settings
    if settings.flow_mode == "deployment":
        raise _fail("AFTERCARE_FLOW_MODE=deployment needs PREFECT_API_URL (a Prefect server with workers)")
    if no_prefect or not settings.embedded_prefect:
        log.warning(
            "no Prefect server (--no-prefect or AFTERCARE_EMBEDDED_PREFECT=false, and PREFECT_API_URL unset): "
            "care plans are built in-process without Prefect flow runs (AFTERCARE_FLOW_MODE=off)"
        )
        os.environ["AFTERCARE_FLOW_MODE"] = "off"
        get_settings.cache_clear()
        return "none", get_settings()
    return "embedded", settings


def _migrate(settings: Settings) -> None:
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:
        raise _fail(f"could not migrate the database {_safe_url(settings.database_url)}: {exc}") from None


def _seed_demo(settings: Settings, registry: ProtocolRegistry) -> demo.Credentials | None:
    with session_scope() as session:
        if settings.demo_seed and settings.environment != "production" and not demo.has_any_clinic(session):
            result = demo.seed(session, settings=settings, registry=registry)
            log.info(
                "seeded the demo clinic: %d patients, %d procedures, %d touchpoints",
                result.patients_created, result.procedures_created, result.touchpoints_written,
            )
        return demo.credentials(session, settings)


@contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the Prefect child is always stopped."""
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_READERS = {"process": "`aftercare inbound` (a child process)", "thread": "a thread of the web app",
            "ticker": "the ticker's inbound-tick only"}
INBOUND_NICE = 5  # under load the web app (Twilio waits on it) gets the CPU first; the reader takes the rest


class _Supervised:
    """`aftercare inbound` (with the ticker) beside the web app, started again if it dies (an inbound SMS waits,
    stored, until a reader runs; the ticker's jobs, too)."""

    RESTART_AFTER = (1, 2, 5, 10, 30)  # seconds before each restart in a row; then every 30 s

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.child = subprocess.Popen(command)
        self.started = time.monotonic()
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="aftercare-inbound-watch", daemon=True)
        self._thread.start()
        log.info("inbound SMS reader started (pid %d)", self.child.pid)

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.wait(1.0):
            code = self.child.poll()
            if code is None:
                if time.monotonic() - self.started > 60:  # up for a minute: the next death restarts at once
                    failures = 0
                continue
            delay = self.RESTART_AFTER[min(failures, len(self.RESTART_AFTER) - 1)]
            log.error("the inbound SMS reader exited (%s); starting it again in %d s", code, delay)
            if self._stopping.wait(delay):
                return
            failures += 1
            self.restarts += 1
            self.child = subprocess.Popen(self.command)
            self.started = time.monotonic()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        self._stopping.set()
        self._thread.join(5)
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


@contextmanager
def _inbound_reader(*, ticker: bool) -> Iterator[_Supervised]:
    """`aftercare inbound` beside the web app: its own process, so its work never holds up an answer to Twilio (its
    own CPU, no interpreter lock shared with the webhook). It logs to this console, is restarted if it dies, and is
    stopped when serve stops."""
    command = [sys.executable, "-m", "aftercare", "inbound", "--nice", str(INBOUND_NICE),
               "--parent-pid", str(os.getpid())]
    reader = _Supervised([*command, "--ticker"] if ticker else command)
    try:
        yield reader
    finally:
        reader.stop()


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _banner(
    settings: Settings,
    prefect: embedded.EmbeddedPrefect | None,
    use: PrefectUse,
    ticker_jobs: list[str],
    creds: demo.Credentials | None,
    seconds: float,
) -> str:
    base = f"http://{settings.host}:{settings.port}"
    if use == "embedded" and prefect is not None:
        origin = f"embedded, log {prefect.log_path}" if prefect.owned else "already running, reused"
        prefect_line = f"Prefect UI:  {prefect.ui_url}   ({origin})"
    elif use == "external":
        prefect_line = f"Prefect API: {os.environ['PREFECT_API_URL']}   (PREFECT_API_URL)"
    else:
        prefect_line = "Prefect:     off (plans are built in-process)"
    lines = [
        f"aftercare is up ({seconds:.1f} s)",
        f"Staff app:   {base}/",
        f"API docs:    {base}/docs",
        prefect_line,
        f"Database:    {_safe_url(settings.database_url)}",
        f"Ticker:      {', '.join(ticker_jobs)} every {settings.tick_seconds} s" if ticker_jobs else "Ticker:      off",
        f"Inbound SMS: read by {_READERS[settings.inbound_reader]}",
    ]
    if creds is not None:
        lines += ["", *credential_lines(creds, base)]
    lines += ["", "Stop with Ctrl-C."]
    return box(lines)


def serve(
    host: str | None = typer.Option(None, "--host", help="address to bind (default: AFTERCARE_HOST)"),
    port: int | None = typer.Option(None, "--port", help="port to bind (default: AFTERCARE_PORT)"),
    no_prefect: bool = typer.Option(
        False, "--no-prefect", help="do not start the local Prefect server (plans are then built in-process)"
    ),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="do not run the ticker in this process"),
) -> None:
    """Run the whole service: migrate, seed the demo clinic, local Prefect, ticker and the staff web app."""
    started = time.monotonic()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    settings = _apply_overrides(host, port, no_scheduler)
    if embedded.port_in_use(settings.port, settings.host):
        raise _fail(f"port {settings.port} on {settings.host} is in use; pass --port or set AFTERCARE_PORT")
    use, settings = _prefect_use(settings, no_prefect)
    try:
        registry = ProtocolRegistry.from_dir(settings.config_dir / "protocols")
    except ProtocolError as exc:
        raise _fail(str(exc)) from None
    try:
        _run(settings, use, registry, started)
    except KeyboardInterrupt:
        pass  # Ctrl-C: everything started has been stopped, in order
    finally:
        typer.echo("aftercare stopped", err=True)


def _run(settings: Settings, use: PrefectUse, registry: ProtocolRegistry, started: float) -> None:
    import uvicorn

    from aftercare.web.app import create_app

    with _signals(), ExitStack() as stack:
        prefect: embedded.EmbeddedPrefect | None = None
        if use == "embedded":
            typer.echo(f"starting the local Prefect server on port {settings.prefect_port} ...", err=True)
            try:
                prefect = stack.enter_context(embedded.running(settings))
            except embedded.PrefectStartError as exc:
                raise _fail(str(exc), 1) from None
        _migrate(settings)  # while Prefect boots
        try:
            creds = _seed_demo(settings, registry)
        except demo.DemoRefused as exc:
            raise _fail(str(exc)) from None
        if prefect is not None:
            try:
                prefect.wait_ready(settings.prefect_start_timeout)
            except embedded.PrefectStartError as exc:
                raise _fail(str(exc), 1) from None
        ticker_jobs: list[str] = []
        if settings.inbound_reader == "process":  # the ticker runs there too: this process only answers HTTP
            stack.enter_context(_inbound_reader(ticker=settings.scheduler_enabled))
            ticker_jobs = [job.name for job in scheduler.JOBS] if settings.scheduler_enabled else []
        elif settings.scheduler_enabled:
            ticker = scheduler.start(settings)
            stack.callback(ticker.shutdown)
            ticker_jobs = [job.name for job in ticker.get_jobs()]
        app = create_app(settings)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, workers=1, log_level="info")
        typer.echo(_banner(settings, prefect, use, ticker_jobs, creds, time.monotonic() - started))
        uvicorn.Server(config).run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
