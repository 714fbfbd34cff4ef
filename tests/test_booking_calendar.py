"""The clinic calendar file and open slots: validation that names the file and field, DST and cross-zone times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare import demo
from aftercare.bookings.calendar import CalendarError, load_calendar, parse_calendar
from aftercare.bookings.slots import Slot, candidates, cell_starts, is_free, pick_near
from aftercare.bookings.texts import slot_label, visit_label, zone_label
from aftercare.models import Role, VisitMode
from tests.booking_helpers import DR_A, DR_B, calendar_body, write_calendar

ROOT = Path(__file__).resolve().parents[1]
MAZATLAN = ZoneInfo("America/Mazatlan")  # San José del Cabo: UTC-7 all year (no DST since 2022)
TORONTO = "America/Toronto"


def test_the_shipped_calendar_loads_and_names_the_demo_physicians() -> None:
    loaded = load_calendar(ROOT / "config" / "clinic.yaml")

    cabos = loaded.clinics[demo.DEMO_SLUG]
    demo_physicians = {s.email for s in demo.STAFF if s.role == Role.physician}
    assert {d.email for d in cabos.physicians} == demo_physicians
    assert cabos.minutes(VisitMode.in_person) == 30 and cabos.offers.slots == 3
    assert cabos.video_link("abc") == "https://meet.example.org/cabos-abc"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hours": {"mon": ["9-13"]}}, r"clinics\.cabo\.hours: .*09:00-13:00, got '9-13'"),
        ({"hours": {"mon": ["09:00-13:00", "12:00-15:00"]}}, r"clinics\.cabo\.hours: mon: periods overlap"),
        ({"hours": {"mon": ["13:00-09:00"]}}, r"the end must be after the start"),
        ({"hours": {"monday": ["09:00-13:00"]}}, r"clinics\.cabo\.hours\.monday\.\[key\]"),
        ({"hours": {"mon": ["09:07-13:00"]}}, r"minutes must be a multiple of 5"),
        ({"slot_minutes": {"in_person": 30, "video": 20}}, r"clinics\.cabo\.slot_minutes: .*missing: phone"),
        ({"slot_minutes": {"in_person": 32, "video": 20, "phone": 15}}, r"in_person: 32 minutes"),
        ({"video_link_template": "https://meet.example.org/x"}, r"video_link_template: must contain \{room\}"),
        ({"video_link_template": "http://meet.example.org/{room}"}, r"must be an https:// address"),
        ({"physicians": []}, r"clinics\.cabo\.physicians: List should have at least 1 item"),
        ({"physicians": [{"email": DR_A}, {"email": DR_A.upper()}]}, r"physicians\[1\]: dr\.a@example\.org is listed"),
        ({"physicians": [{"email": "nobody"}]}, r"clinics\.cabo\.physicians\[0\]\.email: not an email address"),
        ({"physicians": [{"email": DR_A, "modes": ["house_call"]}]}, r"physicians\[0\]\.modes\[0\]: Input should be"),
        ({"holidays": ["2026-13-01"]}, r"clinics\.cabo\.holidays\[0\]: "),
        ({"offers": {"slots": 5}}, r"clinics\.cabo\.offers\.slots: Input should be less than or equal to 3"),
        ({"booking_horizon": 30}, r"clinics\.cabo\.booking_horizon: Extra inputs are not permitted"),
    ],
)
def test_a_bad_calendar_names_the_file_and_the_field(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = write_calendar(tmp_path / "clinic.yaml", calendar_body(**change))

    with pytest.raises(CalendarError, match=message) as caught:
        load_calendar(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_unreadable_calendars_say_why(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"cannot read"):
        load_calendar(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("clinics: [unclosed", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"bad\.yaml: not valid YAML"):
        load_calendar(tmp_path / "bad.yaml")
    with pytest.raises(CalendarError, match=r"x\.yaml: expected a mapping with `clinics:`"):
        parse_calendar(["a"], "x.yaml")


def _calendar():  # type: ignore[no-untyped-def]
    return parse_calendar(calendar_body(), "test").clinics["cabo"]


def test_slots_follow_the_clinic_hours_in_its_own_zone_across_the_us_dst_change() -> None:
    cal = _calendar()
    doctor = cal.physician(DR_A)
    assert doctor is not None
    # Friday 12 and Tuesday 16 March 2027, either side of the US/Canada change (Sunday 14 March).
    start, end = datetime(2027, 3, 12, 7, tzinfo=UTC), datetime(2027, 3, 17, 7, tzinfo=UTC)  # midnight there

    slots = list(candidates(cal, MAZATLAN, 1, doctor, VisitMode.in_person, start, end))

    days = sorted({s.starts_at.astimezone(MAZATLAN).date().isoformat() for s in slots})
    assert days == ["2027-03-12", "2027-03-16"]  # weekend closed, Monday 15 a holiday
    first = [s for s in slots if s.starts_at.astimezone(MAZATLAN).hour == 9 and s.starts_at.minute == 0]
    assert [s.starts_at for s in first] == [datetime(2027, 3, 12, 16, 0, tzinfo=UTC),
                                             datetime(2027, 3, 16, 16, 0, tzinfo=UTC)]
    per_day = len(slots) // 2
    assert per_day == 8 + 6  # 09:00-13:00 and 15:00-18:00 in 30-minute visits
    assert all(s.ends_at.astimezone(MAZATLAN).time() <= datetime(2027, 1, 1, 18, 0).time() for s in slots)


def test_a_patient_in_toronto_sees_clinic_times_shifted_by_the_dst_change() -> None:
    before = datetime(2027, 3, 12, 16, 0, tzinfo=UTC)  # Fri 09:00 in San José del Cabo
    after = datetime(2027, 3, 16, 16, 0, tzinfo=UTC)  # Tue 09:00 there, after Toronto moved to EDT

    assert slot_label(before, TORONTO, "en") == "Fri Mar 12, 11:00 AM"
    assert slot_label(after, TORONTO, "en") == "Tue Mar 16, 12:00 PM"
    assert slot_label(after, TORONTO, "es") == "mar 16 mar, 12:00"
    assert slot_label(after, "America/Mazatlan", "es") == "mar 16 mar, 09:00"
    assert (zone_label(before, TORONTO), zone_label(after, TORONTO)) == ("EST", "EDT")
    # And back in November (Toronto falls back on 7 Nov 2027).
    assert slot_label(datetime(2027, 11, 5, 16, 0, tzinfo=UTC), TORONTO, "en") == "Fri Nov 5, 12:00 PM"
    assert slot_label(datetime(2027, 11, 8, 16, 0, tzinfo=UTC), TORONTO, "en") == "Mon Nov 8, 11:00 AM"


def test_a_clinic_in_a_dst_zone_keeps_its_wall_clock_hours() -> None:
    cal = _calendar()
    doctor = cal.physician(DR_A)
    assert doctor is not None
    toronto = ZoneInfo(TORONTO)
    slots = list(candidates(cal, toronto, 1, doctor, VisitMode.video, datetime(2027, 3, 12, tzinfo=UTC),
                            datetime(2027, 3, 17, tzinfo=UTC)))

    firsts = sorted({min(s.starts_at for s in slots if s.starts_at.astimezone(toronto).date() == d)
                     for d in {s.starts_at.astimezone(toronto).date() for s in slots}})
    assert [f.astimezone(toronto).strftime("%a %H:%M") for f in firsts] == ["Fri 09:00", "Tue 09:00"]
    assert [f.hour for f in firsts] == [14, 13]  # 09:00 EST is 14:00 UTC, 09:00 EDT is 13:00 UTC


def test_a_physician_with_own_hours_and_modes() -> None:
    cal = _calendar()
    doctor = cal.physician(DR_B)
    assert doctor is not None
    week = (datetime(2027, 3, 22, tzinfo=UTC), datetime(2027, 3, 27, tzinfo=UTC))

    assert list(candidates(cal, MAZATLAN, 2, doctor, VisitMode.in_person, *week)) == []  # not an in-person doctor
    video = list(candidates(cal, MAZATLAN, 2, doctor, VisitMode.video, *week))
    assert {s.starts_at.astimezone(MAZATLAN).strftime("%a") for s in video} == {"Tue", "Thu"}
    assert len(video) == 2 * 6  # 10:00-12:00 in 20-minute visits


def test_cells_make_visits_of_different_lengths_collide() -> None:
    ten = datetime(2027, 3, 16, 17, 0, tzinfo=UTC)
    in_person = Slot(ten, 1, 30)
    assert len(cell_starts(in_person.starts_at, in_person.ends_at)) == 6
    busy = {(1, cell) for cell in cell_starts(in_person.starts_at, in_person.ends_at)}

    assert not is_free(Slot(ten + timedelta(minutes=20), 1, 20), busy)  # 10:20-10:40 overlaps 10:00-10:30
    assert is_free(Slot(ten + timedelta(minutes=30), 1, 20), busy)  # back to back is fine
    assert is_free(Slot(ten, 2, 30), busy)  # another physician
    assert not is_free(Slot(ten - timedelta(minutes=10), 1, 15), busy)


def test_offers_spread_over_days_near_the_target() -> None:
    day = datetime(2027, 3, 16, 16, 0, tzinfo=UTC)
    slots = [Slot(day + timedelta(days=d, minutes=30 * i), 1, 30) for d in range(-3, 4) for i in range(4)]

    picked = pick_near(slots, day + timedelta(minutes=40), 3, MAZATLAN)

    assert picked[1].starts_at == day + timedelta(minutes=30)  # the nearest
    assert len({s.starts_at.date() for s in picked}) == 3 and picked == sorted(picked)
    assert pick_near(slots[:2], day, 3, MAZATLAN) == sorted(slots[:2])


def test_visit_labels() -> None:
    assert [visit_label(v) for v in ("visit_2w", "visit_3mo", "urgent", "other")] == [
        "2-week follow-up", "3-month follow-up", "Urgent visit", "Other"]


def test_the_app_refuses_to_start_on_a_broken_calendar(tmp_path: Path) -> None:
    from aftercare.settings import Settings
    from aftercare.web.app import create_app

    path = write_calendar(tmp_path / "clinic.yaml", calendar_body(slot_minutes={"in_person": 30}))

    with pytest.raises(CalendarError, match=r"clinic\.yaml: clinics\.cabo\.slot_minutes: .*missing: video, phone"):
        create_app(Settings(database_url="sqlite://", calendar_file=path))
