"""The claim-time verdict: cancelled procedures, lateness, channels, quiet hours across zones, daily cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aftercare.dispatch.policy import CAP_NO_ROOM, STALE, STALE_QUIET, Action, Facts, decide
from aftercare.models import Channel, ProcedureStatus, TouchpointStatus

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 10:00 in Toronto, 16:00 in Madrid, 00:00 in Tokyo (next day)


def facts(**overrides: Any) -> Facts:
    values: dict[str, Any] = {
        "channel": Channel.sms,
        "clinical": False,
        "window_end": NOW + timedelta(days=3),
        "procedure_status": ProcedureStatus.active,
        "procedure_cancel_reason": None,
        "zone": ZoneInfo("America/Toronto"),
        "send_window_start": "08:00",
        "send_window_end": "20:00",
        "blocked": {Channel.sms: None, Channel.email: None},
        "planned_channels": frozenset({Channel.sms}),
        "sent_today": 0,
    }
    values.update(overrides)
    return Facts(**values)


def test_it_sends_a_due_message_inside_the_window() -> None:
    verdict = decide(facts(), NOW, daily_cap=1)
    assert verdict.action == Action.send and verdict.channel == Channel.sms
    assert verdict.status == TouchpointStatus.sending


def test_a_cancelled_procedure_cancels_with_its_reason() -> None:
    verdict = decide(facts(procedure_status=ProcedureStatus.cancelled, procedure_cancel_reason="withdrew"), NOW,
                     daily_cap=1)
    assert verdict.action == Action.cancel and verdict.reason == "procedure cancelled: withdrew"


def test_a_message_past_its_window_is_skipped_as_stale() -> None:
    verdict = decide(facts(window_end=NOW - timedelta(minutes=1)), NOW, daily_cap=1)
    assert (verdict.action, verdict.reason) == (Action.skip, STALE)


@pytest.mark.parametrize(
    ("zone", "expected_local_opening"),
    [
        ("Europe/Madrid", None),  # 16:00 there: inside
        ("Asia/Tokyo", datetime(2026, 3, 11, 8, 0)),  # 00:00 there: held until 08:00 the same local day
        ("America/Los_Angeles", None),  # 08:00 PDT (DST began Mar 8): the window has just opened
        ("Pacific/Honolulu", datetime(2026, 3, 10, 8, 0)),  # 05:00 there: held three hours
        ("Pacific/Auckland", datetime(2026, 3, 11, 8, 0)),  # 04:00 on the 11th there
        ("America/Toronto", None),  # 11:00 EDT
    ],
)
def test_quiet_hours_are_the_patients_own(zone: str, expected_local_opening: datetime | None) -> None:
    verdict = decide(facts(zone=ZoneInfo(zone)), NOW, daily_cap=1)
    if expected_local_opening is None:
        assert verdict.action == Action.send
        return
    assert verdict.action == Action.hold and verdict.status == TouchpointStatus.held
    assert verdict.due_at is not None
    assert verdict.due_at.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == expected_local_opening


def test_a_clinic_window_narrower_than_the_default_holds_earlier() -> None:
    verdict = decide(facts(send_window_start="12:00", send_window_end="18:00"), NOW, daily_cap=1)  # 11:00 Toronto
    assert verdict.action == Action.hold
    assert verdict.due_at == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)


def test_held_past_the_window_end_is_skipped() -> None:
    verdict = decide(facts(zone=ZoneInfo("Asia/Tokyo"), window_end=NOW + timedelta(hours=4)), NOW, daily_cap=1)
    assert (verdict.action, verdict.reason) == (Action.skip, STALE_QUIET)


def test_daily_cap_moves_a_non_clinical_message_to_the_next_local_morning() -> None:
    verdict = decide(facts(sent_today=1), NOW, daily_cap=1)
    assert verdict.action == Action.defer and verdict.status == TouchpointStatus.scheduled
    assert verdict.due_at == datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_daily_cap_never_delays_a_clinical_message() -> None:
    assert decide(facts(sent_today=3, clinical=True), NOW, daily_cap=1).action == Action.send


def test_daily_cap_skips_when_no_day_is_left_in_the_window() -> None:
    verdict = decide(facts(sent_today=1, window_end=NOW + timedelta(hours=6)), NOW, daily_cap=1)
    assert (verdict.action, verdict.reason) == (Action.skip, CAP_NO_ROOM)


def test_a_higher_cap_allows_more() -> None:
    assert decide(facts(sent_today=1), NOW, daily_cap=2).action == Action.send


def test_an_unusable_channel_switches_to_the_other_one() -> None:
    verdict = decide(facts(blocked={Channel.sms: "sms suppressed: twilio_21211", Channel.email: None}), NOW,
                     daily_cap=1)
    assert verdict.action == Action.send and verdict.channel == Channel.email
    assert verdict.switched_because == "sms suppressed: twilio_21211"


def test_no_switch_when_the_plan_already_sends_it_on_the_other_channel() -> None:
    verdict = decide(
        facts(blocked={Channel.sms: "no consent for sms", Channel.email: None},
              planned_channels=frozenset({Channel.sms, Channel.email})),
        NOW, daily_cap=1,
    )
    assert (verdict.action, verdict.reason) == (Action.skip, "no consent for sms")


def test_no_channel_at_all_is_skipped_with_the_reason() -> None:
    verdict = decide(facts(blocked={Channel.sms: "no consent for sms", Channel.email: "no email address"}), NOW,
                     daily_cap=1)
    assert (verdict.action, verdict.reason) == (Action.skip, "no consent for sms")
