"""Shared fixtures: every database test runs on SQLite and on PostgreSQL (skipped only when no server)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="aftercare-tests-"))
os.environ.update(
    {
        "AFTERCARE_ENVIRONMENT": "test",
        "AFTERCARE_FLOW_MODE": "off",
        "AFTERCARE_DEMO_SEED": "false",
        "AFTERCARE_SCHEDULER_ENABLED": "false",
        # Tests read stored inbound SMS themselves (tests.web_helpers.read_inbound), so what they assert is settled;
        # tests/test_inbound_worker.py runs the reader thread and process.
        "AFTERCARE_INBOUND_READER": "ticker",
        "PREFECT_HOME": str(_HOME / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
)
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from aftercare import db as db_module  # noqa: E402
from aftercare import migrate  # noqa: E402
from aftercare.protocols import ProtocolRegistry  # noqa: E402
from aftercare.settings import Settings, get_settings  # noqa: E402
from tests.fakes.plugin import fake_provider_settings, fake_providers  # noqa: E402, F401 (fixtures)

PG_ADMIN_DSN = os.environ.get("AFTERCARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> tuple[object | None, str]:
    try:
        import psycopg

        conn = psycopg.connect(
            PG_ADMIN_DSN.replace("postgresql+psycopg", "postgresql"), autocommit=True, connect_timeout=3
        )
        return conn, ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}".strip()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'aftercare.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    conn, problem = _pg_admin()
    if conn is None:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({problem})")
    name = f"aftercare_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    db_module._engine_for(url).dispose()
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database; the app's settings point at it for the test."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    _empty(url)
    get_settings.cache_clear()


def _empty(url: str) -> None:
    engine = db_module._engine_for(url)
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return get_settings()


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    with Session(db_module.get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture
def registry(settings: Settings) -> ProtocolRegistry:
    return ProtocolRegistry.from_dir(settings.config_dir / "protocols")
