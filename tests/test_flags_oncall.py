"""The on-call file (validated on load, rota by time, overrides), emergency numbers, review SLAs and the chart."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aftercare.flags import chart, sla
from aftercare.flags.oncall import OnCallError, load_oncall, parse_oncall, policy
from aftercare.flags.queue import Series
from aftercare.messaging.context import EMERGENCY_NUMBERS
from aftercare.messaging.context import emergency_number as template_number
from aftercare.settings import Settings
from tests.flag_helpers import rota

ROOT = Path(__file__).resolve().parents[1]
MAZATLAN = ZoneInfo("America/Mazatlan")


def _file(**entry: Any) -> dict[str, Any]:
    return {"version": 1, "clinics": {"cabo": rota(**entry)}}


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(OnCallError) as caught:
        parse_oncall(raw, "oncall.yaml")
    return str(caught.value)


def test_the_shipped_file_loads_and_covers_every_minute() -> None:
    loaded = load_oncall(ROOT / "config" / "oncall.yaml")
    demo = loaded.clinic("demo-los-cabos")
    assert demo is not None
    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=MAZATLAN)
    assert demo.on_call(monday_10, MAZATLAN) == ("physician.demo@example.org", "physician2.demo@example.org")
    assert demo.on_call(monday_10 + timedelta(hours=10), MAZATLAN)[0] == "physician2.demo@example.org"  # Mon 20:00
    assert demo.on_call(datetime(2026, 12, 5, 3, 0, tzinfo=MAZATLAN), MAZATLAN)[0] == "physician3.demo@example.org"
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=MAZATLAN)  # a Friday, but the override wins
    assert demo.on_call(christmas, MAZATLAN) == ("physician2.demo@example.org", "physician3.demo@example.org")


def test_overnight_shifts_end_the_next_morning() -> None:
    entry = parse_oncall(_file(), "x").clinic("cabo")
    assert entry is not None
    utc = ZoneInfo("Etc/UTC")
    at = datetime(2026, 12, 1, 7, 59, tzinfo=UTC)
    assert entry.on_call(at, utc)[0] == "dr.night@example.org"
    assert entry.on_call(at + timedelta(minutes=1), utc)[0] == "dr.primary@example.org"
    assert entry.on_call(datetime(2026, 12, 1, 23, 0, tzinfo=UTC), utc)[0] == "dr.night@example.org"


def test_a_gap_in_the_week_is_refused_with_its_day_and_hours() -> None:
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    message = _error(_file(rota=[
        {"days": weekdays, "hours": "08:00-18:00", "primary": "a@x.org", "backup": "b@x.org"},
        {"days": weekdays, "hours": "18:00-08:00", "primary": "b@x.org", "backup": "a@x.org"},
    ]))
    assert message == ("oncall.yaml: clinics.cabo: rota: nobody on call mon 00:00-08:00, sat 08:00-24:00, "
                       "sun 00:00-24:00 (every minute of the week needs a shift)")


@pytest.mark.parametrize(("change", "expected"), [
    ({"rota": [{"hours": "8-18", "primary": "a@x.org", "backup": "b@x.org"}]},
     r"clinics\.cabo\.rota\[0\]\.hours: must look like 08:00-18:00, got '8-18'"),
    ({"rota": [{"hours": "00:00-24:00", "primary": "a@x.org", "backup": "a@x.org"}]},
     r"clinics\.cabo\.rota\[0\]: primary and backup are both a@x\.org"),
    ({"admin": "nobody"}, r"clinics\.cabo\.admin: not a staff email address: 'nobody'"),
    ({"escalation": {"backup_after_minutes": 0}},
     r"clinics\.cabo\.escalation\.backup_after_minutes: Input should be greater than or equal to 1"),
    ({"overrides": [{"start": "2026-12-24", "end": "2026-12-26 08:00", "primary": "a@x.org", "backup": "b@x.org"}]},
     r"clinics\.cabo\.overrides\[0\]\.start: must look like 2026-12-24 18:00"),
    ({"overrides": [{"start": "2026-12-26 08:00", "end": "2026-12-24 08:00", "primary": "a@x.org",
                     "backup": "b@x.org"}]}, r"end 2026-12-24 08:00 must be after start 2026-12-26 08:00"),
    ({"rota": [{"days": ["monday"], "hours": "00:00-24:00", "primary": "a@x.org", "backup": "b@x.org"}]},
     r"clinics\.cabo\.rota\[0\]\.days\[0\]: Input should be 'mon'"),
    ({"pager": "yes"}, r"clinics\.cabo\.pager: Extra inputs are not permitted"),
    ({"channels": ["fax"]}, r"clinics\.cabo\.channels\[0\]: Input should be 'sms' or 'email'"),
])
def test_mistakes_name_the_field(change: dict[str, Any], expected: str) -> None:
    assert re.search(expected, _error(_file(**change))), _error(_file(**change))


def test_emergency_numbers_are_checked() -> None:
    assert "emergency_numbers: 'mx': use a two-letter ISO country code" in _error(
        {"emergency_numbers": {"mx": "911"}})
    assert "emergency_numbers: GB: '9-9-9' is not an emergency number" in _error(
        {"emergency_numbers": {"GB": "9-9-9"}})


def test_emergency_numbers_agree_with_the_message_templates() -> None:
    """The number a patient is told to call in an emergency is the one every template's footer names."""
    loaded = load_oncall(ROOT / "config" / "oncall.yaml")
    assert {"US", "CA", "MX"} <= set(loaded.emergency_numbers)
    for country, number in loaded.emergency_numbers.items():
        assert EMERGENCY_NUMBERS.get(country) == number == template_number(country), country
    assert loaded.emergency_number("ES") == "112" and loaded.emergency_number(None) == "112"


