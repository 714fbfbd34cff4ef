"""What to do with a claimed touchpoint right now. Pure: the caller loads the facts and applies the verdict.

Checked in this order, each with the reason that is stored on the row:
1. the procedure was cancelled                      -> cancelled ("procedure cancelled: ...")
2. its window has closed                            -> skipped ("stale: past its window")
3. the channel cannot be used (no consent, no address, suppressed): the other channel when the patient
   consented to it, has an address for it and the plan has no row for it yet -> switched; else skipped
4. quiet hours in the patient's zone                -> held until the window's next opening (skipped when
                                                       its window closes before that)
5. the daily cap (non-clinical messages)            -> moved to the next day's opening, still inside its
                                                       window; else skipped
6. otherwise                                        -> send
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from aftercare.models import Channel, ProcedureStatus, TouchpointStatus
from aftercare.timing import local_wall_time, next_send_time, parse_hhmm

STALE = "stale: past its window"
STALE_QUIET = "stale: its window closes during quiet hours"
CAP_NO_ROOM = "daily cap: no room left inside its window"


class Action(StrEnum):
    send = "send"
    hold = "hold"  # quiet hours: status held, due at the window's next opening
    defer = "defer"  # daily cap: status scheduled, due the next day
    skip = "skip"
    cancel = "cancel"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str | None = None
    due_at: datetime | None = None
    channel: Channel | None = None  # the channel to send on (differs from the row's when switched)
    switched_because: str | None = None

    @property
    def status(self) -> TouchpointStatus:
        return {
            Action.send: TouchpointStatus.sending,
            Action.hold: TouchpointStatus.held,
            Action.defer: TouchpointStatus.scheduled,
            Action.skip: TouchpointStatus.skipped,
            Action.cancel: TouchpointStatus.cancelled,
        }[self.action]


@dataclass(frozen=True)
class Facts:
    """Everything the verdict depends on, loaded by the claimer."""

    channel: Channel
    clinical: bool
    window_end: datetime
    procedure_status: ProcedureStatus
    procedure_cancel_reason: str | None
    zone: ZoneInfo
    send_window_start: str
    send_window_end: str
    blocked: dict[Channel, str | None]  # why a channel cannot be used (None: it can)
    planned_channels: frozenset[Channel]  # channels the plan already has a row for, for this key
    sent_today: int  # non-clinical messages this patient got (or is getting) on its local day


def channel_problem(*, consented: bool, address: str | None, suppressed: str | None, channel: Channel) -> str | None:
    if not address:
        return f"no {'phone number' if channel == Channel.sms else 'email address'}"
    if suppressed:
        return f"{channel.value} suppressed: {suppressed}"
    if not consented:
        return f"no consent for {channel.value}"
    return None


def next_day_opening(now: datetime, zone: ZoneInfo, window_start: str) -> datetime:
    """The send window's opening on the patient's next local day."""
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return local_wall_time(tomorrow, parse_hhmm(window_start), zone)


def decide(facts: Facts, now: datetime, *, daily_cap: int) -> Verdict:
    if facts.procedure_status == ProcedureStatus.cancelled:
        return Verdict(Action.cancel, f"procedure cancelled: {facts.procedure_cancel_reason or 'no reason given'}")
    if now > facts.window_end:
        return Verdict(Action.skip, STALE)
    channel, switched_because = facts.channel, None
    problem = facts.blocked.get(channel)
    if problem:
        other = Channel.email if channel == Channel.sms else Channel.sms
        if facts.blocked.get(other) is None and other not in facts.planned_channels:
            channel, switched_because = other, problem
        else:
            return Verdict(Action.skip, problem)
    opening = next_send_time(now, facts.zone, facts.send_window_start, facts.send_window_end)
    if opening != now:
        if opening > facts.window_end:
            return Verdict(Action.skip, STALE_QUIET)
        return Verdict(Action.hold, "quiet hours", due_at=opening, channel=channel, switched_because=switched_because)
    if not facts.clinical and facts.sent_today >= daily_cap:
        tomorrow = next_day_opening(now, facts.zone, facts.send_window_start)
        if tomorrow > facts.window_end:
            return Verdict(Action.skip, CAP_NO_ROOM)
        return Verdict(Action.defer, "daily cap", due_at=tomorrow, channel=channel, switched_because=switched_because)
    return Verdict(Action.send, channel=channel, switched_because=switched_because)
