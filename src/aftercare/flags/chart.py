"""A small server-rendered SVG chart: one measure over days since the procedure, against its baseline.

The band is baseline ± MCID (pain: 2 NRS points, Farrar 2001 / Salaffi 2004; KOOS JR: 15 points, provisional
for injection patients, Hung 2018): a point inside it is no clinically important change from baseline. Points
carry a <title> (hover, screen readers) and the whole chart an aria-label that says the same in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from aftercare.flags.queue import Series

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 30


@dataclass(frozen=True)
class Scale:
    """One measure's axis: range, MCID, and whether a higher value is worse."""

    low: float
    high: float
    mcid: float
    higher_is_worse: bool
    unit: str


PAIN = Scale(0, 10, 2, True, "/10")
KOOS_JR = Scale(0, 100, 15, False, "")


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def svg(series: Series, scale: Scale, *, chart_id: str) -> Markup:
    """The chart as inline SVG (safe to put in a page: every text is escaped)."""
    days = [d for d, _ in series.points]
    first, last = min([0.0, *days]), max([14.0, *days])
    span = (last - first) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: float) -> float:
        return LEFT + (day - first) / span * plot_w

    def y(value: float) -> float:
        clamped = min(max(value, scale.low), scale.high)
        return TOP + (scale.high - clamped) / (scale.high - scale.low) * plot_h

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#cbd2d9"/>']
    for tick in _ticks(scale):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eef1f4"/>'
                     f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
    for day in _day_ticks(first, last):
        parts.append(f'<text x="{x(day):.1f}" y="{HEIGHT - 10}" text-anchor="middle" class="tick">{_fmt(day)}</text>')
    described = []
    if series.baseline is not None:
        base = series.baseline
        band_top, band_bottom = y(base + scale.mcid), y(base - scale.mcid)
        parts.append(f'<rect class="mcid" x="{LEFT}" y="{band_top:.1f}" width="{plot_w}" '
                     f'height="{band_bottom - band_top:.1f}" fill="#e3f0fb"><title>within the MCID of baseline '
                     f'({_fmt(base)} ± {_fmt(scale.mcid)}): no clinically important change</title></rect>')
        parts.append(f'<line class="baseline" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(base):.1f}" y2="{y(base):.1f}" '
                     f'stroke="#1f6fb2" stroke-dasharray="5 4"/>'
                     f'<text x="{LEFT + plot_w - 4}" y="{y(base) - 4:.1f}" text-anchor="end" class="tick">'
                     f'baseline {_fmt(base)}</text>')
        described.append(f"baseline {_fmt(base)}, MCID band ± {_fmt(scale.mcid)}")
    if series.points:
        path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in series.points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#52606d" stroke-width="1.5"/>')
        for day, value in series.points:
            colour = _colour(value, series.baseline, scale)
            label = escape(f"day {_fmt(day)}: {_fmt(value)}{scale.unit}")
            parts.append(f'<circle class="point" cx="{x(day):.1f}" cy="{y(value):.1f}" r="4" fill="{colour}">'
                         f"<title>{label}</title></circle>")
        latest_day, latest = series.points[-1]
        described.append(f"{len(series.points)} value(s), latest {_fmt(latest)}{scale.unit} on day {_fmt(latest_day)}")
    else:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" class="tick">'
                     "no answers yet</text>")
        described.append("no values yet")
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 0.5}" text-anchor="middle" class="tick">'
                 "days since the procedure</text>")
    aria = escape(f"{series.name}: " + "; ".join(described), quote=True)
    body = "".join(parts)
    return Markup(
        f'<svg id="{escape(chart_id, quote=True)}" class="chart" role="img" aria-label="{aria}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(series.name)}</title>{body}</svg>'
    )


def _colour(value: float, baseline: float | None, scale: Scale) -> str:
    """Green: better than baseline by the MCID; red: worse by it; grey: inside the band or no baseline."""
    if baseline is None:
        return "#52606d"
    change = (baseline - value) if scale.higher_is_worse else (value - baseline)
    if change >= scale.mcid:
        return "#2f8132"
    if change <= -scale.mcid:
        return "#b42318"
    return "#52606d"


def _ticks(scale: Scale) -> list[float]:
    step = (scale.high - scale.low) / 5
    return [scale.low + i * step for i in range(6)]


def _day_ticks(first: float, last: float) -> list[float]:
    span = last - first
    step = next(s for s in (1, 2, 7, 14, 30, 60, 90, 180, 365, 730) if span / s <= 8)
    start = int(first // step) * step
    ticks = []
    day = float(start)
    while day <= last + 1e-9:
        if day >= first:
            ticks.append(day)
        day += step
    return ticks
