"""How long a provider asked us to wait: Retry-After (seconds or HTTP date) or X-RateLimit-Reset (epoch)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

MAX_WAIT = 3600.0


def retry_after(headers: Mapping[str, Any] | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait before retrying, from the response headers; None when they say nothing usable."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        seconds = _seconds(value, now)
        if seconds is not None:
            return seconds
    reset = lowered.get("x-ratelimit-reset")
    if reset:
        try:
            return _clamp(float(reset) - now())
        except ValueError:
            return None
    return None


def _seconds(value: str, now: Callable[[], float]) -> float | None:
    try:
        return _clamp(float(value))
    except ValueError:
        pass
    try:
        return _clamp(parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_WAIT)
