"""Turn a protocol, a procedure date and a patient into planned touchpoints. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from aftercare.models import Channel, TouchpointKind, TouchpointStatus
from aftercare.protocols.schema import Offset, Protocol, ProtocolTouchpoint, Window
from aftercare.timing import next_send_time, offset_instant

PAST_AT_PLANNING = "already past when the plan was built"


@dataclass(frozen=True)
class PlanContext:
    """What the plan depends on besides the protocol."""

    performed_at: datetime
    zone: ZoneInfo
    preferred_channel: Channel
    has_phone: bool
    has_email: bool
    window_start: str = "08:00"
    window_end: str = "20:00"


@dataclass
class PlannedTouchpoint:
    key: str
    kind: TouchpointKind
    template: str
    channel: Channel
    clinical: bool
    planned_at: datetime
    due_at: datetime
    window_end: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    status: TouchpointStatus = TouchpointStatus.scheduled
    cancel_reason: str | None = None


def _instant(protocol: Protocol, ctx: PlanContext, offset: Offset) -> datetime:
    return offset_instant(
        ctx.performed_at,
        ctx.zone,
        days=protocol.resolve_days(offset.days),
        weeks=offset.weeks,
        months=offset.months,
        hours=offset.hours,
        at=offset.time,
    )


def _channels(choices: list[str], ctx: PlanContext) -> list[tuple[Channel, str | None]]:
    """Each requested channel, with the reason it cannot be used (None when it can)."""
    return list(_resolve_channels(tuple(choices), Channel(ctx.preferred_channel), ctx.has_phone, ctx.has_email))


@lru_cache(maxsize=256)  # a handful of combinations, asked for every touchpoint of every plan
def _resolve_channels(
    choices: tuple[str, ...], preferred: Channel, has_phone: bool, has_email: bool
) -> tuple[tuple[Channel, str | None], ...]:
    reachable = {Channel.sms: has_phone, Channel.email: has_email}
    resolved: list[Channel] = []
    for choice in choices:
        if choice == "preferred":
            channel = preferred
            if not reachable[channel]:
                other = Channel.email if channel == Channel.sms else Channel.sms
                channel = other if reachable[other] else channel
        else:
            channel = Channel(choice)
        if channel not in resolved:
            resolved.append(channel)
    missing = {Channel.sms: "no phone number", Channel.email: "no email"}
    return tuple((c, None if reachable[c] else missing[c]) for c in resolved)


def _planned(
    *,
    key: str,
    kind: TouchpointKind,
    template: str,
    clinical: bool,
    planned_at: datetime,
    window: Window,
    channels: list[tuple[Channel, str | None]],
    ctx: PlanContext,
    payload: dict[str, Any],
) -> list[PlannedTouchpoint]:
    due_at = next_send_time(planned_at, ctx.zone, ctx.window_start, ctx.window_end)
    window_end = max(due_at, planned_at + timedelta(hours=window.total_hours))
    out = []
    for channel, problem in channels:
        out.append(
            PlannedTouchpoint(
                key=key,
                kind=kind,
                template=template,
                channel=channel,
                clinical=clinical,
                planned_at=planned_at,
                due_at=due_at,
                window_end=window_end,
                payload=dict(payload),
                status=TouchpointStatus.skipped if problem else TouchpointStatus.scheduled,
                cancel_reason=problem,
            )
        )
    return out


def _from_item(protocol: Protocol, ctx: PlanContext, item: ProtocolTouchpoint) -> list[PlannedTouchpoint]:
    payload: dict[str, Any] = {}
    if item.survey:
        payload["survey"] = item.survey
        payload["instruments"] = list(protocol.surveys[item.survey].instruments)
    if item.phase:
        payload["phase"] = item.phase
    return _planned(
        key=item.id,
        kind=TouchpointKind(item.kind),
        template=item.template,
        clinical=item.clinical,
        planned_at=_instant(protocol, ctx, item.at),
        window=item.window,
        channels=_channels(list(item.channels), ctx),
        ctx=ctx,
        payload=payload,
    )


def build_plan(protocol: Protocol, ctx: PlanContext, now: datetime) -> list[PlannedTouchpoint]:
    """Every touchpoint of the plan, in due order. Ones whose window has passed are marked skipped."""
    planned: list[PlannedTouchpoint] = []
    for item in protocol.touchpoints:
        planned.extend(_from_item(protocol, ctx, item))
    for visit in protocol.followup_visits:
        target = _instant(protocol, ctx, visit.at)
        offer_at = offset_instant(
            target, ctx.zone, days=-visit.offer_days_before, weeks=0, months=0, hours=0, at="10:00"
        )
        planned.extend(
            _planned(
                key=f"{visit.id}_offer",
                kind=TouchpointKind.visit_offer,
                template="visit_offer",
                clinical=False,
                planned_at=offer_at,
                window=visit.window,
                channels=_channels(["preferred"], ctx),
                ctx=ctx,
                payload={"visit": visit.id, "mode": visit.mode, "target": target.isoformat()},
            )
        )
    for tp in planned:
        if tp.status == TouchpointStatus.scheduled and tp.window_end < now:
            tp.status = TouchpointStatus.skipped
            tp.cancel_reason = PAST_AT_PLANNING
    planned.sort(key=attrgetter("due_at", "key", "channel"))
    return planned
