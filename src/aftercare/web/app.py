"""The FastAPI application factory: `uvicorn --factory aftercare.web.app:create_app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlmodel import Session
from starlette.middleware.sessions import SessionMiddleware

import aftercare
from aftercare.bookings import calendar as booking_calendar
from aftercare.db import make_engine, make_hot_path_engine
from aftercare.orchestration import triage_in_background, warm_triage
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings, get_settings
from aftercare.web import api_patients, api_procedures, errors, imports_page, login, outbox_page, pages, procedure_form
from aftercare.web.api_flags import router as flags_api_router
from aftercare.web.api_visits import router as visits_api_router
from aftercare.web.booking_pages import router as booking_router
from aftercare.web.headers import SecurityHeaders
from aftercare.web.review_pages import router as review_router
from aftercare.web.survey_pages import router as survey_router
from aftercare.web.templating import make_templates
from aftercare.web.visits_pages import router as visits_router
from aftercare.webhooks import sendgrid_events, twilio_sms, twilio_status
from aftercare.webhooks.worker import InboundWorker

SESSION_COOKIE = "aftercare_session"
STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready app over `settings` (default: the environment). Protocol files are loaded and checked now."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.inbound_reader == "process":
            triage_in_background()  # `aftercare inbound` triages; this process only answers
        warm_triage(settings)  # the first page must not wait for Prefect to warm up; triages what is pending
        worker = InboundWorker(settings, engine).start() if settings.inbound_reader == "thread" else None
        # What was loaded at start (FastAPI, SQLAlchemy, Prefect: ~10^6 objects) stays for good: kept out of the
        # collector's full passes, which otherwise stop every request for 100-300 ms now and then.
        gc.freeze()
        app.state.inbound_worker = worker  # the SMS webhook wakes it
        yield
        app.state.inbound_worker = None
        if worker is not None:
            worker.stop()
        engine.dispose()
        app.state.hot_engine.dispose()

    app = FastAPI(
        title="aftercare",
        version=aftercare.__version__,
        description="Follow-up after outpatient knee procedures: staff API (bearer tokens) and coordinator pages.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hot_engine = make_hot_path_engine(settings.database_url)  # the SMS webhook's one insert
    app.state.inbound_worker = None
    app.state.registry = ProtocolRegistry.from_dir(settings.config_dir / "protocols")
    booking_calendar.current(settings)  # the clinic calendar (config/clinic.yaml) is checked now too
    app.state.templates = make_templates(settings)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.public_base_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (api_procedures, api_patients, login, pages, procedure_form, imports_page, outbox_page):
        app.include_router(module.router)
    app.include_router(twilio_status.router)
    app.include_router(twilio_sms.router)
    app.include_router(sendgrid_events.router)
    app.include_router(flags_api_router)  # the review queue over the API
    app.include_router(review_router)  # /flags: the physician review queue
    app.include_router(survey_router)  # public: the patient's survey form behind a signed link
    app.include_router(visits_api_router)  # /api/v1/visits: book, move, cancel, mark, urgent visits
    app.include_router(visits_router)  # /visits: the staff calendar; /calendar/<token>.ics: physician feeds
    app.include_router(booking_router)  # public: /b/<token>, the patient's booking page

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the app answers and the database does a round trip, else 503."""
        try:
            with Session(engine) as session:
                session.execute(text("SELECT 1")).one()
        except Exception as exc:
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
