"""`aftercare inbound`: the process that reads inbound SMS right after the webhook stored and answered them.

`aftercare serve` starts it beside the web app (AFTERCARE_INBOUND_READER=process, the default), with the ticker
(`--ticker`), so the web process only answers HTTP; docker-compose runs it as its own service. It links each
message to its patient, runs the survey or booking conversation, opens tasks and starts `triage-response` for
free text, so urgent pages are sent from here. Run one or more (each message is read once); with none running,
the ticker's inbound-tick reads what waited longer than AFTERCARE_TRIAGE_GRACE_SECONDS.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import typer

from aftercare.settings import get_settings

log = logging.getLogger(__name__)


def inbound(
    nice: int = typer.Option(0, "--nice", min=0, max=19,
                             help="lower this process's CPU priority by N, so the web app answers first under load"),
    ticker: bool = typer.Option(False, "--ticker", help="run the ticker here too (exactly one per database)"),
    heartbeat: Path | None = typer.Option(None, "--heartbeat",
                                          help="touch this file after every round (for a container health check)"),
    parent_pid: int | None = typer.Option(None, "--parent-pid",
                                          help="stop when this process (aftercare serve) is no longer our parent"),
) -> None:
    """Read stored inbound SMS (patient, conversation, tasks, triage) until stopped; with --ticker, tick too."""
    from aftercare import scheduler
    from aftercare.db import get_engine
    from aftercare.orchestration import stop_triage, warm_triage
    from aftercare.webhooks.worker import InboundWorker

    if nice:
        os.nice(nice)
    settings = get_settings()
    worker = InboundWorker(settings, get_engine(), triage_home=True, heartbeat=heartbeat)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        worker.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop)
    if parent_pid is not None:  # serve killed outright (SIGKILL) must not leave a reader and a second ticker behind

        def _watch_parent() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            log.error("aftercare serve (pid %d) is gone; stopping", parent_pid)
            worker.request_stop()

        threading.Thread(target=_watch_parent, name="aftercare-parent-watch", daemon=True).start()
    warm_triage(settings)  # a triage-response run ready for the first message (and for what is pending)
    ticking = scheduler.start(settings) if ticker else None
    log.info("reading inbound SMS every %.2f s (nice %d)%s", settings.inbound_poll_seconds, nice,
             ", ticker on" if ticking else "")
    try:
        worker.run()
    finally:
        worker.stop()
        if ticking is not None:
            ticking.shutdown()
        stop_triage()
        log.info("inbound reader stopped")


def register(app: typer.Typer) -> None:
    app.command("inbound")(inbound)
