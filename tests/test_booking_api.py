"""The visits REST API on both databases: book, a taken time (409), bad input (422 naming the field), move,
cancel, mark, urgent visit, free times, and the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from aftercare.web.app import create_app
from tests.booking_helpers import World, make_world, use_calendar, write_calendar
from tests.factories import make_api_token, make_staff


@pytest.fixture
def world(session: Session, settings: Settings, registry: ProtocolRegistry, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> World:
    settings = use_calendar(monkeypatch, write_calendar(tmp_path / "clinic.yaml"))
    return make_world(session, settings, registry)


@pytest.fixture
def api(session: Session, world: World) -> Iterator[TestClient]:
    token = make_api_token(session, make_staff(session, world.clinic))
    with TestClient(create_app(world.settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def free(api: TestClient, world: World, mode: str = "in_person") -> list[dict[str, str]]:
    start = (utcnow() + timedelta(days=3)).date().isoformat()
    response = api.get(f"/api/v1/patients/{world.patient.id}/free-times",
                       params={"mode": mode, "start": start, "days": 7, "physician_id": world.dr_a.id})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_book_move_cancel_over_the_api(api: TestClient, world: World) -> None:
    times = free(api, world)
    body = {"patient_id": world.patient.id, "procedure_id": world.procedure.id, "visit": "visit_6w",
            "mode": "in_person", "physician_id": world.dr_a.id, "starts_at": times[0]["starts_at"]}

    booked = api.post("/api/v1/visits", json=body)

    assert booked.status_code == 201, booked.text
    visit = booked.json()
    assert (visit["visit"], visit["status"], visit["source"]) == ("visit_6w", "booked", "staff")
    assert times[0]["starts_at"] not in [t["starts_at"] for t in free(api, world)]
    listed = api.get("/api/v1/visits", params={"start": (utcnow() - timedelta(days=1)).date().isoformat(),
                                                "days": 30}).json()
    assert [v["id"] for v in listed] == [visit["id"]]

    again = api.post("/api/v1/visits", json=body | {"procedure_id": None, "visit": "other"})
    assert again.status_code == 409 and "choose another time" in again.json()["detail"]
    twice = api.post("/api/v1/visits", json=body | {"starts_at": times[3]["starts_at"]})
    assert twice.status_code == 409 and "already has the visit_6w visit booked" in twice.json()["detail"]

    # A time without an offset is the clinic's wall clock.
    local = datetime.fromisoformat(times[5]["starts_at"]).astimezone(ZoneInfo("America/Mazatlan"))
    moved = api.post(f"/api/v1/visits/{visit['id']}/move", json={"starts_at": local.replace(tzinfo=None).isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["replaces_id"] == visit["id"]
    assert datetime.fromisoformat(moved.json()["starts_at"]) == datetime.fromisoformat(times[5]["starts_at"])

    early = api.post(f"/api/v1/visits/{moved.json()['id']}/mark", json={"status": "attended"})
    assert early.status_code == 409 and "has not started yet" in early.json()["detail"]
    cancelled = api.post(f"/api/v1/visits/{moved.json()['id']}/cancel", json={"reason": "patient travelling"})
    assert cancelled.json()["status"] == "cancelled"
    assert api.post(f"/api/v1/visits/{moved.json()['id']}/cancel", json={"reason": "x"}).status_code == 409


def test_bad_input_names_the_field(api: TestClient, world: World) -> None:
    times = free(api, world)
    body = {"patient_id": world.patient.id, "procedure_id": world.procedure.id, "visit": "visit_6w",
            "mode": "in_person", "physician_id": world.dr_a.id, "starts_at": times[0]["starts_at"]}

    cases = [
        (body | {"starts_at": (utcnow() - timedelta(hours=2)).isoformat()}, 422, "is in the past"),
        (body | {"mode": "house_call"}, 422, "mode"),
        (body | {"physician_id": world.dr_b.id}, 422, "this physician does not see in person visits"),
        (body | {"procedure_id": None}, 422, "is a protocol visit: say which procedure"),
        (body | {"patient_id": 999_999}, 404, "no patient"),
        (body | {"extra": 1}, 422, "extra"),
        (body | {"starts_at": "tomorrow"}, 422, "starts_at"),
    ]
    for payload, status, needle in cases:
        response = api.post("/api/v1/visits", json=payload)
        assert response.status_code == status, (payload, response.text)
        assert needle in response.text, response.text
    assert api.post("/api/v1/visits/999999/cancel", json={"reason": "x"}).status_code == 404
    assert api.post("/api/v1/visits/1/mark", json={"status": "booked"}).status_code == 422
    assert api.get(f"/api/v1/patients/{world.patient.id}/free-times", params={"mode": "x"}).status_code == 422


def test_urgent_visit_and_authentication(api: TestClient, world: World) -> None:
    urgent = api.post(f"/api/v1/patients/{world.patient.id}/urgent-visit",
                      json={"physician_id": world.dr_a.id, "reason": "fever day 4"})

    assert urgent.status_code == 201, urgent.text
    assert urgent.json()["visit"] == "urgent" and urgent.json()["reason"] == "fever day 4"
    assert datetime.fromisoformat(urgent.json()["starts_at"]) >= utcnow() + timedelta(minutes=59)
    nobody = api.post(f"/api/v1/patients/{world.patient.id}/urgent-visit",
                      json={"physician_id": 999_999, "reason": "x"})
    assert nobody.status_code == 409 and "has no hours in the clinic calendar" in nobody.json()["detail"]
    assert api.get("/api/v1/visits", headers={"Authorization": "Bearer nope"}).status_code == 401
