"""Local-time arithmetic: DST, month ends and the send window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from aftercare.timing import add_months, local_wall_time, next_send_time, offset_instant

TORONTO = ZoneInfo("America/Toronto")
CABO = ZoneInfo("America/Mazatlan")  # no DST since 2022


def test_wall_time_keeps_local_hour_across_spring_forward() -> None:
    before = local_wall_time(date(2026, 3, 7), time(10), TORONTO)
    after = local_wall_time(date(2026, 3, 9), time(10), TORONTO)
    assert before == datetime(2026, 3, 7, 15, tzinfo=UTC)  # EST, UTC-5
    assert after == datetime(2026, 3, 9, 14, tzinfo=UTC)  # EDT, UTC-4


def test_wall_time_in_the_spring_forward_gap_moves_forward() -> None:
    instant = local_wall_time(date(2026, 3, 8), time(2, 30), TORONTO)
    assert instant.astimezone(TORONTO).time() == time(3, 30)


def test_wall_time_in_the_fall_back_overlap_takes_the_first() -> None:
    instant = local_wall_time(date(2026, 11, 1), time(1, 30), TORONTO)
    assert instant == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # still EDT


def test_months_clamp_to_the_last_day() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)
    assert add_months(date(2026, 12, 15), 24) == date(2028, 12, 15)


def test_offset_with_time_lands_on_the_patients_local_day() -> None:
    # injection at 17:00 in Los Cabos = 19:00 in Toronto the same day
    t0 = datetime(2026, 3, 6, 17, tzinfo=CABO)
    day1 = offset_instant(t0, TORONTO, days=1, weeks=0, months=0, hours=0, at="10:00")
    assert day1.astimezone(TORONTO) == datetime(2026, 3, 7, 10, tzinfo=TORONTO)
    day3 = offset_instant(t0, TORONTO, days=3, weeks=0, months=0, hours=0, at="10:00")
    assert day3.astimezone(TORONTO).hour == 10 and day3.astimezone(TORONTO).day == 9


def test_exact_hours_offset_is_elapsed_time() -> None:
    t0 = datetime(2026, 3, 8, 5, tzinfo=UTC)  # 00:00 EST in Toronto, the DST day
    assert offset_instant(t0, TORONTO, days=0, weeks=0, months=0, hours=2, at=None) == datetime(
        2026, 3, 8, 7, tzinfo=UTC
    )


def test_send_window_moves_evening_to_next_morning_and_dawn_to_same_morning() -> None:
    evening = datetime(2026, 6, 1, 21, 30, tzinfo=TORONTO)
    assert next_send_time(evening, TORONTO, "08:00", "20:00") == datetime(2026, 6, 2, 8, tzinfo=TORONTO)
    dawn = datetime(2026, 6, 1, 6, 15, tzinfo=TORONTO)
    assert next_send_time(dawn, TORONTO, "08:00", "20:00") == datetime(2026, 6, 1, 8, tzinfo=TORONTO)
    noon = datetime(2026, 6, 1, 12, tzinfo=TORONTO)
    assert next_send_time(noon, TORONTO, "08:00", "20:00") == noon
    edge = datetime(2026, 6, 1, 20, 0, tzinfo=TORONTO)
    assert next_send_time(edge, TORONTO, "08:00", "20:00") == datetime(2026, 6, 2, 8, tzinfo=TORONTO)
