"""Alembic: one head; upgrade, downgrade and upgrade again on SQLite and PostgreSQL, with data in place."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import aftercare.models  # noqa: F401
from aftercare import migrate
from tests.conftest import PG_ADMIN_DSN, _pg_admin


def test_single_head() -> None:
    assert len(migrate.heads()) == 1


def _roundtrip(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO clinic (slug, name, timezone, phone, country, send_window_start, send_window_end,"
                " created_at) VALUES ('x', 'X', 'UTC', '+15555550100', 'US', '08:00', '20:00', CURRENT_TIMESTAMP)"
            )
        )
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables
    migrate.downgrade(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_roundtrip_sqlite(tmp_path: os.PathLike[str]) -> None:
    _roundtrip(f"sqlite:///{tmp_path}/m.db")


@pytest.mark.postgres
def test_roundtrip_postgresql() -> None:
    conn, problem = _pg_admin()
    if conn is None:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({problem})")
    name = f"aftercare_mig_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        _roundtrip(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}")
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


def test_models_and_migration_agree(tmp_path: os.PathLike[str]) -> None:
    """Autogenerate against an upgraded database finds nothing to add: models.py and the migration match."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = f"sqlite:///{tmp_path}/cmp.db"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == []
