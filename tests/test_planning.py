"""Plan generation from the shipped protocols, across zones and a DST change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare.models import Channel, TouchpointKind, TouchpointStatus
from aftercare.planning import PAST_AT_PLANNING, PlanContext, build_plan
from aftercare.protocols import ProtocolRegistry

CONFIG = Path(__file__).resolve().parents[1] / "config" / "protocols"


@pytest.fixture(scope="module")
def protocols() -> ProtocolRegistry:
    return ProtocolRegistry.from_dir(CONFIG)


def ctx(zone: str, t0: datetime, **kw: object) -> PlanContext:
    values: dict[str, object] = {
        "performed_at": t0,
        "zone": ZoneInfo(zone),
        "preferred_channel": Channel.sms,
        "has_phone": True,
        "has_email": True,
    }
    values.update(kw)
    return PlanContext(**values)  # type: ignore[arg-type]


EARLY = datetime(2026, 1, 1, tzinfo=UTC)


def by_key(plan: list) -> dict:  # type: ignore[type-arg]
    return {(tp.key, tp.channel): tp for tp in plan}


@pytest.mark.parametrize(
    "zone", ["America/Toronto", "America/Vancouver", "America/Mazatlan", "America/Phoenix", "America/Halifax"]
)
def test_checkins_land_at_ten_local_on_days_1_2_3_5_7_14(protocols: ProtocolRegistry, zone: str) -> None:
    t0 = datetime(2026, 3, 5, 18, tzinfo=UTC)  # spans the 2026-03-08 US/Canada DST change
    plan = by_key(build_plan(protocols.get("msc-knee-injection"), ctx(zone, t0), EARLY))
    local_t0 = t0.astimezone(ZoneInfo(zone)).date()
    for day in (1, 2, 3, 5, 7, 14):
        tp = plan[(f"checkin_d{day}", Channel.sms)]
        local = tp.due_at.astimezone(ZoneInfo(zone))
        assert (local.date() - local_t0).days == day
        assert (local.hour, local.minute) == (10, 0), f"{zone} day {day}: {local}"
        assert tp.kind == TouchpointKind.checkin and tp.clinical


def test_plan_has_every_part_of_the_journey(protocols: ProtocolRegistry) -> None:
    plan = build_plan(
        protocols.get("msc-knee-injection"), ctx("America/Toronto", datetime(2026, 5, 1, 15, tzinfo=UTC)), EARLY
    )
    keys = {tp.key for tp in plan}
    assert {"pre_nsaid_hold", "pre_logistics", "baseline_survey", "discharge", "rest_d1", "rest_d3"} <= keys
    assert {"rehab_p1", "rehab_p2", "rehab_p3", "rehab_p4"} <= keys
    assert {"survey_wk6", "survey_mo3", "survey_mo6", "survey_mo12", "survey_mo24"} <= keys
    assert {"visit_2w_offer", "visit_6w_offer", "visit_3mo_offer", "visit_6mo_offer", "visit_12mo_offer"} <= keys
    assert 25 <= len(plan) <= 40
    assert [tp.due_at for tp in plan] == sorted(tp.due_at for tp in plan)


def test_surveys_carry_instruments_and_windows(protocols: ProtocolRegistry) -> None:
    plan = by_key(
        build_plan(
            protocols.get("msc-knee-injection"), ctx("America/Chicago", datetime(2026, 5, 1, 15, tzinfo=UTC)), EARLY
        )
    )
    mo6 = plan[("survey_mo6", Channel.sms)]
    assert mo6.payload["survey"] == "mo6" and "koos_jr" in mo6.payload["instruments"]
    assert mo6.window_end - mo6.planned_at == timedelta(days=30)
    d1 = plan[("checkin_d1", Channel.sms)]
    assert d1.window_end - d1.planned_at == timedelta(hours=8)


def test_month_offsets_are_calendar_months(protocols: ProtocolRegistry) -> None:
    t0 = datetime(2026, 1, 31, 16, tzinfo=UTC)
    plan = by_key(build_plan(protocols.get("msc-knee-injection"), ctx("America/New_York", t0), EARLY))
    assert (
        plan[("survey_mo3", Channel.sms)].due_at.astimezone(ZoneInfo("America/New_York")).date().isoformat()
        == "2026-04-30"
    )
    assert (
        plan[("survey_mo12", Channel.sms)].due_at.astimezone(ZoneInfo("America/New_York")).date().isoformat()
        == "2027-01-31"
    )


def test_quiet_hours_hold_a_late_evening_discharge_until_morning(protocols: ProtocolRegistry) -> None:
    zone = ZoneInfo("America/Toronto")
    t0 = datetime(2026, 6, 10, 19, 0, tzinfo=zone)  # +2 h = 21:00, after the 20:00 window end
    plan = by_key(build_plan(protocols.get("msc-knee-injection"), ctx("America/Toronto", t0), EARLY))
    discharge = plan[("discharge", Channel.sms)]
    assert discharge.planned_at.astimezone(zone).hour == 21
    assert discharge.due_at.astimezone(zone) == datetime(2026, 6, 11, 8, 0, tzinfo=zone)
    assert discharge.window_end >= discharge.due_at
    assert plan[("discharge", Channel.email)].due_at == discharge.due_at


def test_clinic_send_window_is_respected(protocols: ProtocolRegistry) -> None:
    zone = ZoneInfo("America/Vancouver")
    plan = build_plan(
        protocols.get("msc-knee-injection"),
        ctx("America/Vancouver", datetime(2026, 6, 10, 15, tzinfo=UTC), window_start="11:00", window_end="19:00"),
        EARLY,
    )
    for tp in plan:
        local = tp.due_at.astimezone(zone).time()
        assert local.hour >= 11 and (local.hour < 19), (tp.key, local)


def test_missing_contact_skips_that_channel_with_a_reason(protocols: ProtocolRegistry) -> None:
    plan = by_key(
        build_plan(
            protocols.get("msc-knee-injection"),
            ctx("America/Toronto", datetime(2026, 6, 10, 15, tzinfo=UTC), has_email=False),
            EARLY,
        )
    )
    assert plan[("discharge", Channel.email)].status == TouchpointStatus.skipped
    assert plan[("discharge", Channel.email)].cancel_reason == "no email"
    assert plan[("discharge", Channel.sms)].status == TouchpointStatus.scheduled


def test_preferred_channel_falls_back_to_the_reachable_one(protocols: ProtocolRegistry) -> None:
    plan = by_key(
        build_plan(
            protocols.get("msc-knee-injection"),
            ctx("America/Toronto", datetime(2026, 6, 10, 15, tzinfo=UTC), has_phone=False),
            EARLY,
        )
    )
    assert plan[("checkin_d1", Channel.email)].status == TouchpointStatus.scheduled
    assert ("checkin_d1", Channel.sms) not in plan


def test_items_already_past_are_skipped_not_sent(protocols: ProtocolRegistry) -> None:
    t0 = datetime(2026, 6, 10, 15, tzinfo=UTC)
    plan = by_key(build_plan(protocols.get("msc-knee-injection"), ctx("America/Toronto", t0), t0 + timedelta(days=4)))
    assert plan[("checkin_d1", Channel.sms)].status == TouchpointStatus.skipped
    assert plan[("checkin_d1", Channel.sms)].cancel_reason == PAST_AT_PLANNING
    assert plan[("checkin_d5", Channel.sms)].status == TouchpointStatus.scheduled


def test_ligament_variant_is_a_file_not_code(protocols: ProtocolRegistry) -> None:
    ligament = protocols.get("msc-knee-ligament")
    plan = build_plan(ligament, ctx("America/Denver", datetime(2026, 6, 10, 15, tzinfo=UTC)), EARLY)
    assert {"rehab_lig_p1", "rehab_lig_p2"} <= {tp.template for tp in plan}
    assert ligament.settings["no_eccentrics_before_week"] == 6