def test_a_clinic_without_an_entry_gets_the_defaults(tmp_path: Path) -> None:
    rules = policy(Settings(oncall_file=tmp_path / "missing.yaml"), "anywhere")
    assert rules.clinic is None
    assert (rules.escalation_minutes(0), rules.escalation_minutes(1), rules.escalation_minutes(2)) == (15, 15, None)


# -- SLAs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raised", "due"), [
    ("2026-12-01 10:00", "2026-12-03 10:00"),  # Tuesday -> Thursday
    ("2026-12-03 16:30", "2026-12-07 16:30"),  # Thursday -> Monday (weekend skipped)
    ("2026-12-04 09:00", "2026-12-08 09:00"),  # Friday -> Tuesday
    ("2026-12-05 22:00", "2026-12-09 08:00"),  # Saturday counts from Monday 08:00 -> Wednesday
    ("2026-12-23 12:00", "2026-12-28 12:00"),  # Wednesday, Christmas (a holiday) and the weekend skipped
])
def test_review_flags_are_due_in_business_days(raised: str, due: str) -> None:
    start = datetime.fromisoformat(raised).replace(tzinfo=MAZATLAN)
    expected = datetime.fromisoformat(due).replace(tzinfo=MAZATLAN)
    got = sla.add_business_days(start.astimezone(UTC), 2, MAZATLAN, {date(2026, 12, 25)})
    assert got == expected and got.tzinfo == UTC


def test_sla_words() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert sla.describe(now + timedelta(minutes=40), now) == ("due in 40 min", False)
    assert sla.describe(now + timedelta(hours=26, minutes=5), now) == ("due in 26 h 5 min", False)
    assert sla.describe(now - timedelta(days=3, hours=2), now) == ("overdue by 3 days 2 h", True)
    assert sla.age(now - timedelta(minutes=90), now) == "1 h 30 min"


# -- chart --------------------------------------------------------------------------------------


def test_the_chart_draws_points_baseline_and_mcid_band_and_escapes_text() -> None:
    series = Series("Pain <b>", [(1.0, 7.0), (3.0, 3.0), (14.0, 9.0)], 6.0)
    svg = str(chart.svg(series, chart.PAIN, chart_id="c\"1"))
    assert svg.startswith('<svg id="c&quot;1" class="chart" role="img"')
    assert "<b>" not in svg and "Pain &lt;b&gt;" in svg
    assert svg.count('class="point"') == 3 and 'class="mcid"' in svg and 'class="baseline"' in svg
    assert "within the MCID of baseline (6 ± 2)" in svg
    assert 'fill="#2f8132"><title>day 3: 3/10</title>' in svg  # better than baseline by the MCID: green
    assert 'fill="#b42318"><title>day 14: 9/10</title>' in svg  # worse by it: red
    assert 'fill="#52606d"><title>day 1: 7/10</title>' in svg  # inside the band
    assert "latest 9/10 on day 14" in svg


def test_an_empty_chart_says_so() -> None:
    svg = str(chart.svg(Series("KOOS JR", [], None), chart.KOOS_JR, chart_id="k"))
    assert "no answers yet" in svg and 'class="mcid"' not in svg and "no values yet" in svg
